"""The GAN training loop of the paper (SPEC.md section 4).

Adam (lr G 1e-4, lr D 4e-4, betas 0.5/0.999), `d_steps` discriminator updates
per generator update, optional EMA of G, atomic checkpoints every
`checkpoint_every` steps with resume, MLflow logging, and a hard stop with the
step and loss named when a loss stops being finite. The batch stream is
re-seeded at every checkpoint, so a resumed run continues exactly as the
uninterrupted one would have (bit-identical on CPU).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch

from scenesynth.config import fingerprint
from scenesynth.features.shards import read_index
from scenesynth.losses.objectives import discriminator_objective, generator_objective
from scenesynth.models import build_models
from scenesynth.text.cache import TextCache
from scenesynth.training.checkpoint import (TrainState, make_ema, save_checkpoint, training_fingerprint,
                                            try_resume, update_ema)
from scenesynth.training.data import batch_stream
from scenesynth.training.samples import log_samples
from scenesynth.training.tracking import Tracker, stand_ins
from scenesynth.utils.atomic import atomic_path, write_json

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """A loss became NaN or Inf; the last good checkpoint is left untouched."""


def pick_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is available")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


def fp32(out):
    """A discriminator output with every tensor in float32: the contrastive losses divide by
    tau = 0.1 and scale by gamma3 = 50, which bf16's 3 significant digits cannot carry."""
    return dataclasses.replace(out, **{f.name: getattr(out, f.name).float() if getattr(out, f.name).is_floating_point()
                                      else getattr(out, f.name) for f in dataclasses.fields(out)})


def autocast_for(device: torch.device, precision: str):
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _check_finite(logs: dict[str, float], step: int, checkpoint: Path) -> None:
    bad = {k: v for k, v in logs.items() if not math.isfinite(v)}
    if bad:
        name, value = next(iter(bad.items()))
        raise TrainingDiverged(f"step {step}: loss {name} = {value}; stopping. "
                               f"The last good checkpoint is kept: {checkpoint}")


def build_state(params: dict, text_info: dict, device: torch.device) -> TrainState:
    audio, train = params["audio"], params["train"]
    generator, discriminator = build_models(params["model"], audio["n_mels"], audio["n_frames"],
                                            text_info["sentence_dim"], text_info["word_dim"])
    generator, discriminator = generator.to(device), discriminator.to(device)
    ema = make_ema(generator) if params["model"].get("ema_decay") else None
    betas = tuple(train["betas"])
    return TrainState(
        generator, discriminator, ema,
        torch.optim.Adam(generator.parameters(), lr=train["lr_g"], betas=betas),
        torch.optim.Adam(discriminator.parameters(), lr=train["lr_d"], betas=betas),
    )


def train_step(state: TrainState, batches, cache: TextCache, params: dict, device: torch.device,
               checkpoint: Path) -> dict[str, float]:
    """One generator update preceded by `d_steps` discriminator updates; returns the losses."""
    z_dim, loss_cfg = params["model"]["z_dim"], params["loss"]
    G, D = state.generator, state.discriminator
    amp = autocast_for(device, params["train"]["precision"])
    logs: dict[str, float] = {}
    for _ in range(params["train"]["d_steps"]):
        mels, captions = next(batches)
        mels, text = mels.to(device), cache.batch(captions).to(device)
        with amp:
            with torch.no_grad():
                fake = G(torch.randn(len(captions), z_dim, device=device), text)
            real_out, fake_out = D(mels, text), D(fake.detach(), text)
        loss_d, logs_d = discriminator_objective(fp32(real_out), fp32(fake_out), text.caption_ids, loss_cfg)
        _check_finite(logs_d, state.step, checkpoint)
        state.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        state.opt_d.step()
        logs.update(logs_d)
    D.requires_grad_(False)
    try:
        with amp:
            fake = G(torch.randn(len(captions), z_dim, device=device), text)
            with torch.no_grad():
                real_out = D(mels, text)
            fake_out = D(fake, text)
        loss_g, logs_g = generator_objective(fp32(fake_out), fp32(real_out), text.caption_ids, loss_cfg)
        _check_finite(logs_g, state.step, checkpoint)
        state.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        state.opt_g.step()
    finally:
        D.requires_grad_(True)
    if state.generator_ema is not None:
        update_ema(state.generator_ema, G, params["model"]["ema_decay"], state.step)
    state.step += 1
    logs.update(logs_g)
    return logs


