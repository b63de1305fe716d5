"""Evaluation during training: the curve while it trains, and the best checkpoint kept.

A GAN can peak and then degrade, and at the paper's settings the first score otherwise comes
after 400 000 steps. Every `train.eval_every` steps (and at the last step) the EMA generator is
exported as the model file `train` writes at its end, the generate stage makes the dev set's clips
from it (its own code, first generation seed only) and the evaluate stage's `Scorer` scores them:
FAD (and its bootstrap spread), the CLAP score where it is on, and where the data has labels the
conditioning score's mel reading and diversity (its Griffin-Lim audio reading is left out: its
readers are refitted on resynthesised clips every time, and the mel reading is the headline).
There is no second implementation of either stage here. `train.eval_fad: false` (the demo's)
makes no clips: only the generator's log-mels are read (the mel reading), which needs no vocoder.
With `train.select_by.prompts: train` that reading reads training captions instead of the dev
prompts, so a step kept as the best (`train.export: best`) is scored by the evaluate stage on
prompts it was not chosen on; the noise vectors differ too (SELECTION_NOISE_STREAM).

What each evaluation leaves:
- MLflow metrics ``eval_<name>`` at the training step (``<name>`` = the evaluate stage's MLflow
  name: eval_fad_mean, eval_cond_fg_accuracy, eval_cond_diversity, ...);
- ``checkpoints/eval.json``: every evaluation's numbers and the best so far (metrics/train.json
  and the report's metrics page read it);
- ``checkpoints/best.pt``: the model file (what model.pt holds) of the step with the best
  `train.select_by` value, and that record; with `train.keep_eval_models`, ``checkpoints/eval-<step>.pt``
  the model file of every evaluated step. Both are kept across resumes: a resumed run reads
  the evaluations up to its step back; a run that starts afresh (other settings, data or code)
  sets the old ones aside as ``*.<fingerprint>.*``, as checkpoint.py does with last.pt.

Evaluation draws from its own random streams (the generate stage's per-prompt generators, the
conditioning score's own noise) and, so that nothing it calls can move training's streams, every
global RNG (torch CPU and CUDA, numpy, Python) is saved before it and restored after: a run with
`eval_every` set ends with the same weights as one without (tests/training/test_periodic_eval.py).
Under DDP rank 0 evaluates and the other ranks wait at a barrier (their next step needs rank 0).

`train.eval_background` (the demo's): the exported model file is scored by one worker process while
training goes on (a CPU run whose training leaves a core free). The results are taken in, in step
order, as they end; a checkpoint first waits for those of the steps before its own, so that a resumed
run's history is an uninterrupted one's (the evaluation of the checkpoint's own step, if it was lost,
is made up by the resumed run, as a stop's is); the end of training waits for all. The worker runs the
same code on the same file with as many threads as training, so the figures, best.pt and model.pt
are those of the evaluation in line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import multiprocessing
import os
import random
import shutil
import signal
import tempfile
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from scenesynth import paths
from scenesynth.training.stop_signals import STOP_SIGNALS
from scenesynth.utils.atomic import atomic_path, write_json, write_torch

log = logging.getLogger(__name__)
EVAL_FILE = "eval.json"
BEST_FILE = "best.pt"
EVAL_MODEL_PREFIX = "eval-"  # train.keep_eval_models: checkpoints/eval-<step>.pt
PREFIX = "eval_"


@dataclass(frozen=True)
class EvalInputs:
    """Where the dev set, the training manifest (labels), the pre-trained models and the embedding cache are."""

    manifest: Path = Path(paths.DEV) / "manifest.parquet"
    train_manifest: Path | None = Path(paths.RAW) / "manifest.parquet"
    pretrained: Path = Path(paths.PRETRAINED)
    cache: Path = Path(paths.EMBEDDING_CACHE)


@contextlib.contextmanager
def isolated_rng():
    """Every global random stream as it was before the block, whatever the block draws."""
    cpu, py, np_state = torch.get_rng_state(), random.getstate(), np.random.get_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        torch.set_rng_state(cpu)
        random.setstate(py)
        np.random.set_state(np_state)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def better(value: float, best: float | None, mode: str) -> bool:
    """Strictly better in the direction ``mode`` (min: lower wins; max: higher wins); NaN never wins."""
    if not np.isfinite(value):
        return False
    return best is None or (value < best if mode == "min" else value > best)


def check_settings(params: dict, inputs: EvalInputs | None) -> None:
    """One-line errors before the first step for settings evaluation cannot honour."""
    train, cfg = params["train"], params["evaluate"]
    if train["export"] == "best" and not train["eval_every"]:
        raise ValueError("train.export is 'best' but train.eval_every is 0: nothing is evaluated, so there is no best")
    if train["export"] == "best" and inputs is None:
        raise ValueError("train.export is 'best' but this run is given no dev set to evaluate on, so there is no "
                         "best: pass the evaluation inputs (scenesynth train --dev-manifest ...) or export 'last'")
    if not train["eval_every"] or inputs is None:
        return
    metric = train["select_by"]["metric"]
    if train["select_by"]["prompts"] == "train" and train["eval_fad"]:
        raise ValueError("train.select_by.prompts is 'train' but train.eval_fad is true: FAD and the CLAP score read "
                         "the dev set's clips; training captions are read by the mel reading alone (eval_fad false)")
    if not metric.startswith("cond_") and not train["eval_fad"]:
        raise ValueError(f"train.select_by.metric is {metric} but train.eval_fad is false (the mel reading only)")
    if metric.startswith("cond_") and not cfg["conditioning"]:
        raise ValueError(f"train.select_by.metric is {metric} but evaluate.conditioning is false")
    if metric.startswith("clap_") and not cfg["clap_score"]:
        raise ValueError(f"train.select_by.metric is {metric} but evaluate.clap_score is false")
    for path, stage in ((inputs.manifest, "dev_set"), (inputs.manifest.with_name("reference.json"), "dev_set")):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: not found; train.eval_every > 0 scores the dev set during training: "
                                    f"run the {stage} stage first, or set train.eval_every: 0")


def kept_models(folder: Path) -> dict[int, Path]:
    """train.keep_eval_models' files in ``folder``, {step: path}; those another run set aside are not among them."""
    steps = {path: path.stem[len(EVAL_MODEL_PREFIX):] for path in Path(folder).glob(f"{EVAL_MODEL_PREFIX}*.pt")}
    return {int(step): path for path, step in sorted(steps.items()) if step.isdigit()}


