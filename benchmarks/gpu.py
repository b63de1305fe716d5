"""The GPU figures in one prepared run: training step, generation and DDP, for the day a GPU is lent.

    python benchmarks/gpu.py                      # on a GPU: every row at the paper's size
    python benchmarks/gpu.py --json               # one JSON object per row (and nothing else on stdout)
    python benchmarks/gpu.py --smoke              # every row at tiny sizes on CPU, in a few minutes (tested)
    python benchmarks/gpu.py --rows train:bf16:eager,generate --rows-file out.jsonl --budget-s 500

Rows (each in its own process, so that peak memory and compile caches do not leak between them):
- `train`: the real `training.loop.train_step` (2 D updates + 1 G update, all five losses, the paper's
  loop) at 256 x 1024, TF-SCA, the paper's batch 16, on random mels and CLAP-shaped text, in fp32 and
  bf16, with and without `train.compile` (torch.compile of G; D stays eager, see build_state). samples/s = batch / s per generator
  step; peak = torch.cuda.max_memory_allocated (CPU: the process's peak RSS); the MFU estimate divides
  the FLOPs of one step (torch's FlopCounterMode over the eager step: convolutions, matrix products,
  attention) per second by the chip's dense peak for that precision (TF32 for fp32: cuDNN runs fp32
  convolutions in TF32 by torch's default). A compiled row also gives its first step's losses relative to
  the eager row's from the same seed (`loss_rel_diff_vs_eager`): compile must not change what is learnt.
- `generate`: one prompt by the paper's protocol (10 candidates, the 48 kHz HiFi-GAN, the CLAP re-ranker,
  10 crops; random weights at their real sizes), through benchmarks/generate.py's measurement.
- `ddp`: the train row under torchrun on every visible GPU (the global batch split over them); with one
  GPU there is no data parallelism to measure and the row says so. On CPU (smoke) two gloo processes.

Every finished row is appended to --rows-file at once, so a run cut short still leaves what it measured;
--budget-s skips the rows that would start after that many seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))  # train_step.py's random inputs, generate.py's measurement

# Dense peak FLOP/s by chip and precision (vendor datasheets, SXM parts; fp32 = TF32 tensor cores).
PEAK_TFLOPS = {"H100": {"bf16": 989.0, "fp32": 494.0}, "H200": {"bf16": 989.0, "fp32": 494.0},
               "A100": {"bf16": 312.0, "fp32": 156.0}}
ALL_ROWS = ["train:fp32:eager", "train:bf16:eager", "generate", "train:bf16:compile", "train:fp32:compile", "ddp:bf16"]


def peak_tflops(device, precision: str, override: float | None) -> float | None:
    import torch

    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peaks[precision] for chip, peaks in PEAK_TFLOPS.items() if chip in name), None)


def peak_bytes(device) -> int:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_setup(args, precision: str, compile_: bool, ctx=None):
    """Params, models and random inputs for the training rows (tiny overlay with --smoke)."""
    import torch

    from scenesynth.config import load_params
    from scenesynth.training.loop import build_state
    from train_step import RandomText, batches

    params = load_params(REPO / "params.yaml", REPO / "config/tiny.yaml" if args.smoke else None)
    train = params["train"]
    # The smoke run compiles with the aot_eager backend: Dynamo and AOT autograd trace the real step (graph
    # breaks, unsupported ops show), without inductor's C++ code generation, which takes minutes on a CPU.
    inductor = compile_ and not args.smoke
    train.update(precision=precision, compile=inductor, d_steps=2, reuse_d_step=False, batch_size=args.batch)
    params["model"]["attention_impl"] = "tfsca"
    device = ctx.device if ctx is not None else torch.device(args.device)
    text_info = {"sentence_dim": params["text"]["sentence_dim"], "word_dim": params["text"]["word_dim"]}
    torch.manual_seed(0)
    state = build_state(params, text_info, device, several_ranks=bool(ctx and ctx.active))
    if compile_ and not inductor:  # what train.compile compiles (build_state), with the smoke backend
        state.generator.compile(backend="aot_eager")
    share = args.batch // (ctx.world_size if ctx is not None else 1)
    stream = batches(params["audio"]["n_mels"], params["audio"]["n_frames"], share)
    return params, state, stream, RandomText(text_info["sentence_dim"], text_info["word_dim"]), device


def timed_steps(step, steps: int, device) -> list[float]:
    times = []
    for _ in range(steps):
        sync(device)
        started = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - started)
    return times


def train_row(args, precision: str, compile_: bool) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from scenesynth.training.loop import train_step

    params, state, stream, text, device = training_setup(args, precision, compile_)
    checkpoint = Path(os.devnull)
    warmup_started = time.perf_counter()  # the first steps hold torch.compile's tracing and code generation
    first = train_step(state, stream, text, params, device, checkpoint)  # from the seeded init: compared across rows
    sync(device)
    first_s = time.perf_counter() - warmup_started
    flops = None
    if not compile_:  # FLOPs of one step, counted on the eager modules (the compiled step does the same work)
        with FlopCounterMode(display=False) as counter:
            train_step(state, stream, text, params, device, checkpoint)
        flops = counter.get_total_flops()
    warmup_started = time.perf_counter()
    for _ in range(args.warmup):
        train_step(state, stream, text, params, device, checkpoint)
    sync(device)
    warmup_s = first_s + time.perf_counter() - warmup_started
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = timed_steps(lambda: train_step(state, stream, text, params, device, checkpoint), args.steps, device)
    s_per_step = statistics.median(times)
    audio = params["audio"]
    peak = peak_tflops(device, precision, args.peak_tflops)
    return {"row": "train", "precision": precision, "compile": compile_, "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "size": f"{audio['n_mels']} x {audio['n_frames']}", "batch": args.batch, "d_steps": 2,
            "params_g": sum(p.numel() for p in state.generator.parameters()),
            "params_d": sum(p.numel() for p in state.discriminator.parameters()),
            "s_per_step": s_per_step, "s_per_step_min": min(times), "samples_per_s": args.batch / s_per_step,
            "peak_memory_bytes": peak_bytes(device), "flops_per_step": flops, "peak_tflops": peak,
            "warmup": args.warmup, "warmup_s": warmup_s, "first_step_losses": first, "torch": torch.__version__,
            "compile_backend": ("inductor" if not args.smoke else "aot_eager") if compile_ else None}


def generate_row(args) -> dict:
    import torch

    from generate import run_benchmark

    smoke = args.smoke
    gen_args = argparse.Namespace(candidates=2 if smoke else 10, crops=2 if smoke else 10, frames=16 if smoke else 1024,
                                  vocoder_frames=None, vocoder_candidates=0, vocoder="hifigan", rerank="clap",
                                  offline=False, device=args.device, threads=0, repeats=1 if smoke else 3, tiny=smoke)
    out = run_benchmark(gen_args)
    path = out["paths"][0]
    device = torch.device(args.device)
    per_prompt = path["pick_clip"]["per_prompt_s"]
    return {"row": "generate", "precision": "fp32", "compile": False, "device": args.device,
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "candidates": gen_args.candidates, "frames": gen_args.frames, "s_per_prompt": per_prompt,
            "samples_per_s": 1.0 / per_prompt, "peak_memory_bytes": peak_bytes(device),
            "components": {r["component"]: r["seconds"] for r in path["components"]}, "torch": torch.__version__}


def ddp_worker(args, precision: str) -> None:
    """One rank of the ddp row (under torchrun); rank 0 prints the row."""
    import torch

    from scenesynth.training.distributed import start, stop, wrap
    from scenesynth.training.loop import train_step

    ctx = start(args.device)
    params, state, stream, text, device = training_setup(args, precision, False, ctx)
    wrapped = (wrap(state.generator, ctx), wrap(state.discriminator, ctx)) if ctx.active else None

    def step():
        train_step(state, stream, text, params, device, Path(os.devnull), ctx, wrapped)

    for _ in range(1 + args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = timed_steps(step, args.steps, device)
    s_per_step = statistics.median(times)
    peak = peak_bytes(device)
    wrapped = None
    stop(ctx)
    if ctx.rank == 0:
        print(json.dumps({"row": "ddp", "precision": precision, "compile": False, "device": args.device,
                          "processes": ctx.world_size, "batch": args.batch, "s_per_step": s_per_step,
                          "size": f"{params['audio']['n_mels']} x {params['audio']['n_frames']}",
                          "samples_per_s": args.batch / s_per_step, "peak_memory_bytes": peak,
                          "torch": torch.__version__}))


def ddp_row(args, precision: str) -> dict:
    import torch

    n = torch.cuda.device_count() if args.device == "cuda" else 2
    if n < 2:
        return {"row": "ddp", "precision": precision, "compile": False, "device": args.device, "processes": n,
                "samples_per_s": None, "peak_memory_bytes": None,
                "skipped": f"{n} GPU visible: no data parallelism to measure (the train rows are the one-GPU figure)"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(n), __file__,
               "--ddp-worker", f"ddp:{precision}", *child_flags(args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.row_timeout_s,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "torchrun failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_flags(args) -> list[str]:
    flags = ["--device", args.device, "--batch", str(args.batch), "--steps", str(args.steps),
             "--warmup", str(args.warmup)]
    if args.smoke:
        flags.append("--smoke")
    if args.peak_tflops:
        flags += ["--peak-tflops", str(args.peak_tflops)]
    return flags


def run_one(args, spec: str) -> dict:
    kind, *rest = spec.split(":")
    if kind == "train":
        precision, mode = rest
        return train_row(args, precision, mode == "compile")
    if kind == "generate":
        return generate_row(args)
    if kind == "ddp":
        return ddp_row(args, rest[0] if rest else "bf16")
    raise ValueError(f"unknown row {spec!r}; known: {', '.join(ALL_ROWS)}")


def add_derived(rows: list[dict]) -> None:
    """MFU (FLOPs from the eager row of the same size) and compiled-vs-eager loss agreement."""
    eager = {r["precision"]: r for r in rows if r.get("row") == "train" and not r["compile"] and "error" not in r}
    flops = next((r["flops_per_step"] for r in eager.values() if r.get("flops_per_step")), None)
    for r in rows:
        if r.get("row") != "train" or "error" in r:
            continue
        r["flops_per_step"] = r.get("flops_per_step") or flops
        r["mfu"] = (r["flops_per_step"] / r["s_per_step"] / (r["peak_tflops"] * 1e12)
                    if r["flops_per_step"] and r.get("peak_tflops") else None)
        ref = eager.get(r["precision"])
        if r["compile"] and ref:
            r["loss_rel_diff_vs_eager"] = max(abs(r["first_step_losses"][k] - v) / max(abs(v), 1e-6)
                                              for k, v in ref["first_step_losses"].items())


def print_table(rows: list[dict]) -> None:
    print("| row | precision | compile | size, batch | s/step or s/prompt | samples/s | peak memory | MFU | "
          "loss vs eager | note |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        seconds = r.get("s_per_step", r.get("s_per_prompt"))
        note = r.get("error") or r.get("skipped") or (f"{r['processes']} processes" if r["row"] == "ddp" else "")
        if seconds is None:
            print(f"| {r['row']} | {r.get('precision', '-')} | - | - | - | - | - | - | - | {note} |")
            continue
        if r.get("compile"):
            note = f"{r['compile_backend']}; first {1 + r.get('warmup', 0)} steps (compile) {r['warmup_s']:.0f} s"
        size = f"{r.get('size', r.get('frames', ''))}, {r.get('batch', r.get('candidates', ''))}"
        memory = f"{r['peak_memory_bytes'] / 2**30:.2f} GiB" if r.get("peak_memory_bytes") else "-"
        mfu = f"{100 * r['mfu']:.1f} %" if r.get("mfu") else "-"
        loss = f"{r['loss_rel_diff_vs_eager']:.1e}" if r.get("loss_rel_diff_vs_eager") is not None else "-"
        print(f"| {r['row']} | {r['precision']} | {'yes' if r.get('compile') else 'no'} | {size} | {seconds:.3f} | "
              f"{r['samples_per_s']:.2f} | {memory} | {mfu} | {loss} | {note} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on CPU (config/tiny.yaml, tiny vocoder/CLAP)")
    parser.add_argument("--device", default=None, help="cuda (default where one is visible) or cpu")
    parser.add_argument("--rows", default=",".join(ALL_ROWS), help="comma-separated rows (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=None, help="global batch (default: the paper's 16; smoke 4)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per row (default 10; smoke 2)")
    parser.add_argument("--warmup", type=int, default=3, help="steps before timing (compile happens here)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the chip's dense peak for the MFU")
    parser.add_argument("--row-timeout-s", type=int, default=420, help="a row still running then is recorded as failed")
    parser.add_argument("--budget-s", type=float, default=None, help="start no row after this many seconds")
    parser.add_argument("--rows-file", default=None, help="append each finished row to this JSON-lines file")
    parser.add_argument("--json", action="store_true", help="one JSON object per row on stdout, nothing else")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child: measure one row, print its JSON
    parser.add_argument("--ddp-worker", default=None, help=argparse.SUPPRESS)  # a rank of the ddp row
    args = parser.parse_args()
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    args.batch = args.batch or (4 if args.smoke else 16)
    args.steps = args.steps or (2 if args.smoke else 10)
    if args.smoke:
        args.warmup = min(args.warmup, 1)
    if args.smoke:  # one thread a process: on a small shared machine, thread pools fight each other
        import torch

        torch.set_num_threads(1)
    if args.ddp_worker:
        ddp_worker(args, args.ddp_worker.split(":")[1])
        return
    if args.one:
        print(json.dumps(run_one(args, args.one)))
        return
    rows, started = [], time.perf_counter()
    for spec in args.rows.split(","):
        if args.budget_s is not None and time.perf_counter() - started > args.budget_s:
            row = {"row": spec, "skipped": f"past --budget-s {args.budget_s:g}"}
        else:
            row = measure_in_child(args, spec)
        rows.append(row)
        if args.rows_file:
            with open(args.rows_file, "a") as out:
                out.write(json.dumps(row) + "\n")
        print(f"{spec}: {row.get('error') or row.get('skipped') or 'done'} "
              f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    add_derived(rows)
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print_table(rows)


def measure_in_child(args, spec: str) -> dict:
    kind, *rest = spec.split(":")
    command = [sys.executable, __file__, "--one", spec, *child_flags(args), "--row-timeout-s", str(args.row_timeout_s)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.row_timeout_s)
    except subprocess.TimeoutExpired:
        return {"row": kind, "spec": spec, "error": f"timed out after {args.row_timeout_s} s"}
    if done.returncode:
        last = done.stderr.strip().splitlines()[-1:] or ["(no message)"]
        return {"row": kind, "spec": spec, "error": f"exit {done.returncode}: {last[0][:300]}"}
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "spec": spec}


if __name__ == "__main__":
    main()
