"""Parameter counts, and time and peak memory of training steps at a given size (paper size by default).

One step = the loop's real `train_step`: `d_steps` discriminator updates and one generator update
with all five losses, on random mels and random text embeddings of CLAP's shapes.

    python benchmarks/train_step.py                          # paper size 256 x 1024, batch 2, cpu
    python benchmarks/train_step.py --device cuda --batch 16 --precision bf16
    python benchmarks/train_step.py --overlay config/demo.yaml --batch 8

Peak memory: cuda -> torch.cuda.max_memory_allocated() over the steps; cpu -> the growth of the
process's peak resident set size (ru_maxrss) over the steps, which includes the allocator's slack.
"""

from __future__ import annotations

import argparse
import json
import resource
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--overlay", default=None)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2, help="timed steps (after one warm-up step)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--attention", default=None, help="override model.attention_impl")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    params = load_params(REPO / "params.yaml", args.overlay)
    params["train"]["precision"] = args.precision
    if args.attention:
        params["model"]["attention_impl"] = args.attention
    device = torch.device(args.device)
    text_info = {"sentence_dim": params["text"]["sentence_dim"], "word_dim": params["text"]["word_dim"]}
    state = build_state(params, text_info, device)
    n_g = sum(p.numel() for p in state.generator.parameters())
    n_d = sum(p.numel() for p in state.discriminator.parameters())
    audio = params["audio"]
    stream = batches(audio["n_mels"], audio["n_frames"], args.batch)
    cache = RandomText(text_info["sentence_dim"], text_info["word_dim"])
    ckpt = Path("/dev/null")
    train_step(state, stream, cache, params, device, ckpt)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated() if device.type == "cuda" else rss_bytes()
    started = time.perf_counter()
    for _ in range(args.steps):
        train_step(state, stream, cache, params, device, ckpt)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / args.steps
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else rss_bytes()
    row = {"n_mels": audio["n_mels"], "n_frames": audio["n_frames"], "batch": args.batch,
           "device": str(device), "precision": args.precision, "attention": params["model"]["attention_impl"],
           "params_g": n_g, "params_d": n_d, "s_per_step": seconds,
           "peak_bytes": peak if device.type == "cuda" else None,
           "peak_rss_bytes": peak if device.type != "cuda" else None,
           "rss_growth_bytes": peak - base if device.type != "cuda" else None, "d_steps": params["train"]["d_steps"]}
    if args.json:
        print(json.dumps(row))
        return
    mem = row["peak_bytes"] or row["peak_rss_bytes"]
    print(f"| size | batch | device | precision | attention | G params | D params | s/step | peak memory |")
    print(f"| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print(f"| {audio['n_mels']} x {audio['n_frames']} | {args.batch} | {device} | {args.precision} | "
          f"{row['attention']} | {n_g:,} | {n_d:,} | {seconds:.2f} | {mem / 2**30:.2f} GiB |")


if __name__ == "__main__":
    main()
