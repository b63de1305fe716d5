"""Parameter counts, and time and peak memory of training steps at a given size (paper size by default).

One step = the loop's real `train_step`: `d_steps` discriminator updates and one generator update
with all five losses, on random mels and random text embeddings of CLAP's shapes.

    python benchmarks/train_step.py                          # paper size 256 x 1024, batch 2, cpu,
                                                             # tfsca vs axial vs full, side by side
    python benchmarks/train_step.py --device cuda --batch 16 --precision bf16
    python benchmarks/train_step.py --overlay config/demo.yaml --batch 8

Peak memory: cuda -> torch.cuda.max_memory_allocated() over the steps; cpu -> the process's peak
resident set size (ru_maxrss: weights, optimiser state, activations and the allocator's slack).
Each attention implementation runs in its own process (a process's peak cannot be reset), one after
the other in the same invocation; ratios are to `full`.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from scenesynth.config import load_params
from scenesynth.text.batch import TextBatch
from scenesynth.training.loop import build_state, train_step

REPO = Path(__file__).resolve().parents[1]


class RandomText:
    """Stands in for the text cache: random CLAP-shaped embeddings, 20 real tokens of 77."""

    def __init__(self, sentence_dim: int, word_dim: int, seed: int = 0):
        self.gen = torch.Generator().manual_seed(seed)
        self.sentence_dim, self.word_dim = sentence_dim, word_dim

    def batch(self, captions: list[str]) -> TextBatch:
        n = len(captions)
        mask = torch.arange(77)[None, :] < 20
        return TextBatch(torch.randn(n, self.sentence_dim, generator=self.gen),
                         torch.randn(n, 77, self.word_dim, generator=self.gen) * mask[..., None],
                         mask.expand(n, 77).clone(), torch.arange(n))


def batches(n_mels: int, n_frames: int, batch: int):
    gen = torch.Generator().manual_seed(1)
    while True:
        yield torch.randn(batch, 1, n_mels, n_frames, generator=gen) * 2 - 4, [f"c{i}" for i in range(batch)]


def rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(args: argparse.Namespace, attention: str) -> dict:
    params = load_params(REPO / "params.yaml", args.overlay)
    params["train"]["precision"] = args.precision
    params["model"]["attention_impl"] = attention
    device = torch.device(args.device)
    text_info = {"sentence_dim": params["text"]["sentence_dim"], "word_dim": params["text"]["word_dim"]}
    state = build_state(params, text_info, device)
    audio = params["audio"]
    stream = batches(audio["n_mels"], audio["n_frames"], args.batch)
    cache = RandomText(text_info["sentence_dim"], text_info["word_dim"])
    train_step(state, stream, cache, params, device, Path("/dev/null"))  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(args.steps):
        train_step(state, stream, cache, params, device, Path("/dev/null"))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return {"n_mels": audio["n_mels"], "n_frames": audio["n_frames"], "batch": args.batch, "device": str(device),
            "precision": args.precision, "attention": attention, "d_steps": params["train"]["d_steps"],
            "params_g": sum(p.numel() for p in state.generator.parameters()),
            "params_d": sum(p.numel() for p in state.discriminator.parameters()),
            "s_per_step": (time.perf_counter() - started) / args.steps,
            "peak_bytes": torch.cuda.max_memory_allocated() if device.type == "cuda" else rss_bytes(),
            "peak_kind": "cuda max_memory_allocated" if device.type == "cuda" else "process peak RSS"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--overlay", default=None)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2, help="timed steps (after one warm-up step)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--attention", default="tfsca,axial,full",
                        help="comma-separated model.attention_impl values to compare (default: %(default)s)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    impls = args.attention.split(",")
    if args.one:
        print(json.dumps(measure(args, impls[0])))
        return
    rows = []
    for impl in impls:
        cmd = [sys.executable, __file__, "--one", "--attention", impl, "--batch", str(args.batch),
               "--steps", str(args.steps), "--device", args.device, "--precision", args.precision]
        if args.overlay:
            cmd += ["--overlay", args.overlay]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{impl}: failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps(rows))
        return
    ref = next((r for r in rows if r["attention"] == "full"), rows[0] if rows else None)
    print(f"Training step (d_steps D updates + 1 G update, all losses), peak = {rows[0]['peak_kind'] if rows else '-'}")
    print("| size | batch | device | precision | attention | G params | D params | s/step | x full | peak memory | x full |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['n_mels']} x {r['n_frames']} | {r['batch']} | {r['device']} | {r['precision']} | {r['attention']} | "
              f"{r['params_g']:,} | {r['params_d']:,} | {r['s_per_step']:.2f} | {r['s_per_step'] / ref['s_per_step']:.2f} | "
              f"{r['peak_bytes'] / 2**30:.2f} GiB | {r['peak_bytes'] / ref['peak_bytes']:.2f} |")

if __name__ == "__main__":
    main()
