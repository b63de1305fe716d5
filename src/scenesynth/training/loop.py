"""The GAN training loop of the paper (docs/paper.md section 4).

Adam (lr G 1e-4, lr D 4e-4, betas 0.5/0.999), `d_steps` discriminator updates
per generator update, optional EMA of G, atomic checkpoints every
`checkpoint_every` steps with resume, MLflow logging, and a hard stop with the
step and loss named when a loss stops being finite. The batch stream is
re-seeded at every checkpoint, so a resumed run continues exactly as the
uninterrupted one would have (bit-identical on CPU).

Under torchrun (`train.processes_per_node` x `train.nodes` > 1, see distributed.py)
G and D are each wrapped in DistributedDataParallel, every rank trains on its
share of the global batch, and rank 0 alone writes checkpoints, metrics, samples
and the MLflow run.
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

from scenesynth import paths
from scenesynth.config import fingerprint
from scenesynth.features.shards import read_index
from scenesynth.losses.adversarial import lecam_anchors, lecam_penalty, mismatched_text_loss, r1_penalty
from scenesynth.losses.mode_seeking import mode_seeking_term
from scenesynth.training.augment import random_time_shift
from scenesynth.training.replay import ReplayBuffer, replayed_rows
from scenesynth.losses.objectives import discriminator_objective, generator_objective
from scenesynth.models import build_models
from scenesynth.text.cache import TextCache
from scenesynth.training.checkpoint import (TrainState, make_ema, save_checkpoint, training_fingerprint,
                                            try_resume, update_ema)
from scenesynth.training.data import CountedStream, batch_stream
from scenesynth.training.distributed import (DistContext, any_rank, check_replicas_identical, convert_batch_norms,
                                             gather_output, gather_rows, pad_words, start, stop, wrap)
from scenesynth.training.launch import configured_world_size, local_batch_size
from scenesynth.training.periodic_eval import EvalInputs, periodic_eval
from scenesynth.training.samples import log_samples
from scenesynth.training.schedule import lr_scale, set_learning_rates
from scenesynth.training.stop_signals import StopRequest, TrainingStopped
from scenesynth.tracking import Tracker, stand_ins
from scenesynth.utils.atomic import write_json, write_torch

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """A loss became NaN or Inf; the last good checkpoint is left untouched."""


ONE_PROCESS = DistContext()


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


def build_state(params: dict, text_info: dict, device: torch.device, several_ranks: bool = False) -> TrainState:
    """Models and optimisers; among several ranks, BatchNorms use the global batch's statistics."""
    audio, train = params["audio"], params["train"]
    generator, discriminator = build_models(params["model"], audio["n_mels"], audio["n_frames"],
                                            text_info["sentence_dim"], text_info["word_dim"])
    if several_ranks:
        generator, discriminator = convert_batch_norms(generator), convert_batch_norms(discriminator)
    generator, discriminator = generator.to(device), discriminator.to(device)
    ema = make_ema(generator) if params["model"].get("ema_decay") else None
    if train.get("compile"):  # in place: the state dict keeps its names, so checkpoints do not depend on it
        # The generator only. D's spectral norm updates its power-iteration vectors in place at every
        # forward, and D runs on the real and the fake batch before one backward: inductor saves the
        # vector itself for that backward (eager saves a clone), and the backward then fails ("modified by
        # an inplace operation", seen with torch 2.11 on an H200 and 2.13 on CPU; docs/benchmarks.md).
        generator.compile()
    betas = tuple(train["betas"])
    return TrainState(
        generator, discriminator, ema,
        torch.optim.Adam(generator.parameters(), lr=train["lr_g"], betas=betas),
        torch.optim.Adam(discriminator.parameters(), lr=train["lr_d"], betas=betas),
        replay=ReplayBuffer(train["d_replay_size"]) if train["d_replay"] > 0 else None,
    )


def _every_output_in_graph(loss: torch.Tensor, out) -> torch.Tensor:
    """loss + 0 x every output of D: with a loss weight of 0 some heads would get no gradient,
    which DistributedDataParallel (find_unused_parameters=False) reports as an unfinished reduction."""
    return loss + sum(getattr(out, f.name).sum() for f in dataclasses.fields(out)
                      if getattr(out, f.name).is_floating_point()) * 0.0