def _set_aside(path: Path, fingerprint: str | None) -> None:
    if path.exists():
        kept = path.with_name(f"{path.stem}.{fingerprint or 'unknown'}{path.suffix}")
        path.replace(kept)
        log.warning("%s belongs to another run (other settings, data or code): kept as %s", path, kept.name)


class PeriodicEval:
    """``due(step, target)`` then ``run(state, tracker, ctx)``; ``summary()`` for metrics/train.json."""

    def __init__(self, params: dict, run_dir: Path, inputs: EvalInputs, config_fp: str,
                 export: Callable[[Path], None] | None, background: bool = False):
        self.params, self.inputs, self.config_fp, self.export = params, inputs, config_fp, export
        self.every, self.select_by = params["train"]["eval_every"], params["train"]["select_by"]
        self.folder = Path(run_dir) / "checkpoints"
        self.history: list[dict] = []
        self.best: dict | None = None
        self.seconds = 0.0
        self._scorer = None
        self._prompts = None
        self.pending: list[tuple[int, Path, Future]] = []
        self.background = _Worker(params, run_dir, inputs, config_fp) if background else None

    # ------------------------------------------------------------------ state across resumes
    def restore(self, step: int, resumed: bool) -> None:
        """Read the evaluations up to ``step`` back (a resumed run), or set old files aside (a fresh one)."""
        record_path, best_path = self.folder / EVAL_FILE, self.folder / BEST_FILE
        for leftover in [*self.folder.glob(".eval.partial-*"), self.folder / ".eval-embeddings"]:
            shutil.rmtree(leftover, ignore_errors=True)  # what an evaluation killed half-way left
        record = json.loads(record_path.read_text()) if record_path.is_file() else None
        if not resumed or record is None or record.get("fingerprint") != self.config_fp:
            old = record.get("fingerprint") if record else None
            _set_aside(record_path, old)
            _set_aside(best_path, old)
            for kept in kept_models(self.folder).values():  # train.keep_eval_models' files of that run
                _set_aside(kept, old)
            return
        self.history = [entry for entry in record["history"] if entry["step"] <= step]
        for kept_step, kept in kept_models(self.folder).items():  # evaluated after the checkpoint resumed from
            if kept_step > step:
                kept.unlink()
        if record.get("select_by") != self.select_by:  # best.pt was chosen by another rule: choose again from now
            log.warning("train.select_by changed from %s: %s set aside", record.get("select_by"), best_path.name)
            _set_aside(best_path, "select_by-" + str(record.get("select_by", {}).get("metric")))
            return
        metric, mode = self.select_by["metric"], self.select_by["mode"]
        for entry in self.history:
            if metric in entry and better(entry[metric], None if self.best is None else self.best["value"], mode):
                self.best = {"step": entry["step"], "metric": metric, "mode": mode, "value": entry[metric]}
        if self.best != record.get("best"):  # stopped between writing best.pt and last.pt: the rerun rewrites it
            log.warning("best.pt holds %s, the evaluations up to step %d say %s", record.get("best"), step, self.best)
        log.info("periodic evaluation: %d earlier evaluation(s) read back, best %s", len(self.history), self.best)

    def due(self, step: int, target: int) -> bool:
        return step % self.every == 0 or step == target

    # ------------------------------------------------------------------ one evaluation
    def scorer(self):
        if self._scorer is None:
            from scenesynth.evaluation.conditioning_score import SELECTION_NOISE_STREAM
            from scenesynth.evaluation.evaluate import Scorer

            self._scorer = Scorer(self.params, self.inputs.manifest, self.inputs.pretrained,
                                  self.inputs.train_manifest, self.inputs.cache,
                                  generated_cache=self.folder / ".eval-embeddings", audio_reading=False,
                                  noise_stream=SELECTION_NOISE_STREAM)
        return self._scorer

    def prompts(self):
        """What the mel reading reads: None (the dev prompts) or, with ``select_by.prompts: train``, training
        captions drawn once (conditioning_score.selection_prompts), so that the step kept as the best is
        then scored by the evaluate stage on prompts it was not chosen on."""
        scorer = self.scorer()
        if self.select_by["prompts"] == "train" and self._prompts is None and scorer.real is not None:
            from scenesynth.evaluation.conditioning_score import selection_prompts

            self._prompts = selection_prompts(scorer.real, scorer.dev, self.select_by["n_prompts"],
                                              self.params["seed"])
            log.info("periodic evaluation reads %d training captions (train.select_by.prompts)", len(self._prompts))
        return self._prompts

    def score(self, model: Path) -> dict[str, float]:
        """One exported model file's numbers, {MLflow name: value}: the mel reading alone (train.eval_fad
        false), or the dev set's clips generated from it and scored as the evaluate stage does."""
        from scenesynth.evaluation.generated import generated_sets
        from scenesynth.inference.generate import generate_dev_set

        scorer = self.scorer()
        if not self.params["train"]["eval_fad"]:  # the generator's log-mels only: no clips, no vocoder
            flat = scorer.mel_reading(model, self.prompts())
        else:
            params = {**self.params, "generate": {**self.params["generate"],
                                                   "seeds": self.params["generate"]["seeds"][:1]}}
            generate_dev_set(params, model, self.inputs.manifest, model.parent / "clips", self.inputs.pretrained)
            sets, _ = generated_sets(model.parent / "clips", scorer.keys)
            try:
                flat = scorer.score(sets, model)["flat"]
            finally:
                shutil.rmtree(self.folder / ".eval-embeddings", ignore_errors=True)  # this step's clips only
        metric = self.select_by["metric"]
        if metric not in flat:
            raise ValueError(f"train.select_by.metric {metric} was not measured (measured: {', '.join(flat)})")
        return flat

    def evaluate(self, step: int) -> dict[str, float]:
        """The current weights exported and scored in line, nothing recorded (benchmarks/periodic_eval.py)."""
        model = self._export(step)
        try:
            return self.score(model)
        finally:
            shutil.rmtree(model.parent, ignore_errors=True)

    def _export(self, step: int) -> Path:
        """The current weights as a model file in a temporary folder of their own (and, with
        train.keep_eval_models, kept as checkpoints/eval-<step>.pt)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        model = Path(tempfile.mkdtemp(prefix=".eval.partial-", dir=self.folder)) / "model.pt"
        self.export(model)
        if self.params["train"]["keep_eval_models"]:  # what the run made at this step, kept beside best.pt
            with atomic_path(self.folder / f"{EVAL_MODEL_PREFIX}{step:06d}.pt") as kept:
                shutil.copyfile(model, kept)
        return model

    def _take_in(self, step: int, model: Path, flat: dict[str, float], seconds: float, tracker) -> None:
        """An evaluation's numbers into best.pt, eval.json, MLflow and the log; its folder removed."""
        try:
            metric, mode = self.select_by["metric"], self.select_by["mode"]
            if better(flat[metric], None if self.best is None else self.best["value"], mode):
                self.best = {"step": step, "metric": metric, "mode": mode, "value": float(flat[metric])}
                saved = torch.load(model, map_location="cpu", weights_only=True)
                write_torch(self.folder / BEST_FILE, {**saved, "best": self.best, "fingerprint": self.config_fp})
        finally:
            shutil.rmtree(model.parent, ignore_errors=True)
        self.seconds += seconds
        self.history = [e for e in self.history if e["step"] < step] + [{"step": step, **flat}]
        write_json(self.folder / EVAL_FILE, {"fingerprint": self.config_fp, "every": self.every,
                                             "select_by": self.select_by, "best": self.best,
                                             "history": self.history})
        if tracker is not None:
            tracker.metrics({PREFIX + k: v for k, v in flat.items()}, step)
        log.info("step %d: evaluation in %.1f s: %s (best %s = %.4g at step %d)", step, seconds,
                 ", ".join(f"{k} {v:.4g}" for k, v in sorted(flat.items())),
                 self.best["metric"] if self.best else "-", self.best["value"] if self.best else float("nan"),
                 self.best["step"] if self.best else -1)

    def run(self, step: int, tracker, ctx) -> None:
        """Rank 0 evaluates (global RNGs untouched), the other ranks wait for it; in the background
        (train.eval_background) rank 0 hands the model file to the worker and goes on."""
        if ctx.is_main:
            self.settle(tracker, wait_below=0)
            model = self._export(step)
            if self.background is not None:
                self.pending.append((step, model, self.background.submit(model)))
            else:
                started = time.perf_counter()
                try:
                    with isolated_rng():
                        flat = self.score(model)
                except BaseException:
                    shutil.rmtree(model.parent, ignore_errors=True)
                    raise
                self._take_in(step, model, flat, time.perf_counter() - started, tracker)
        ctx.barrier()

    def settle(self, tracker, wait_below: float = math.inf) -> None:
        """Take in the background evaluations, in step order: those of steps below ``wait_below``, waiting
        for them, and any later ones that have ended. Before a checkpoint (``wait_below`` its step) every
        earlier evaluation is in eval.json, and the one of its own step, if lost, is made up by the resumed
        run as a stop's is. A worker's error is raised here, as it would have been in line."""
        while self.pending and (self.pending[0][0] < wait_below or self.pending[0][2].done()):
            step, model, future = self.pending.pop(0)
            try:
                flat, seconds = future.result()
            except BaseException:
                shutil.rmtree(model.parent, ignore_errors=True)
                raise
            self._take_in(step, model, flat, seconds, tracker)

    def close(self) -> None:
        """Stop the worker (evaluations not taken in are dropped; a resumed run makes up the last one)."""
        if self.background is not None:  # first: a running evaluation would write into the folders below again
            self.background.shutdown(cancel_futures=True)
            self.background = None
        for _, model, _ in self.pending:
            shutil.rmtree(model.parent, ignore_errors=True)
        self.pending = []

    # ------------------------------------------------------------------ the end of training
    def summary(self) -> dict:
        """metrics/train.json's part: best step and value, and every evaluation (the curves)."""
        best = self.best or {}
        return {"best_step": best.get("step"), "best_value": best.get("value"),
                "select_by": self.select_by, "eval_every": self.every, "exported": self.params["train"]["export"],
                "eval_history": self.history}

    def export_best(self, model_path: Path) -> None:
        """model.pt := best.pt's model (train.export: best); the last weights stay when nothing scored."""
        if self.best is None:
            log.warning("train.export is 'best' but no evaluation gave a finite %s: model.pt holds the last step",
                        self.select_by["metric"])
            return
        saved = torch.load(self.folder / BEST_FILE, map_location="cpu", weights_only=True)
        write_torch(model_path, {k: v for k, v in saved.items() if k != "fingerprint"})


