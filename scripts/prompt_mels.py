"""One dev prompt per foreground kind: the generator's log-mels for 3 noise vectors beside a real clip (one PNG).

Run after `make demo` (or any run with labelled dev prompts) in the project folder:

    python scripts/prompt_mels.py --overlay config/demo.yaml --out docs/figures/demo_prompts.png

One prompt per foreground kind (every kind, the first prompt of each in the dev set's order); each
row shows the generator's log-mel for ``--z`` noise vectors (the model file's weights, before any
vocoder) and the prompt's real dev clip through the same front end, on one colour scale. Three
panels of one prompt that look alike are a generator that ignores its noise (issue 19).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

REPO = Path(__file__).resolve().parents[1]


def run_folder_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every script that reads a finished run's folder takes (defaults: `make demo`'s paths)."""
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--overlay", default="config/demo.yaml")
    parser.add_argument("--model", default="runs/train/model.pt")
    parser.add_argument("--dev", default="data/dev/manifest.parquet")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    run_folder_arguments(parser)
    parser.add_argument("--out", default="docs/figures/demo_prompts.png")
    parser.add_argument("--z", type=int, default=3, help="noise vectors per prompt (default: %(default)s)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    from scenesynth.config import load_params
    from scenesynth.data.manifest import read_dev_prompts
    from scenesynth.evaluation.conditioning_score import generator_mels, real_mels
    from scenesynth.features.mel import MelFrontEnd

    params = load_params(args.params, args.overlay)
    dev = read_dev_prompts(args.dev)
    rows = dev.drop_duplicates("foreground").sort_values("foreground").reset_index(drop=True)
    front_end = MelFrontEnd.from_params(params["audio"])
    _, real, _ = real_mels(rows, front_end)
    generated = generator_mels(args.model, list(rows["caption"]), args.z, params["seed"], "data/pretrained")
    vmin = float(np.log(front_end.settings.log_clamp))
    vmax = max(float(generated.max()), max(float(m.max()) for m in real))
    fig = Figure(figsize=(3.2 * (args.z + 1), 1.9 * len(rows)), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), args.z + 1, squeeze=False)
    seconds = front_end.settings.n_frames * front_end.settings.hop_length / front_end.settings.sample_rate
    for i, row in rows.iterrows():
        panels = [(generated[i, k], f"generated, z {k + 1}") for k in range(args.z)]
        panels.append((real[i], f"real dev clip ({row['foreground']} / {row['background']})"))
        for ax, (mel, title) in zip(axes[i], panels):
            ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
                      extent=(0.0, mel.shape[1] / front_end.settings.n_frames * seconds, 0, mel.shape[0]),
                      interpolation="nearest")
            ax.set_title(title, fontsize=9)
        axes[i][0].set_ylabel(f"{row['foreground']}\nmel bin", fontsize=9)
        axes[i][0].set_title(f"\"{row['caption'][:44]}\", z 1", fontsize=8)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, format="png")
    print(f"{args.out}: {len(rows)} prompts x ({args.z} generated + 1 real) log-mels")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
