"""Parameter counts, and time and peak memory of training steps at a given size (paper size by default).

One step = the loop's real `train_step`: `d_steps` discriminator updates and one generator update
with all five losses, on random mels and random text embeddings of CLAP's shapes.

    python benchmarks/train_step.py                          # paper size 256 x 1024, batch 2, cpu,
                                                             # tfsca vs axial vs full, side by side
    python benchmarks/train_step.py --device cuda --batch 16 --precision bf16
    python benchmarks/train_step.py --overlay config/demo.yaml --batch 16 --attention tfsca \
        --reuse-d-step paper,reuse --profile 8                # the demo's step, with its top operators

Peak memory: cuda -> torch.cuda.max_memory_allocated() over the steps; cpu -> the process's peak
resident set size (ru_maxrss: weights, optimiser state, activations and the allocator's slack).
Each attention implementation runs in its own process (a process's peak cannot be reset), one after
the other in the same invocation; ratios are to `full` attention (else to the first row).
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
    if args.reuse_d_step != "overlay":  # paper: 2 D steps, a fresh G forward; reuse: the demo's cheaper step
        params["train"]["reuse_d_step"] = args.reuse_d_step == "reuse"
        params["train"]["d_steps"] = 1 if args.reuse_d_step == "reuse" else 2
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
    profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) if args.profile else None
    started = time.perf_counter()
    if profiler is not None:
        profiler.start()
    for _ in range(args.steps):
        train_step(state, stream, cache, params, device, Path("/dev/null"))
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    top = []
    if profiler is not None:
        profiler.stop()
        events = sorted(profiler.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events) or 1
        top = [{"op": e.key, "self_ms_per_step": e.self_cpu_time_total / 1000 / args.steps,
                "share": e.self_cpu_time_total / total} for e in events[: args.profile]]
    return {"n_mels": audio["n_mels"], "n_frames": audio["n_frames"], "batch": args.batch, "device": str(device),
            "precision": args.precision, "attention": attention, "d_steps": params["train"]["d_steps"],
            "params_g": sum(p.numel() for p in state.generator.parameters()),
            "params_d": sum(p.numel() for p in state.discriminator.parameters()),
            "reuse_d_step": params["train"]["reuse_d_step"], "top_ops": top,
            "s_per_step": seconds / args.steps,
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
    parser.add_argument("--reuse-d-step", default="overlay",
                        help="comma-separated: overlay, paper (2 D steps, a fresh G forward for the G step), "
                             "reuse (1 D step whose G output the G step reuses) (default: overlay)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--profile", type=int, default=0, help="also list the N operators with the most CPU time")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    impls = args.attention.split(",")
    if args.one:
        if args.threads:
            torch.set_num_threads(args.threads)
        print(json.dumps(measure(args, impls[0])))
        return
    rows = []
    for impl, reuse in [(i, r) for i in impls for r in args.reuse_d_step.split(",")]:
        cmd = [sys.executable, __file__, "--one", "--attention", impl, "--batch", str(args.batch),
               "--steps", str(args.steps), "--device", args.device, "--precision", args.precision,
               "--reuse-d-step", reuse, "--profile", str(args.profile), "--threads", str(args.threads)]
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
    print("| size | batch | device | precision | attention | D steps, reuse | G params | D params | s/step | x ref | "
          "peak memory | x ref |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['n_mels']} x {r['n_frames']} | {r['batch']} | {r['device']} | {r['precision']} | {r['attention']} | "
              f"{r['d_steps']}, {'yes' if r['reuse_d_step'] else 'no'} | "
              f"{r['params_g']:,} | {r['params_d']:,} | {r['s_per_step']:.2f} | {r['s_per_step'] / ref['s_per_step']:.2f} | "
              f"{r['peak_bytes'] / 2**30:.2f} GiB | {r['peak_bytes'] / ref['peak_bytes']:.2f} |")
    for r in rows:
        if r["top_ops"]:
            print(f"\nTop operators, {r['attention']}, {r['d_steps']} D step(s), reuse {r['reuse_d_step']} "
                  "(self CPU time per step):")
            print("| operator | ms/step | share |\n| --- | --- | --- |")
            for op in r["top_ops"]:
                print(f"| `{op['op']}` | {op['self_ms_per_step']:.1f} | {op['share']:.0%} |")

if __name__ == "__main__":
    main()