# ----------------------------------------------------------------------------- the background worker
_WORKER: PeriodicEval | None = None


def _worker_init(params: dict, run_dir: str, inputs: EvalInputs, config_fp: str, threads: int) -> None:
    """The worker's one PeriodicEval (its Scorer built once), training's thread count, and no stop signal:
    SLURM signals every process of the job; the training process decides when to stop."""
    global _WORKER
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:  # a worker whose training died (SIGKILL, out of memory) must not linger
        threading.Thread(target=lambda: (parent.join(), os._exit(0)), daemon=True).start()
    torch.set_num_threads(threads)
    _WORKER = PeriodicEval(params, Path(run_dir), inputs, config_fp, export=None)


def _worker_score(model: str) -> tuple[dict[str, float], float]:
    started = time.perf_counter()
    return _WORKER.score(Path(model)), time.perf_counter() - started


class _Worker:
    """One spawned process that scores model files; ``submit(path)`` -> Future of (numbers, seconds)."""

    def __init__(self, params: dict, run_dir: Path, inputs: EvalInputs, config_fp: str):
        self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init,
                                        initargs=(params, str(run_dir), inputs, config_fp, torch.get_num_threads()))

    def submit(self, model: Path) -> Future:
        return self.pool.submit(_worker_score, str(model))

    def shutdown(self, cancel_futures: bool = False) -> None:
        self.pool.shutdown(wait=True, cancel_futures=cancel_futures)


def periodic_eval(params: dict, run_dir: Path, inputs: EvalInputs | None, config_fp: str, step: int,
                  resumed: bool, is_main: bool, export: Callable[[Path], None]) -> PeriodicEval | None:
    """The run's periodic evaluation, or None when `train.eval_every` is 0 or no dev set is given
    (`train()` called without ``evaluation``, as the unit tests do). Rank 0 alone reads or sets aside
    the earlier evaluations; every rank gets the object (it holds the barrier the others wait at)."""
    check_settings(params, inputs)
    if not params["train"]["eval_every"] or inputs is None:
        return None
    evaluation = PeriodicEval(params, run_dir, inputs, config_fp, export,
                              background=is_main and params["train"]["eval_background"])
    if is_main:
        evaluation.restore(step, resumed)
    return evaluation
