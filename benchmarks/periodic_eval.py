"""What evaluation during training (train.eval_every) costs against training, measured and estimated.

At the demo's settings, measured on this machine: training steps in the loop (`train()`, evaluation
off) and the periodic evaluation itself (`PeriodicEval.evaluate`: export, the generate stage's
clips for the dev prompts, the evaluate stage's Scorer), once cold (the Scorer loads the reference
and the conditioning's real clips) and then warm, with its parts timed. Needs the demo's data
folders (`make demo` first: data/mels, data/text, data/dev, data/raw).

At the paper's settings, estimated from measured parts: the FAD with its 1000-resample bootstrap
at 2048 dimensions and 60 clips, and one 4 s clip through PANNs Wavegram-Logmel at full width
(random weights: time does not depend on them), both measured here; a paper-size training step and
a paper-size generation per prompt (10 candidates, HiFi-GAN, CLAP re-ranking) taken from
docs/benchmarks.md (their own scripts, same machine, `--paper-step-s` / `--paper-prompt-s`).

    python benchmarks/periodic_eval.py                 # demo: 60 training steps, 2 evaluations
    python benchmarks/periodic_eval.py --eval-fad      # the same with the clips and the FAD (eval_fad: true)
    python benchmarks/periodic_eval.py --json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from scenesynth.config import load_params
from scenesynth.evaluation import evaluate as evaluate_module
from scenesynth.evaluation.bootstrap import fad_bootstrap
from scenesynth.evaluation.frechet import frechet_distance, gaussian_stats
from scenesynth.evaluation.panns import WavegramLogmelCnn14
from scenesynth.inference import generate as generate_module
from scenesynth.training.loop import train
from scenesynth.training.periodic_eval import EvalInputs, PeriodicEval

REPO = Path(__file__).resolve().parents[1]
PAPER_STEPS, PAPER_EVERY, PAPER_PROMPTS = 400_000, 10_000, 60


def timed(store: dict, name: str, owner, attr: str):
    """Wrap ``owner.attr`` so that each call adds its seconds to ``store[name]``."""
    original = getattr(owner, attr)

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            store[name] = store.get(name, 0.0) + time.perf_counter() - started

    setattr(owner, attr, wrapper)
    return lambda: setattr(owner, attr, original)


def demo_costs(args) -> dict:
    params = load_params(REPO / "params.yaml", REPO / args.overlay)
    params["mlflow"]["tracking_uri"] = "sqlite:///" + str(Path(tempfile.mkdtemp()) / "mlflow.db")
    params["train"]["eval_fad"] = params["train"]["eval_fad"] or args.eval_fad
    data = REPO / "data"
    inputs = EvalInputs(data / "dev" / "manifest.parquet", data / "raw" / "manifest.parquet", data / "pretrained",
                        data / "cache" / "embeddings")
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        quiet = {**params, "train": {**params["train"], "steps": args.steps, "eval_every": 0,
                                     "sample_every": 10**9, "checkpoint_every": 10**9}}
        step_s = train(quiet, data / "mels", data / "text", run, run / "train.json")["seconds_per_step"]  # the loop's
        state = torch.load(run / "model.pt", weights_only=True)
        evaluation = PeriodicEval(params, run, inputs, "benchmark",
                                  lambda path: torch.save(state, path))
        parts: dict[str, float] = {}
        restore = [timed(parts, "generate the dev clips", generate_module, "generate_dev_set"),
                   timed(parts, "conditioning (mel reading)", evaluate_module, "conditioning_metrics"),
                   timed(parts, "FAD bootstrap", evaluate_module, "fad_bootstrap"),
                   timed(parts, "Scorer: load reference and real clips", evaluate_module.Scorer, "__init__"),
                   timed(parts, "Scorer.score (all scoring)", evaluate_module.Scorer, "score")]
        runs = []
        try:
            for _ in range(args.evals):
                parts.clear()
                started = time.perf_counter()
                flat = evaluation.evaluate(args.steps)
                runs.append({"seconds": time.perf_counter() - started, "parts": dict(parts)})
        finally:
            for undo in restore:
                undo()
    every = params["train"]["eval_every"]
    warm = runs[-1]["seconds"]
    return {"overlay": args.overlay, "eval_fad": params["train"]["eval_fad"], "train_steps": params["train"]["steps"],
            "eval_every": every,
            "s_per_step": step_s, "eval_runs": runs, "eval_cold_s": runs[0]["seconds"], "eval_warm_s": warm,
            "evaluations": params["train"]["steps"] // every,
            "fraction": (runs[0]["seconds"] + warm * (params["train"]["steps"] // every - 1))
            / (params["train"]["steps"] * step_s), "measured": sorted(flat)}


def paper_parts(args) -> dict:
    rng = np.random.default_rng(0)
    ref, gen = rng.normal(size=(PAPER_PROMPTS, 2048)), rng.normal(size=(PAPER_PROMPTS, 2048)) + 0.1
    ref_stats = gaussian_stats(ref)
    started = time.perf_counter()
    frechet_distance(*gaussian_stats(gen), *ref_stats)
    fad_s = time.perf_counter() - started
    started = time.perf_counter()
    fad_bootstrap({"0": gen}, *ref_stats, 1000, seed=0)
    boot_s = time.perf_counter() - started
    net = WavegramLogmelCnn14().eval()
    clip = torch.randn(1, 128_000)
    with torch.no_grad():
        net(clip)  # warm-up
        started = time.perf_counter()
        for _ in range(args.panns_clips):
            net(clip)
    panns_s = (time.perf_counter() - started) / args.panns_clips
    eval_s = PAPER_PROMPTS * (args.paper_prompt_s + panns_s) + fad_s + args.sqrtm_s + boot_s
    train_s = PAPER_EVERY * args.paper_step_s
    return {"fad_2048_s": fad_s, "bootstrap_1000_s": boot_s, "panns_clip_s": panns_s,
            "paper_prompt_s": args.paper_prompt_s, "paper_step_s": args.paper_step_s, "sqrtm_s": args.sqrtm_s,
            "eval_s": eval_s, "train_between_evals_s": train_s, "fraction": eval_s / train_s}


def print_table(result: dict) -> None:
    demo, paper = result["demo"], result["paper"]
    print(f"Demo ({demo['overlay']}, eval_fad {demo['eval_fad']}): {demo['s_per_step']:.3f} s per training step; "
          f"eval_every {demo['eval_every']}"
          f" -> {demo['evaluations']} evaluations in {demo['train_steps']} steps")
    print("\n| evaluation | seconds | " + " | ".join(demo["eval_runs"][0]["parts"]) + " |")
    print("| --- | --- |" + " --- |" * len(demo["eval_runs"][0]["parts"]))
    for i, run in enumerate(demo["eval_runs"]):
        cells = " | ".join(f"{run['parts'].get(k, 0.0):.2f}" for k in demo["eval_runs"][0]["parts"])
        print(f"| {'cold' if i == 0 else 'warm'} | {run['seconds']:.2f} | {cells} |")
    print(f"\nDemo: evaluation / training time = {demo['fraction']:.1%} (1 cold + {demo['evaluations'] - 1} warm "
          f"evaluations against {demo['train_steps']} steps)")
    print(f"\nPaper (estimate): {PAPER_PROMPTS} prompts x ({paper['paper_prompt_s']:.0f} s generation + "
          f"{paper['panns_clip_s']:.2f} s PANNs) + FAD {paper['fad_2048_s']:.2f} s + sqrtm check "
          f"{paper['sqrtm_s']:.0f} s + bootstrap "
          f"{paper['bootstrap_1000_s']:.2f} s = {paper['eval_s'] / 3600:.1f} h per evaluation; "
          f"{PAPER_EVERY} steps x {paper['paper_step_s']:.0f} s = {paper['train_between_evals_s'] / 3600:.0f} h of "
          f"training between evaluations -> {paper['fraction']:.1%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--overlay", default="config/demo.yaml")
    parser.add_argument("--steps", type=int, default=60, help="training steps timed (evaluation off)")
    parser.add_argument("--evals", type=int, default=2, help="evaluations timed (the first is cold)")
    parser.add_argument("--panns-clips", type=int, default=3)
    parser.add_argument("--paper-step-s", type=float, default=15.50 * 8,
                        help="paper-size step, batch 16 (docs/benchmarks.md: 15.50 s at batch 2 on 2 CPU cores, x8)")
    parser.add_argument("--paper-prompt-s", type=float, default=832.26,
                        help="paper-size generation per prompt (docs/benchmarks.md: generator + pick_clip, CPU)")
    parser.add_argument("--sqrtm-s", type=float, default=110.0,
                        help="the FAD's scipy sqrtm cross-check at 2048-d (docs/paper.md section 6: about 110 s)")
    parser.add_argument("--eval-fad", action="store_true",
                        help="time the full evaluation (clips, FAD) at the demo's size, whatever the overlay says")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result = {"demo": demo_costs(args), "paper": paper_parts(args)}
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        print()
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
