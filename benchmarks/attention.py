"""Peak memory and time of one forward + backward of each attention implementation (docs/paper.md section 3).

The paper's claim (section 2.3, eq. 8) is about the attention matrices: full self-attention (FT)^2,
separate time/frequency attention F^2 + T^2, TF-SCA 2FT; cross-attention F*T*L against (F+T)*L.
This script measures it on the feature-map sizes of the paper-size generator (256 x 1024 mels,
init 4 x 16, channels 1024 / 2^level floored at 32). The generator's attention stages sit at levels
1-3, so its largest attention map is 32 x 128 with 128 channels; larger maps are shown for scale.

Memory, honestly measured:
- cuda: torch.cuda.max_memory_allocated() minus the memory allocated before the pass (module
  weights and the input are excluded; activations, attention matrices and gradients are included).
- cpu: there is no allocator peak counter, and RSS/tracemalloc do not see torch's allocations
  reliably. torch.profiler(profile_memory=True) records every CPU tensor allocation and free with
  its size; the running sum of those events, in time order, is the bytes of live tensors, and its
  maximum over the pass is the peak. Same scope as the cuda number.
`full` is skipped when its attention matrix alone (B * heads * rows * cols * 4 bytes) exceeds
--full-limit-gib; its true peak is about three times that (logits, softmax, gradient).

    python benchmarks/attention.py                 # table, cpu, about a minute on 2 cores
    python benchmarks/attention.py --json          # JSON list: impl, kind, F, T, peak_bytes, ms
    python benchmarks/attention.py --device cuda --sizes 8x32,16x64,32x128,64x256,128x512,256x1024
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass

import torch
from torch.profiler import ProfilerActivity, profile

from scenesynth.models.attention import IMPLEMENTATIONS, build_attention
from scenesynth.models.layers import level_channels

PAPER_INIT = (4, 16)
PAPER_CHANNELS, PAPER_MIN_CHANNELS = 1024, 32
GENERATOR_LARGEST = (32, 128)
SENTENCE_DIM, WORD_DIM = 512, 768
IMPL_ORDER = ("full", "axial", "tfsca")


@dataclass
class Case:
    impl: str
    kind: str
    n_freq: int
    n_time: int
    channels: int
    peak_bytes: int | None = None
    ms: float | None = None
    needs_bytes: int | None = None  # set when skipped


def paper_channels(n_freq: int) -> int:
    """Channels the paper-size generator has at a map with n_freq rows."""
    level = (n_freq // PAPER_INIT[0]).bit_length() - 1
    return level_channels(PAPER_CHANNELS, level, PAPER_MIN_CHANNELS)


def attention_matrix_elements(impl: str, kind: str, n_freq: int, n_time: int, n_tokens: int) -> int:
    """Per sample and head: the sizes of docs/paper.md section 3's attention-matrix table."""
    if kind == "self":
        return {"full": (n_freq * n_time) ** 2, "axial": n_freq**2 + n_time**2, "tfsca": 2 * n_freq * n_time}[impl]
    return n_freq * n_time * n_tokens if impl == "full" else (n_freq + n_time) * n_tokens


