"""Multi-process training: the process group, and what keeps the ranks equal (launch: launch.py).

`train.batch_size` is the GLOBAL batch: each of the `processes_per_node x nodes` ranks trains
on its 1/world_size share, and everything that compares samples within a batch is made to see
the whole global batch, so that a step in N processes computes the single-process gradient
(up to floating-point summation order):

- the contrastive losses (SC, F2R, G2S, L2W) take every other sample of the batch as a
  negative: the discriminator outputs are all-gathered with gradient before the losses;
- the generator's BatchNorms normalise with the statistics of the global batch
  (:class:`CrossRankBatchNorm2d`; torch's SyncBatchNorm refuses CPU tensors);
- the noise z is drawn for the global batch from the common seed and each rank keeps its
  rows, so no two ranks share noise and a resumed run does not depend on the world size.
"""

from __future__ import annotations

import dataclasses
import datetime
import gc
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from scenesynth.training.checkpoint import several_ranks

log = logging.getLogger(__name__)
# How long a rank waits in a collective (a barrier, an all-reduce) before the run fails. NCCL's default
# is 10 minutes; the other ranks wait at a barrier while rank 0 scores the dev set (train.eval_every,
# periodic_eval.py), which at the paper's settings takes minutes on a GPU: an hour leaves room.
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=60)


def pick_device(choice: str, local_rank: int | None = None) -> torch.device:
    """train.device as a torch device; among several ranks, the GPU of this rank (cuda:LOCAL_RANK)."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is available")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and local_rank is not None:
        return torch.device("cuda", local_rank)
    return torch.device(choice)


@dataclass(frozen=True)
class DistContext:
    """Where this process sits among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def rows(self, global_rows: int) -> slice:
        """This rank's rows of a global batch."""
        share = global_rows // self.world_size
        return slice(self.rank * share, (self.rank + 1) * share)

    def barrier(self) -> None:
        if self.active:
            dist.barrier(device_ids=[self.device.index]) if self.device.type == "cuda" else dist.barrier()


def start(device_choice: str) -> DistContext:
    """Join the process group torchrun set up (nccl on GPUs, gloo on CPU); one process otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext(device=pick_device(device_choice))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_choice, local_rank)
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible): "
                               "train.processes_per_node must not exceed the GPUs of a node")
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT)
    if rank != 0:  # one voice in the log; warnings and errors of every rank still show
        logging.getLogger("scenesynth").setLevel(logging.WARNING)
    return DistContext(rank, local_rank, world_size, device)


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """True if ``flag`` is true on any rank: a decision every rank then takes alike (a rank that went another
    way would wait in a collective the others never join)."""
    if not (ctx.active and dist.is_initialized()):
        return flag
    votes = torch.tensor([1 if flag else 0], device=ctx.device)
    dist.all_reduce(votes, op=dist.ReduceOp.MAX)
    return bool(votes.item())


def stop(ctx: DistContext) -> None:
    """Leave the process group. DDP wrappers must be gone first: a DDP reducer that outlives the group
    destroys it in its own destructor with the GIL held, while gloo's worker threads may need the GIL
    to finish their last work: a deadlock (pytorch/pytorch#56297; it hung a test here once)."""
    if ctx.active and dist.is_initialized():
        gc.collect()  # DDP modules sit in reference cycles: only the cycle collector frees them
        dist.destroy_process_group()


class _GatherRows(torch.autograd.Function):
    """All-gather along dim 0; the backward sums every rank's gradient and keeps this rank's rows."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        ctx.rows = tensor.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start_row = dist.get_rank() * ctx.rows
        return grad[start_row:start_row + ctx.rows]


class _SumAcrossRanks(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def gather_rows(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The global batch of `tensor` on every rank, differentiable (floats) or plain (masks, ids)."""
    if not ctx.active:
        return tensor
    if tensor.is_floating_point():
        return _GatherRows.apply(tensor)
    parts = [torch.empty_like(tensor) for _ in range(ctx.world_size)]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def gather_output(out, ctx: DistContext):
    """A discriminator output (dataclass of [B, ...] tensors) for the whole global batch."""
    if not ctx.active:
        return out
    return dataclasses.replace(out, **{f.name: gather_rows(getattr(out, f.name), ctx) for f in dataclasses.fields(out)})


def pad_words(text, ctx: DistContext):
    """Pad a TextBatch's words to the longest caption of the global batch, so that every rank
    sees the padding length a single process would see and the word tensors can be gathered."""
    if not ctx.active:
        return text
    longest = torch.tensor([text.words.shape[1]], device=text.words.device)
    dist.all_reduce(longest, op=dist.ReduceOp.MAX)
    missing = int(longest) - text.words.shape[1]
    if missing == 0:
        return text
    words = nn.functional.pad(text.words, (0, 0, 0, missing))
    mask = nn.functional.pad(text.word_mask, (0, missing), value=False)
    return dataclasses.replace(text, words=words, word_mask=mask)


class CrossRankBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch (all ranks).

    Same parameters and buffers as nn.BatchNorm2d, so state dicts stay interchangeable with the
    single-process model; in eval mode, or in one process, it is nn.BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and several_ranks()):
            return super().forward(x)
        xf = x.float()
        count = x.numel() // x.shape[1] * dist.get_world_size()
        # Two passes (mean, then squared deviations): E[x^2] - E[x]^2 cancels badly in float32.
        mean = _SumAcrossRanks.apply(xf.sum(dim=(0, 2, 3))) / count
        centred = xf - mean[None, :, None, None]
        var = _SumAcrossRanks.apply((centred * centred).sum(dim=(0, 2, 3))) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * count / max(count - 1, 1), momentum)
        y = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


def convert_batch_norms(module: nn.Module) -> nn.Module:
    """Swap every nn.BatchNorm2d in place for CrossRankBatchNorm2d (same tensors, same names)."""
    for sub in module.modules():
        if type(sub) is nn.BatchNorm2d:
            sub.__class__ = CrossRankBatchNorm2d
    return module


def wrap(module: nn.Module, ctx: DistContext) -> nn.Module:
    """DistributedDataParallel around `module` (gradients averaged over ranks), or `module` itself."""
    if not ctx.active:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


def check_replicas_identical(modules: dict[str, nn.Module], ctx: DistContext) -> None:
    """Raise unless every rank holds bit-identical parameters and buffers (rank 0's are broadcast)."""
    if not ctx.active:
        return
    mismatch = []
    for name, module in modules.items():
        for key, tensor in module.state_dict().items():
            reference = tensor.detach().clone()
            dist.broadcast(reference, src=0)
            if not torch.equal(reference, tensor):
                mismatch.append(f"{name}.{key}")
    flag = torch.tensor([len(mismatch)], device=ctx.device)
    dist.all_reduce(flag)
    if int(flag):
        here = f"{len(mismatch)} tensors differ from rank 0's, e.g. {mismatch[:3]}" if mismatch else "same as rank 0"
        raise RuntimeError(f"the training processes have diverged: {int(flag)} tensors over all ranks differ from "
                           f"rank 0's (rank {ctx.rank}: {here}); a nondeterministic kernel or a rank-local update?")
    log.info("weights of %s identical on all %d ranks (bit-exact)", ", ".join(modules), ctx.world_size)
