"""Training state, and checkpoints that are atomic and tied to their settings.

A checkpoint records the fingerprint of every setting that shapes the weights;
resuming with other settings starts afresh (and says so) instead of silently
mixing two experiments. Files are written to a temporary name, then renamed,
and loaded with ``weights_only=True``. They hold the plain (not DDP-wrapped)
modules, and the data position is the step (the global batch does not depend on
the number of processes), so a checkpoint resumes in any number of processes.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from scenesynth.config import TRAIN_PROCESS_KEYS, fingerprint, source_fingerprint
from scenesynth.training.replay import ReplayBuffer
from scenesynth.utils.atomic import write_torch

log = logging.getLogger(__name__)

# train.* keys that do not change what is learnt (a resumed run may change them).
_VOLATILE_TRAIN_KEYS = ("steps", "checkpoint_every", "log_every", "sample_every", "device", "compile",
                        *TRAIN_PROCESS_KEYS,
                        "eval_every", "eval_fad", "select_by", "export", "keep_eval_models")  # evaluation reads the weights, never changes them


def several_ranks() -> bool:
    """True inside a process group of more than one rank (torchrun)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _cuda_rng_states() -> list:
    """Every GPU's RNG in one process; only this rank's own GPU among several ranks (reading the
    others would open a CUDA context on every GPU from every rank)."""
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_rng_state()] if several_ranks() else torch.cuda.get_rng_state_all()


def _restore_cuda_rng(states: list) -> None:
    if not states or not torch.cuda.is_available():
        return
    if several_ranks():
        torch.cuda.set_rng_state(states[0])  # the first GPU's stream, on this rank's GPU
    else:
        torch.cuda.set_rng_state_all(states)


def training_fingerprint(params: dict, data_identity: dict) -> str:
    """Hash of what shapes the weights: settings (not the run length or logging cadence), the
    training data (shard hashes, text cache) and the code of the model, losses and loop.
    A checkpoint that differs in any of these is not resumed."""
    train = {k: v for k, v in params["train"].items() if k not in _VOLATILE_TRAIN_KEYS}
    return fingerprint({"model": params["model"], "loss": params["loss"], "audio": params["audio"],
                        "train": train, "seed": params["seed"], "data": data_identity,
                        "code": source_fingerprint("models", "losses", "training")})


@dataclass
class TrainState:
    generator: torch.nn.Module
    discriminator: torch.nn.Module
    generator_ema: torch.nn.Module | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    step: int = 0  # generator updates done
    last_losses: dict = field(default_factory=dict)  # the last step's losses, for a run resumed at its end
    # Where the batch stream stands: it was (re)started at step `stream_origin` (every scheduled checkpoint
    # starts a fresh one) and `stream_drawn` batches have been taken from it since. A checkpoint written
    # off schedule (stop_signals.py) resumes by drawing and dropping those batches.
    stream_origin: int = 0
    stream_drawn: int = 0
    # loss.lecam's anchors: moving averages of D's mean logit on real and on fake clips (None before the first)
    lecam_anchors: tuple[float, float] | None = None
    replay: ReplayBuffer | None = None  # train.d_replay's earlier generator outputs (training/replay.py)

    def state_dict(self, config_fingerprint: str) -> dict:
        return {
            "step": self.step,
            "last_losses": self.last_losses,
            "stream_origin": self.stream_origin,
            "stream_drawn": self.stream_drawn,
            "lecam_anchors": self.lecam_anchors,
            "replay": self.replay.state_dict() if self.replay is not None else None,
            "fingerprint": config_fingerprint,
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "generator_ema": self.generator_ema.state_dict() if self.generator_ema is not None else None,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": _cuda_rng_states(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        if self.generator_ema is not None and state["generator_ema"] is not None:
            self.generator_ema.load_state_dict(state["generator_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        torch.set_rng_state(state["torch_rng"])
        _restore_cuda_rng(state.get("cuda_rng") or [])
        self.step = int(state["step"])
        self.last_losses = dict(state.get("last_losses") or {})
        self.stream_origin = int(state.get("stream_origin", self.step))
        self.stream_drawn = int(state.get("stream_drawn", 0))
        anchors = state.get("lecam_anchors")
        self.lecam_anchors = None if anchors is None else (float(anchors[0]), float(anchors[1]))
        if self.replay is not None and state.get("replay") is not None:
            self.replay.load_state_dict(state["replay"], next(self.generator.parameters()).device)


def make_ema(generator: torch.nn.Module) -> torch.nn.Module:
    ema = copy.deepcopy(generator)
    ema.requires_grad_(False)
    return ema


def ema_decay_at(decay: float, step: int) -> float:
    """The EMA decay warms up as min(decay, (1 + step) / (10 + step)).

    With a fixed 0.999, a short run's EMA stays ~80 % the random initial weights after
    240 steps (0.999^240); the warm-up lets early averages follow the model.
    """
    return min(decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float, step: int) -> None:
    """Exponential moving average of parameters (warmed-up decay); buffers (BN statistics) are copied."""
    weight = 1.0 - ema_decay_at(decay, step)
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p.detach(), weight)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


def save_checkpoint(state: TrainState, path: str | Path, config_fingerprint: str, world_size: int = 1) -> None:
    """Write atomically; refuse to save non-finite weights over the last good checkpoint."""
    for name, module in (("generator", state.generator), ("discriminator", state.discriminator)):
        bad = next((n for n, p in module.named_parameters() if not torch.isfinite(p).all()), None)
        if bad is not None:
            raise FloatingPointError(f"step {state.step}: {name} parameter {bad} is not finite; "
                                     f"{path} keeps the last good checkpoint")
    write_torch(path, {**state.state_dict(config_fingerprint), "world_size": world_size})


def try_resume(state: TrainState, path: str | Path, config_fingerprint: str, set_aside_stale: bool = True) -> bool:
    """Load ``path`` into ``state`` if it exists and was made with the same settings.

    A stale checkpoint is renamed out of the way unless ``set_aside_stale`` is False (the other
    ranks of a multi-process run, which must not rename what rank 0 may still be reading)."""
    path = Path(path)
    if not path.is_file():
        return False
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if saved.get("fingerprint") != config_fingerprint:
        if not set_aside_stale:
            return False
        kept = path.with_name(f"{path.stem}.{saved.get('fingerprint', 'unknown')}{path.suffix}")
        path.replace(kept)
        log.warning("%s was written with other settings, data or code: kept as %s, starting afresh",
                    path, kept.name)
        return False
    state.load_state_dict(saved)
    log.info("resumed from %s at step %d (written by %d process(es))", path, state.step, saved.get("world_size", 1))
    return True