def _with_replay(state: TrainState, fake: torch.Tensor, captions, text, cache: TextCache, params: dict,
                 device: torch.device, ctx: DistContext):
    """(D's fake batch, its text): with train.d_replay, its last rows are earlier generator outputs from the
    buffer, each read with the caption it was made for, and the rows they replace go to the buffer
    (training/replay.py); without it, the batch as it is."""
    if state.replay is None:
        return fake, text
    keep = len(captions) - replayed_rows(params["train"]["d_replay"], len(captions))
    replaced = fake, text
    if len(state.replay):
        old, old_captions = state.replay.sample(len(captions) - keep)
        replaced = (torch.cat([fake[:keep], old.to(fake.dtype)]),
                    pad_words(cache.batch(list(captions[:keep]) + old_captions).to(device), ctx))
    state.replay.offer(fake[keep:], list(captions[keep:]))
    return replaced


def train_step(state: TrainState, batches, cache: TextCache, params: dict, device: torch.device,
               checkpoint: Path, ctx: DistContext = ONE_PROCESS, wrapped: tuple | None = None) -> dict[str, float]:
    """One generator update preceded by `d_steps` discriminator updates; returns the losses.

    Among several ranks `wrapped` holds the DDP-wrapped (G, D): the updates go through them
    and the losses see the discriminator outputs of the whole global batch."""
    z_dim, loss_cfg = params["model"]["z_dim"], params["loss"]
    G, D = state.generator, state.discriminator
    G_sync, D_sync = wrapped or (G, D)
    amp = autocast_for(device, params["train"]["precision"])
    logs: dict[str, float] = {}

    def shift(mels: torch.Tensor) -> torch.Tensor:  # DiffAugment in time (training/augment.py); 0 = the paper's
        return random_time_shift(mels, params["train"]["d_augment_shift"])

    def noise(rows: int) -> torch.Tensor:  # drawn for the global batch; this rank keeps its rows
        return torch.randn(rows * ctx.world_size, z_dim, device=device)[ctx.rows(rows * ctx.world_size)]

    # train.reuse_d_step (the demo's): the G update reuses the last D step's generator output, kept with
    # its graph, and that step's real features for F2R, instead of a second G forward and a no-grad
    # D(real) pass (-20 % per step at the demo's size; the paper's loop keeps both).
    d_steps, reuse = params["train"]["d_steps"], params["train"]["reuse_d_step"]
    train_cfg = params["train"]
    if train_cfg["lr_decay_start"] is not None:  # training/schedule.py; the paper's rates stay constant
        scale = lr_scale(state.step, train_cfg["steps"], train_cfg["lr_decay_start"])
        set_learning_rates([(state.opt_g, train_cfg["lr_g"]), (state.opt_d, train_cfg["lr_d"])], scale)
        logs["lr_scale"] = scale
    for d_step in range(d_steps):
        mels, captions = next(batches)
        mels, text = mels.to(device), pad_words(cache.batch(captions).to(device), ctx)
        caption_ids = gather_rows(text.caption_ids, ctx)
        with amp:
            if reuse and d_step == d_steps - 1:
                z_g = noise(len(captions))
                fake_for_g = G_sync(z_g, text)
                fake = fake_for_g.detach()
            else:
                with torch.no_grad():
                    fake = G(noise(len(captions)), text)
            # R1 (loss.r1, off in the paper's objective) every r1_every D updates, scaled by it (lazy, StyleGAN2)
            r1_due = loss_cfg["r1"] > 0 and (state.step * d_steps + d_step) % loss_cfg["r1_every"] == 0
            real_in = shift(mels).requires_grad_(r1_due)
            fake_in, fake_text = _with_replay(state, fake.detach(), captions, text, cache, params, device, ctx)
            real_out, fake_out = D_sync(real_in, text), D_sync(shift(fake_in), fake_text)
        real_all, fake_all = gather_output(fp32(real_out), ctx), gather_output(fp32(fake_out), ctx)
        loss_d, logs_d = discriminator_objective(real_all, fake_all, caption_ids, loss_cfg)
        if loss_cfg["lecam"] > 0:  # issue 19: D's logits held near their moving averages (LeCam, limited data)
            state.lecam_anchors = lecam_anchors(state.lecam_anchors, real_all.logit, fake_all.logit,
                                                loss_cfg["lecam_decay"])
            penalty = lecam_penalty(real_all.logit, fake_all.logit, *state.lecam_anchors)
            loss_d = loss_d + loss_cfg["lecam"] * penalty
            logs_d["d/lecam"] = float(penalty.detach())
        if r1_due:
            penalty = r1_penalty(real_out.logit.float(), real_in)
            loss_d = loss_d + 0.5 * loss_cfg["r1"] * loss_cfg["r1_every"] * penalty
            logs_d["d/r1"] = float(penalty.detach())
        if loss_cfg["mismatch"] > 0:  # issue 19: real clips with the next row's caption are fakes for D
            wrong_text = cache.batch(list(captions[1:]) + list(captions[:1])).to(device)
            with amp:
                wrong_logit = D_sync(shift(mels), wrong_text).logit
            mismatch = mismatched_text_loss(wrong_logit.float())
            loss_d = loss_d + loss_cfg["mismatch"] * mismatch
            logs_d["d/mismatch"] = float(mismatch.detach())
        if ctx.active:
            loss_d = _every_output_in_graph(_every_output_in_graph(loss_d, real_out), fake_out)
        _check_finite(logs_d, state.step, checkpoint)
        state.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        state.opt_d.step()
        logs.update(logs_d)
    D.requires_grad_(False)
    try:
        with amp:
            if reuse:
                fake, real_out = fake_for_g, dataclasses.replace(real_out, feature=real_out.feature.detach())
            else:
                z_g = noise(len(captions))
                fake = G_sync(z_g, text)
                with torch.no_grad():
                    real_out = D(shift(mels), text)
            fake_out = D(shift(fake), text)
        loss_g, logs_g = generator_objective(gather_output(fp32(fake_out), ctx), gather_output(fp32(real_out), ctx),
                                             caption_ids, loss_cfg)
        if loss_cfg["mode_seeking"] > 0:  # issue 19 (losses/mode_seeking.py); off in the paper's objective
            with amp:
                seeking = mode_seeking_term(G_sync, text, z_g, fake, loss_cfg["mode_seeking_rows"],
                                            loss_cfg["mode_seeking_cap"]).float()
            loss_g = loss_g + loss_cfg["mode_seeking"] * seeking
            logs_g["g/mode_seeking"] = float(seeking.detach())
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
    """The artifact that `generate` and `synthesize` load: EMA generator (if any), discriminator, settings (the
    loss weights tell the offline re-ranker whether D's G2S heads were trained), the text encoder (text_info) and
    the vocoder its front end (`audio`) was made for."""
    generator = state.generator_ema if state.generator_ema is not None else state.generator
    write_torch(path, {"generator": generator.state_dict(), "discriminator": state.discriminator.state_dict(),
                       "model": params["model"], "loss": params["loss"], "audio": params["audio"], "text": text_info,
                       "vocoder": params["generate"]["vocoder"],
                       "step": state.step, "stand_ins": stand_ins(params)})


