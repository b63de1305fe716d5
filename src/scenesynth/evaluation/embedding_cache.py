"""One stored embedding per clip, so that scoring the same clips again embeds nothing new.

Like fadtk, each clip's embedding is kept as a float16 ``.npy`` file ([rows, dim]; fadtk stores
every float32 embedding as float16, and so the statistics are always taken from float16 values,
fresh or cached alike). Unlike fadtk, whose cache is named after the audio file
(``<folder>/embeddings/<model>/<clip>.npy``) and is reused even when the audio behind the name
has changed, the key here is the clip file's sha256 under a folder named after everything the
vectors depend on (the embedding's checkpoint and width, the clip preparation): a changed clip,
checkpoint or recipe can never be answered from the cache. Entries are written atomically.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import numpy as np

from scenesynth.config import fingerprint
from scenesynth.fetch.download import sha256_file
from scenesynth.utils.atomic import atomic_path, write_json

log = logging.getLogger(__name__)
BATCH = 16  # clips embedded at once


class EmbeddingCache:
    """``embeddings(paths) -> [rows, dim] float16 per clip``, embedding only clips not seen before."""

    def __init__(self, root: str | Path, embedding, identity: dict, prepare: Callable[[Path], np.ndarray]):
        self.embedding, self.prepare = embedding, prepare
        self.identity = identity
        self.folder = Path(root) / f"{embedding.name}-{fingerprint(identity)[:16]}"
        self.embedded = 0  # clips embedded (not found in the cache) by this object

    def _entry(self, digest: str) -> Path:
        return self.folder / digest[:2] / f"{digest}.npy"

    def embeddings(self, paths: list[str | Path]) -> list[np.ndarray]:
        """The clips' embeddings, in order; ``prepare`` errors (naming the file) propagate."""
        digests = [sha256_file(p) for p in paths]
        todo = sorted({d: p for d, p in zip(digests, paths) if not self._entry(d).is_file()}.items())
        if todo:
            self.folder.mkdir(parents=True, exist_ok=True)
            if not (self.folder / "identity.json").is_file():
                write_json(self.folder / "identity.json", self.identity)
            log.info("embedding %d new clip(s) with %s (%d cached)", len(todo), self.embedding.name,
                     len(set(digests)) - len(todo))
        for start in range(0, len(todo), BATCH):
            chunk = todo[start: start + BATCH]
            waves = [self.prepare(Path(path)) for _, path in chunk]
            vectors = _embed(self.embedding, waves)
            for (digest, _), vector in zip(chunk, vectors):
                with atomic_path(self._entry(digest), suffix=".npy") as tmp:
                    np.save(tmp, vector)
            self.embedded += len(chunk)
        return [np.load(self._entry(d)) for d in digests]


def _embed(embedding, waves: list[np.ndarray]) -> list[np.ndarray]:
    """[1, dim] float16 per clip (fadtk keeps the batch axis: one row per clip for PANNs)."""
    batch = getattr(embedding, "embed_batch", None)
    vectors = np.asarray(batch(waves)) if callable(batch) else np.stack([embedding.embed(w) for w in waves])
    return [v[None, :].astype(np.float32).astype(np.float16) for v in vectors]

