"""Streaming training batches: WebDataset mel shards joined with the text cache.

An endless, seeded stream: each pass over the shards uses a new shard order
(seed + epoch) and a sample shuffle buffer, and each DataLoader worker reads its
own subset of shards. Captions are turned into embeddings in the main process
(a table lookup), so workers only move mels.

A clip with several captions (its shard metadata lists them) is paired with one of
them per pass: drawn from (seed, pass, clip key) alone, so the draw does not depend on
the shuffle, the worker or the rank, and a stream re-created from a checkpoint draws
exactly what the uninterrupted one would have.

With several training processes (ranks), each rank reads its own shards (split by
rank, then by worker) when there are at least ranks x workers shards; with fewer
shards every rank reads the one global stream and keeps its rows of each global
batch, so the ranks still see disjoint samples and together exactly the batches a
single process would see. One process reads exactly what it always did.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import signal
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from scenesynth.features.shards import make_webdataset, read_index, shard_paths
from scenesynth.training.stop_signals import STOP_SIGNALS


def draw_caption(meta: dict, key: str, seed: int, epoch: int) -> str:
    """The caption a sample trains with in pass ``epoch``: one of ``meta['captions']`` (or the single
    ``caption`` of older shards), uniformly, from a hash of (seed, epoch, key)."""
    captions = meta.get("captions") or [meta["caption"]]
    if len(captions) == 1:
        return captions[0]
    digest = hashlib.sha256(f"{seed}:{epoch}:{key}".encode()).digest()
    return captions[int.from_bytes(digest[:8], "big") % len(captions)]


class MelCaptionStream(IterableDataset):
    """Yields (mel [1, F, T] float16, caption) forever (float16 keeps the shuffle buffer small)."""

    def __init__(self, shard_dir: str | Path, seed: int, shuffle_buffer: int = 0, start_epoch: int = 0,
                 rank: int = 0, world_size: int = 1):
        self.shard_dir = Path(shard_dir)
        self.paths = shard_paths(self.shard_dir)
        if not self.paths:
            raise FileNotFoundError(f"{self.shard_dir}: no shards (run `scenesynth mel` first)")
        self.index = read_index(self.shard_dir)
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.start_epoch = start_epoch
        self.rank, self.world_size = rank, world_size

    def _my_shards(self, epoch: int) -> list[Path]:
        order = list(self.paths)
        random.Random(self.seed * 100003 + epoch).shuffle(order)
        order = order[self.rank :: self.world_size]
        info = get_worker_info()
        if info is None or len(order) < info.num_workers:
            return order
        return order[info.id :: info.num_workers]

    def _samples(self) -> Iterator[tuple[torch.Tensor, str]]:
        for epoch in itertools.count(self.start_epoch):
            shards = self._my_shards(epoch)
            # The shards are already split between ranks and workers here: webdataset must not split again.
            n_read = 0
            for sample in make_webdataset(shards, shuffle=False, nodesplitter=None, workersplitter=None):
                n_read += 1
                caption = draw_caption(sample["meta"], sample["key"], self.seed, epoch)
                yield torch.from_numpy(np.asarray(sample["mel"], dtype=np.float16))[None], caption
            if n_read == 0:
                raise RuntimeError(f"{self.shard_dir}: a pass over shards {[p.name for p in shards]} gave no sample")

    def __iter__(self) -> Iterator[tuple[torch.Tensor, str]]:
        info = get_worker_info()
        stream_id = self.rank * (info.num_workers if info else 1) + (info.id if info else 0)
        rng = random.Random(self.seed * 7919 + self.start_epoch * 31 + stream_id)
        buffer: list[tuple[torch.Tensor, str]] = []
        for item in self._samples():
            if len(buffer) < self.shuffle_buffer:
                buffer.append(item)
                continue
            if not buffer:
                yield item
                continue
            slot = rng.randrange(len(buffer))
            yield buffer[slot]
            buffer[slot] = item


def _ignore_stop_signals(_worker_id: int) -> None:
    """SLURM signals every process of a job step, and torchrun its ranks' whole process groups: a loader
    worker killed by that SIGTERM/SIGUSR1 would make the training fail ("DataLoader worker ... killed")
    before it writes its stop checkpoint (training/stop_signals.py). Workers ignore them and end with
    their loader, as always."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def _collate(items: list[tuple[torch.Tensor, str]]) -> tuple[torch.Tensor, list[str]]:
    mels, captions = zip(*items)
    return torch.stack(mels).float(), list(captions)  # float16 in the shuffle buffer, float32 out


def splits_by_shard(n_shards: int, world_size: int, num_workers: int) -> bool:
    """Ranks read disjoint shards when every rank's every worker gets at least one."""
    return world_size > 1 and n_shards >= world_size * max(1, num_workers)


def _rows_of_global_batches(batches: Iterator, rows: slice) -> Iterator[tuple[torch.Tensor, list[str]]]:
    for mels, captions in batches:
        yield mels[rows], captions[rows]


def batch_stream(shard_dir: str | Path, batch_size: int, seed: int, shuffle_buffer: int, num_workers: int,
                 start_epoch: int = 0, rank: int = 0, world_size: int = 1) -> Iterator[tuple[torch.Tensor, list[str]]]:
    """An endless iterator of (mels [b, 1, F, T], captions): b = batch_size / world_size, this rank's share."""
    share = batch_size // world_size
    split = splits_by_shard(len(shard_paths(Path(shard_dir))), world_size, num_workers)
    dataset = MelCaptionStream(shard_dir, seed, shuffle_buffer, start_epoch,
                               rank if split else 0, world_size if split else 1)
    loader = DataLoader(dataset, batch_size=share if split else batch_size, num_workers=num_workers,
                        collate_fn=_collate, persistent_workers=num_workers > 0,
                        worker_init_fn=_ignore_stop_signals if num_workers > 0 else None)
    if split or world_size == 1:
        return iter(loader)
    return _rows_of_global_batches(iter(loader), slice(rank * share, (rank + 1) * share))


class CountedStream:
    """A batch stream that knows where it stands: started at step `origin`, `drawn` batches taken since.

    The pair is what a checkpoint written between scheduled checkpoints stores, so that a resumed
    run can re-create the stream at `origin` and drop `drawn` batches (:meth:`skip`) to stand
    exactly where the interrupted one stood."""

    def __init__(self, batches: Iterator, origin: int):
        self.batches, self.origin, self.drawn = batches, origin, 0

    def __iter__(self) -> "CountedStream":
        return self

    def __next__(self):
        item = next(self.batches)
        self.drawn += 1
        return item

    def skip(self, n: int) -> "CountedStream":
        for _ in range(n):
            next(self)
        return self