def export_model(state: TrainState, params: dict, text_info: dict, path: Path) -> None:
    """The artifact that `generate` loads: EMA generator (if any), discriminator, settings."""
    generator = state.generator_ema if state.generator_ema is not None else state.generator
    with atomic_path(path) as tmp:
        torch.save({"generator": generator.state_dict(), "discriminator": state.discriminator.state_dict(),
                    "model": params["model"], "audio": params["audio"], "text": text_info,
                    "step": state.step, "stand_ins": stand_ins(params)}, tmp)


def train(params: dict, shards: str | Path, text: str | Path, run_dir: str | Path, metrics_path: str | Path,
          max_steps: int | None = None) -> dict:
    run_dir = Path(run_dir)
    train_cfg, seed = params["train"], params["seed"]
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    device = pick_device(train_cfg["device"])
    cache = TextCache(text)
    state = build_state(params, cache.info, device)
    checkpoint = run_dir / "checkpoints" / "last.pt"
    data_identity = {"shards": [s["sha256"] for s in read_index(shards)["shards"]],
                     "text": fingerprint({"info": cache.info, "captions": cache.captions})}
    config_fp = training_fingerprint(params, data_identity)
    resumed = try_resume(state, checkpoint, config_fp)
    target = train_cfg["steps"] if max_steps is None else min(max_steps, train_cfg["steps"])
    tracker = Tracker(params, run_dir, resume=resumed)
    n_params = {"params_g": sum(p.numel() for p in state.generator.parameters()),
                "params_d": sum(p.numel() for p in state.discriminator.parameters())}
    log.info("training on %s: G %d params, D %d params, steps %d -> %d", device, n_params["params_g"],
             n_params["params_d"], state.step, target)

    def new_stream():
        return batch_stream(shards, train_cfg["batch_size"], seed, train_cfg["shuffle_buffer"],
                            train_cfg["num_workers"], start_epoch=state.step)

    batches, window, logs, started, status = new_stream(), [], {}, time.perf_counter(), "FAILED"
    first_step = state.step
    try:
        while state.step < target:
            logs = train_step(state, batches, cache, params, device, checkpoint)
            window.append(logs)
            if state.step % train_cfg["log_every"] == 0 or state.step == target:
                means = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
                tracker.metrics(means, state.step)
                log.info("step %d: %s", state.step, ", ".join(f"{k} {v:.3f}" for k, v in sorted(means.items())))
                window = []
            if state.step % train_cfg["checkpoint_every"] == 0 or state.step == target:
                save_checkpoint(state, checkpoint, config_fp)
                batches = new_stream()
            if state.step % train_cfg["sample_every"] == 0 or state.step == target:
                log_samples(state, cache, params, run_dir / "samples", tracker, device)
        status = "FINISHED"
    finally:
        tracker.close(status)
    elapsed = time.perf_counter() - started
    export_model(state, params, cache.info, run_dir / "model.pt")
    summary = {"steps": state.step, "steps_this_run": state.step - first_step, "seconds": elapsed,
               "seconds_per_step": elapsed / max(1, state.step - first_step), "device": str(device),
               "last_losses": logs if state.step > first_step else {}, "mlflow_run_id": tracker.run_id,
               **n_params, **{f"stand_in.{k}": v for k, v in stand_ins(params).items()}}
    write_json(metrics_path, summary)
    return summary
