"""Streaming training batches: WebDataset mel shards joined with the text cache.

An endless, seeded stream: each pass over the shards uses a new shard order
(seed + epoch) and a sample shuffle buffer, and each DataLoader worker reads its
own subset of shards. Captions are turned into embeddings in the main process
(a table lookup), so workers only move mels.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from scenesynth.features.shards import make_webdataset, read_index, shard_paths


class MelCaptionStream(IterableDataset):
    """Yields (mel [1, F, T] float16, caption) forever (float16 keeps the shuffle buffer small)."""

    def __init__(self, shard_dir: str | Path, seed: int, shuffle_buffer: int = 0, start_epoch: int = 0):
        self.shard_dir = Path(shard_dir)
        self.paths = shard_paths(self.shard_dir)
        if not self.paths:
            raise FileNotFoundError(f"{self.shard_dir}: no shards (run `scenesynth mel` first)")
        self.index = read_index(self.shard_dir)
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.start_epoch = start_epoch

    def _my_shards(self, epoch: int) -> list[Path]:
        order = list(self.paths)
        random.Random(self.seed * 100003 + epoch).shuffle(order)
        info = get_worker_info()
        if info is None or len(order) < info.num_workers:
            return order
        return order[info.id :: info.num_workers]

    def _samples(self) -> Iterator[tuple[torch.Tensor, str]]:
        for epoch in itertools.count(self.start_epoch):
            shards = self._my_shards(epoch)
            # The shards are already split between workers here: webdataset must not split again.
            n_read = 0
            for sample in make_webdataset(shards, shuffle=False, workersplitter=None):
                n_read += 1
                yield torch.from_numpy(np.asarray(sample["mel"], dtype=np.float16))[None], sample["meta"]["caption"]
            if n_read == 0:
                raise RuntimeError(f"{self.shard_dir}: a pass over shards {[p.name for p in shards]} gave no sample")

    def __iter__(self) -> Iterator[tuple[torch.Tensor, str]]:
        info = get_worker_info()
        rng = random.Random(self.seed * 7919 + self.start_epoch * 31 + (info.id if info else 0))
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


def _collate(items: list[tuple[torch.Tensor, str]]) -> tuple[torch.Tensor, list[str]]:
    mels, captions = zip(*items)
    return torch.stack(mels).float(), list(captions)  # float16 in the shuffle buffer, float32 out


def batch_stream(shard_dir: str | Path, batch_size: int, seed: int, shuffle_buffer: int, num_workers: int,
                 start_epoch: int = 0) -> Iterator[tuple[torch.Tensor, list[str]]]:
    """An endless iterator of (mels [B, 1, F, T], captions)."""
    dataset = MelCaptionStream(shard_dir, seed, shuffle_buffer, start_epoch)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=_collate,
                        persistent_workers=num_workers > 0)
    return iter(loader)