def train(params: dict, shards: str | Path, text: str | Path, run_dir: str | Path, metrics_path: str | Path,
          max_steps: int | None = None, evaluation: EvalInputs | None = None) -> dict:
    """Train (or resume) in this process; under torchrun, as one rank of several. With ``evaluation`` (where
    the dev set is) and `train.eval_every` > 0 the EMA generator is scored during training (periodic_eval.py)."""
    ctx = start(params["train"]["device"])
    threads = torch.get_num_threads()
    if ctx.device.type == "cpu" and params["train"]["cpu_threads"]:
        torch.set_num_threads(params["train"]["cpu_threads"])
    try:
        return _train(ctx, params, shards, text, Path(run_dir), metrics_path, max_steps, evaluation)
    finally:
        torch.set_num_threads(threads)  # the caller's setting again (tests, notebooks train in-process)
        stop(ctx)


def _resume(state: TrainState, checkpoint: Path, config_fp: str, ctx: DistContext) -> bool:
    """Every rank loads the same checkpoint; rank 0 alone sets a stale one aside, after the others read."""
    resumed = try_resume(state, checkpoint, config_fp, set_aside_stale=not ctx.active)
    if not ctx.active:
        return resumed
    ctx.barrier()
    if ctx.is_main and not resumed:
        try_resume(state, checkpoint, config_fp)
    steps = gather_rows(torch.tensor([state.step], device=ctx.device), ctx)
    if len(set(steps.tolist())) > 1:
        raise RuntimeError(f"{checkpoint}: the ranks resumed at different steps {steps.tolist()}; "
                           "the run folder must be on a file system that every node sees")
    return resumed