def make_inputs(kind: str, case: Case, batch: int, n_tokens: int, device: torch.device) -> tuple:
    x = torch.randn(batch, case.channels, case.n_freq, case.n_time, device=device, requires_grad=True)
    if kind == "self":
        return (x,)
    if kind == "sentence":
        return x, torch.randn(batch, 1, SENTENCE_DIM, device=device), None
    mask = torch.zeros(batch, n_tokens, dtype=torch.bool, device=device)
    mask[:, : max(1, n_tokens // 2)] = True  # half the words real, half padding
    return x, torch.randn(batch, n_tokens, WORD_DIM, device=device) * mask[..., None], mask


def forward_backward(module: torch.nn.Module, inputs: tuple, grad_out: torch.Tensor) -> None:
    module(*inputs).backward(grad_out)


def cpu_peak_bytes(run) -> int:
    """Peak live CPU tensor bytes during run(), from the profiler's allocation/free events."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        if event.device_type() == torch.autograd.DeviceType.CPU:
            live += event.nbytes()
            peak = max(peak, live)
    return peak


def cuda_peak_bytes(run, device: torch.device) -> int:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    run()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def measure(case: Case, args: argparse.Namespace, device: torch.device) -> None:
    torch.manual_seed(0)
    module = build_attention(case.kind, case.impl, case.channels, args.heads, SENTENCE_DIM, WORD_DIM).to(device)
    inputs = make_inputs(case.kind, case, args.batch, args.words, device)
    grad_out = torch.ones(args.batch, case.channels, case.n_freq, case.n_time, device=device)

    def clear_grads() -> None:
        """Outside the measured region, so that freeing last pass's gradients is not counted."""
        for tensor in (inputs[0], *module.parameters()):
            tensor.grad = None

    def run() -> None:
        forward_backward(module, inputs, grad_out)

    run()  # warm-up: lazy initialisation, kernel selection
    times = []
    for _ in range(args.repeats):
        clear_grads()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(1000.0 * (time.perf_counter() - start))
    case.ms = min(times)  # best of N: CPU contention only ever adds time
    clear_grads()
    case.peak_bytes = cuda_peak_bytes(run, device) if device.type == "cuda" else cpu_peak_bytes(run)


def run_cases(args: argparse.Namespace) -> list[Case]:
    device = torch.device(args.device)
    limit = int(args.full_limit_gib * 2**30)
    cases = []
    for n_freq, n_time in args.sizes:
        for kind in args.kinds:
            for impl in IMPL_ORDER:
                case = Case(impl, kind, n_freq, n_time, paper_channels(n_freq))
                n_tokens = 1 if kind == "sentence" else args.words
                matrix_bytes = 4 * args.batch * args.heads * attention_matrix_elements(impl, kind, n_freq, n_time, n_tokens)
                if impl == "full" and matrix_bytes > limit:
                    case.needs_bytes = matrix_bytes
                else:
                    measure(case, args, device)
                print(f"  measured {impl:5s} {kind:8s} {n_freq}x{n_time}", file=sys.stderr, flush=True)
                cases.append(case)
    return cases


def format_bytes(n_bytes: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.2f} {unit}"
    return f"{n_bytes:.0f} B"


def print_table(cases: list[Case], args: argparse.Namespace) -> None:
    print(f"Attention forward+backward, batch {args.batch}, heads {args.heads}, L = {args.words} words "
          f"({max(1, args.words // 2)} real), device {args.device}, best of {args.repeats} timed runs.")
    print("peak = " + ("max_memory_allocated() - allocated before the pass" if args.device.startswith("cuda")
                       else "max of the running sum of torch.profiler's CPU allocation/free events") +
          "; weights and input excluded.")
    print(f"The paper-size generator's largest attention map is {GENERATOR_LARGEST[0]} x {GENERATOR_LARGEST[1]} "
          f"(marked *). Ratios are to full, or to axial (marked a) where full was skipped.")
    header = f"{'kind':8s} {'F x T':>10s} {'C':>4s} {'impl':6s} {'attn elems':>12s} {'peak':>11s} {'x ref':>7s} {'ms':>9s} {'x ref':>7s}"
    print(header)
    print("-" * len(header))
    groups: dict[tuple, dict[str, Case]] = {}
    for case in cases:
        groups.setdefault((case.kind, case.n_freq, case.n_time), {})[case.impl] = case
    for (kind, n_freq, n_time), by_impl in groups.items():
        reference = by_impl.get("full")
        mark = ""
        if reference is None or reference.peak_bytes is None:
            reference, mark = by_impl.get("axial"), "a"
        size = f"{n_freq}x{n_time}" + ("*" if (n_freq, n_time) == GENERATOR_LARGEST else "")
        for impl in IMPL_ORDER:
            case = by_impl.get(impl)
            if case is None:
                continue
            n_tokens = 1 if kind == "sentence" else args.words
            elements = args.heads * attention_matrix_elements(impl, kind, n_freq, n_time, n_tokens)
            prefix = f"{kind:8s} {size:>10s} {case.channels:4d} {impl:6s} {elements:12,d}"
            if case.peak_bytes is None:
                print(f"{prefix} skipped (needs {case.needs_bytes / 2**30:.1f} GiB for the attention matrix alone)")
                continue
            memory_ratio = case.peak_bytes / reference.peak_bytes if reference and reference.peak_bytes else float("nan")
            time_ratio = case.ms / reference.ms if reference and reference.ms else float("nan")
            print(f"{prefix} {format_bytes(case.peak_bytes):>11s} {memory_ratio:6.3f}{mark:1s} {case.ms:9.2f} "
                  f"{time_ratio:6.2f}{mark:1s}")
        print()


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in text.split(","):
        n_freq, n_time = (int(v) for v in item.lower().split("x"))
        if n_freq % PAPER_INIT[0] or n_time % PAPER_INIT[1]:
            raise argparse.ArgumentTypeError(f"{item}: F must be a multiple of 4 and T of 16 (paper generator maps)")
        sizes.append((n_freq, n_time))
    return sizes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:index]")
    parser.add_argument("--sizes", type=parse_sizes, default=parse_sizes("8x32,16x64,32x128,64x256,128x512"),
                        help="comma-separated FxT maps of the paper-size generator (channels follow from F)")
    parser.add_argument("--kinds", type=lambda s: s.split(","), default=["self", "word"],
                        help="comma-separated subset of self,word,sentence")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--words", type=int, default=77, help="padded word count L")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up")
    parser.add_argument("--full-limit-gib", type=float, default=1.0,
                        help="skip `full` when its attention matrix alone needs more than this")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of the table")
    args = parser.parse_args(argv)
    unknown = set(args.kinds) - {"self", "word", "sentence"}
    if unknown:
        parser.error(f"unknown kinds {sorted(unknown)}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")
    assert set(IMPL_ORDER) == set(IMPLEMENTATIONS)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cases = run_cases(args)
    if args.json:
        print(json.dumps([
            {"impl": c.impl, "kind": c.kind, "F": c.n_freq, "T": c.n_time, "peak_bytes": c.peak_bytes,
             "ms": None if c.ms is None else round(c.ms, 3)}
            for c in cases
        ], indent=1))
    else:
        print_table(cases, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
