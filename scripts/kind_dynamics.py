"""How steady each foreground kind is in time: real training clips against the generator's log-mels.

Run after `make demo` (or any run with labelled clips) in the project folder:

    python scripts/kind_dynamics.py --overlay config/demo.yaml [--model runs/train/model.pt] [--json]

Per foreground kind and per group of mel bins (low = the lowest quarter, where knocks and the engine
sit; all = every bin): the mean over clips of each bin's standard deviation over time and of its mean
|frame-to-frame difference|, and the share of frames where the low band rises more than 3 (log units)
above its own median (an event: a knock, a thud). The mel reading's features are per-bin mean, std and
mean |difference| over time (evaluation/conditioning.py), so a generated kind whose std and difference
fall short of the real one's is read as a steadier kind: issue 19's knocks, read as the engine.
Generated log-mels: ``--z`` noise vectors per dev prompt (the model file's weights), floored at the
front end's log clamp as real ones are.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from prompt_mels import run_folder_arguments  # this folder: the script's own directory is on sys.path

REPO = Path(__file__).resolve().parents[1]
EVENT_RISE = 3.0  # log units above the low band's median: a knock at the demo's levels rises 3-6


def dynamics(mels: np.ndarray) -> dict[str, float]:
    """[N, F, T] log-mels -> time std and mean |difference| (low quarter of the bins, and all), event share."""
    low = mels[:, : max(1, mels.shape[1] // 4)]
    band = low.mean(axis=1)
    events = band - np.median(band, axis=1, keepdims=True) > EVENT_RISE
    return {"low_std": float(low.std(axis=2).mean()), "low_diff": float(np.abs(np.diff(low, axis=2)).mean()),
            "all_std": float(mels.std(axis=2).mean()), "all_diff": float(np.abs(np.diff(mels, axis=2)).mean()),
            "event_frames": float(events.mean())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    run_folder_arguments(parser)
    parser.add_argument("--train-manifest", default="data/raw/manifest.parquet")
    parser.add_argument("--pretrained", default="data/pretrained")
    parser.add_argument("--z", type=int, default=4, help="noise vectors per prompt (default: %(default)s)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    from scenesynth.config import load_params
    from scenesynth.data.manifest import read_dev_prompts, read_manifest
    from scenesynth.evaluation.conditioning_score import generator_mels, load_real_clips

    params = load_params(args.params, args.overlay)
    dev = read_dev_prompts(args.dev)
    manifest = read_manifest(args.train_manifest)
    real = load_real_clips(params, manifest[manifest["split"] == "train"], dev)
    frames = params["audio"]["n_frames"]
    generated = generator_mels(args.model, list(dev["caption"]), args.z, params["seed"], args.pretrained)
    generated = np.maximum(generated, np.log(params["audio"]["log_clamp"]))
    rows = []
    for kind in sorted(set(dev["foreground"])):
        real_kind = np.stack([m[:, :frames] for m, k in zip(real.train_mels, real.train["foreground"])
                              if k == kind and m.shape[1] >= frames])
        generated_kind = generated[(dev["foreground"] == kind).to_numpy()].reshape(-1, *generated.shape[2:])
        rows += [{"kind": kind, "clips": "real", **dynamics(real_kind)},
                 {"kind": kind, "clips": "generated", **dynamics(generated_kind)}]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print("| kind | clips | low-band std | low-band mean abs diff | all-bin std | all-bin mean abs diff | event frames |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['kind']} | {row['clips']} | {row['low_std']:.2f} | {row['low_diff']:.2f} | {row['all_std']:.2f} | "
              f"{row['all_diff']:.2f} | {row['event_frames']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