def _train(ctx: DistContext, params: dict, shards: str | Path, text: str | Path, run_dir: Path,
           metrics_path: str | Path, max_steps: int | None, eval_inputs: EvalInputs | None = None) -> dict:
    train_cfg, seed = params["train"], params["seed"]
    local_batch_size(train_cfg["batch_size"], ctx.world_size)
    # mode_seeking: each rank would score its own rows alone; r1: DDP's reducer does not take a double backward;
    # mismatch: a third D forward the reducer would have to wait for; d_replay: each rank's buffer would differ
    for section, term in (("loss", "mode_seeking"), ("loss", "r1"), ("loss", "mismatch"), ("train", "d_replay")):
        if params[section][term] > 0 and ctx.world_size > 1:
            raise ValueError(f"{section}.{term} is not implemented for several training processes "
                             "(train.processes_per_node x train.nodes > 1): set it to 0 or train in one process")
    if ctx.world_size != configured_world_size(train_cfg):
        log.warning("running in %d processes, but train.processes_per_node x train.nodes = %d",
                    ctx.world_size, configured_world_size(train_cfg))
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    device = ctx.device
    cache = TextCache(text)
    state = build_state(params, cache.info, device, several_ranks=ctx.active)
    checkpoint = run_dir / "checkpoints" / "last.pt"
    data_identity = {"shards": [s["sha256"] for s in read_index(shards)["shards"]],
                     "text": fingerprint({"info": cache.info, "captions": cache.captions})}
    config_fp = training_fingerprint(params, data_identity)
    resumed = _resume(state, checkpoint, config_fp, ctx)
    wrapped = (wrap(state.generator, ctx), wrap(state.discriminator, ctx)) if ctx.active else None
    end = train_cfg["steps"]  # the run's end; --max-steps may stop it short (an interruption, resumable)
    target = end if max_steps is None else min(max_steps, end)
    evaluation = periodic_eval(params, run_dir, eval_inputs, config_fp, state.step, resumed, ctx.is_main,
                               lambda path: export_model(state, params, cache.info, path))
    tracker = Tracker(params, run_dir, resume=resumed, data_hash=fingerprint(data_identity)) if ctx.is_main else None
    n_params = {"params_g": sum(p.numel() for p in state.generator.parameters()),
                "params_d": sum(p.numel() for p in state.discriminator.parameters())}
    log.info("training on %s (%d process(es)): G %d params, D %d params, steps %d -> %d", device, ctx.world_size,
             n_params["params_g"], n_params["params_d"], state.step, target)

    def new_stream(origin: int) -> CountedStream:
        return CountedStream(batch_stream(shards, train_cfg["batch_size"], seed, train_cfg["shuffle_buffer"],
                                          train_cfg["num_workers"], start_epoch=origin, rank=ctx.rank,
                                          world_size=ctx.world_size), origin)

    # A checkpoint written off schedule (on a stop signal) stands `stream_drawn` batches into the stream
    # started at `stream_origin`: start that stream again and drop them. Starting a DataLoader draws from
    # the global RNG, which the interrupted run had already done, so its saved state is put back after.
    rng = (torch.get_rng_state(), torch.cuda.get_rng_state() if device.type == "cuda" else None)
    batches = new_stream(state.stream_origin if resumed else state.step)
    if resumed and state.stream_drawn:
        log.info("fast-forwarding the batch stream by %d batches (checkpoint written off schedule)",
                 state.stream_drawn)
        batches.skip(state.stream_drawn)
        torch.set_rng_state(rng[0])
        if rng[1] is not None:
            torch.cuda.set_rng_state(rng[1])
    # Evaluations fall on train.eval_every and train.steps' end, not on a --max-steps stop short of it: that
    # stop is an interruption (as a signal's), and the resumed run's history must be an uninterrupted one's.
    if resumed and evaluation is not None and evaluation.due(state.step, end) and any_rank(
            ctx.is_main and all(entry["step"] != state.step for entry in evaluation.history), ctx):
        evaluation.run(state.step, tracker, ctx)  # the evaluation a stop skipped (below); rank 0 holds the history
    def checkpoint_here(scheduled: bool) -> None:
        """last.pt now. Off schedule, the resumed run restarts this batch stream and drops what it drew; on
        schedule the stream restarts here (a fresh one per scheduled checkpoint)."""
        state.stream_origin, state.stream_drawn = (state.step, 0) if scheduled else (batches.origin, batches.drawn)
        if ctx.is_main:
            if evaluation is not None:  # eval.json and best.pt of the steps before this one (periodic_eval.py)
                evaluation.settle(tracker, wait_below=state.step)
            save_checkpoint(state, checkpoint, config_fp, ctx.world_size)
        ctx.barrier()

    window, logs, started, status = [], {}, time.perf_counter(), "FAILED"
    first_step = state.step
    try:
        with StopRequest() as stop:
            while state.step < target:
                logs = state.last_losses = train_step(state, batches, cache, params, device, checkpoint, ctx, wrapped)
                window.append(logs)
                if state.step % train_cfg["log_every"] == 0 or state.step == target:
                    # a term logged on some steps only (lazy R1) is the mean of the steps that ran it
                    keys = dict.fromkeys(k for w in window for k in w)
                    means = {k: float(np.mean([w[k] for w in window if k in w])) for k in keys}
                    if tracker is not None:
                        tracker.metrics(means, state.step)
                    log.info("step %d: %s", state.step, ", ".join(f"{k} {v:.3f}" for k, v in sorted(means.items())))
                    window = []
                # Before the checkpoint of this step; not when stopping (an evaluation can outlast a signal's grace
                # period): the resumed run makes it up before its first step.
                if evaluation is not None and evaluation.due(state.step, end) and not stop.requested(ctx):
                    evaluation.run(state.step, tracker, ctx)
                # train.steps' end is on schedule; a stop at --max-steps short of it is not (like a stop signal's)
                scheduled = state.step % train_cfg["checkpoint_every"] == 0 or state.step == end
                if scheduled or state.step == target:
                    checkpoint_here(scheduled)
                if scheduled:
                    batches = new_stream(state.step)
                if ctx.is_main and (state.step % train_cfg["sample_every"] == 0 or state.step == target):
                    log_samples(state, cache, params, run_dir / "samples", tracker, device)
                if state.step < target and stop.requested(ctx):
                    if not scheduled:  # (a scheduled checkpoint was just written, and is exact)
                        checkpoint_here(scheduled=False)
                    status = "KILLED"  # MLflow's word for a run stopped from outside; it resumes into the same run
                    raise TrainingStopped(state.step, stop.signal_name, checkpoint)
            if evaluation is not None and ctx.is_main:  # the last evaluations, still under the stop handler
                evaluation.settle(tracker)
        status = "FINISHED"
    finally:
        wrapped = None  # freed by stop() before the process group, even if an error keeps this frame
        if evaluation is not None:
            evaluation.close()
        if tracker is not None:
            tracker.close(status)
    elapsed = time.perf_counter() - started
    modules = {"generator": state.generator, "discriminator": state.discriminator}
    if state.generator_ema is not None:
        modules["generator_ema"] = state.generator_ema
    check_replicas_identical(modules, ctx)
    # What the run learnt (identical for identical runs: the DVC metric) and how long it took
    # (different every time: kept apart in the run folder, paths.TIMING_FILE).
    metrics = {"steps": state.step, "device": str(device), "processes": ctx.world_size,
               "last_losses": logs if state.step > first_step else state.last_losses,
               **n_params, **{f"stand_in.{k}": v for k, v in stand_ins(params).items()},
               **(evaluation.summary() if evaluation is not None else {})}
    timing = {"steps_this_run": state.step - first_step, "seconds": elapsed,
              "seconds_per_step": elapsed / max(1, state.step - first_step),
              "eval_seconds": evaluation.seconds if evaluation is not None else 0.0}
    if ctx.is_main:
        export_model(state, params, cache.info, run_dir / "model.pt")
        if evaluation is not None and train_cfg["export"] == "best":
            evaluation.export_best(run_dir / "model.pt")
        write_json(metrics_path, metrics)
        write_json(run_dir / paths.TIMING_FILE, timing)
    ctx.barrier()
    return {**metrics, **timing, "mlflow_run_id": tracker.run_id if tracker is not None else None}
