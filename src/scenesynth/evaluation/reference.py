"""The FAD reference a dev set names (data/dev/reference.json): the published embeddings, or audio.

The published DCASE dev set has no audio, only each reference clip's embedding for several
models; the FAD reference is then the folder of the model the evaluation embeds with
(``panns-wavegram-logmel`` for the paper's PANNs), read as the fork reads a "baseline" folder:
every ``.npy`` file one clip, float16 as stored. Each file is checked against the sha256 the
dev-set stage recorded, so a changed or stale folder is an error, not a different number. With
reference audio (the demo, or audio a user holds) the clips are embedded like generated ones,
through the same per-clip cache; unreadable ones are left out and listed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from scenesynth.audio_io import AudioReadError
from scenesynth.data.dev_set import REFERENCE, published_vectors
from scenesynth.data.manifest import NO_AUDIO
from scenesynth.evaluation.embedding_cache import EmbeddingCache
from scenesynth.fetch.download import sha256_file

log = logging.getLogger(__name__)


class ReferenceMismatch(ValueError):
    """The dev set's FAD reference cannot be used with this evaluation; the message names the file."""


@dataclass
class Reference:
    """Per reference clip (file): its key and its embedding rows [rows, dim]."""

    kind: str
    description: str
    keys: list[str]
    vectors: list[np.ndarray]
    paired: bool  # keys are the dev prompt ids (a prompt's own reference is known)
    record: dict = field(default_factory=dict)  # what fad.json says about it
    skipped: list[dict] = field(default_factory=list)  # unreadable reference audio

    def by_key(self) -> dict[str, np.ndarray]:
        return dict(zip(self.keys, self.vectors))


def read_reference_record(manifest: str | Path) -> dict:
    """reference.json beside the dev manifest (the dev-set stage writes both)."""
    path = Path(manifest).parent / REFERENCE
    if not path.is_file():
        raise ReferenceMismatch(f"{path}: not found; it comes with the dev set (run `scenesynth dev-set`, "
                             "or the Snakemake rule dev_set)")
    return json.loads(path.read_text())


def _published(record: dict, folder_root: Path, embedding, prompt_ids: list[str]) -> Reference:
    models = record["published"]["models"]
    name = embedding.published_name
    if name is None or name not in models:
        raise ReferenceMismatch(
            f"{folder_root / REFERENCE}: the FAD reference is the published embeddings of {sorted(models)}, "
            f"and evaluate.fad_embedding {embedding.name!r} is not among them; score with "
            "panns_wavegram_logmel, or give reference audio (data.dcase_dev.reference_audio_dir)")
    model = models[name]
    folder = folder_root / model["folder"]
    keys, vectors = [], []
    for file_name, digest in sorted(model["sha256"].items()):
        path = folder / file_name
        if not path.is_file() or sha256_file(path) != digest:
            raise ReferenceMismatch(f"{path}: missing or changed since the dev-set stage recorded it; run it again")
        array = published_vectors(path)
        if array.shape[1] != embedding.dim:
            raise ReferenceMismatch(f"{path}: {array.shape[1]}-d vectors, the {embedding.name} embedding is "
                                 f"{embedding.dim}-d")
        keys.append(Path(file_name).stem)
        vectors.append(array)
    paired = set(prompt_ids) <= set(keys)
    return Reference("published_embeddings", f"{record['source']}, folder {name} ({len(keys)} clips)", keys, vectors,
                     paired, {"kind": "published_embeddings", "source": record["source"], "model": name,
                              "count": len(keys), "sha256": model["sha256"], "paired_with_prompts": paired})


def _audio(record: dict, dev: pd.DataFrame, cache: EmbeddingCache) -> Reference:
    keys, vectors, skipped = [], [], []
    for key, path in zip(dev["key"], dev["path"]):
        if path == NO_AUDIO:
            continue
        try:
            vectors.append(cache.embeddings([path])[0])
            keys.append(key)
        except (AudioReadError, OSError) as err:
            skipped.append({"key": key, "path": path, "reason": str(err)})
            log.warning("%s: reference clip skipped (%s)", path, err)
    if len(keys) < 2:
        raise ReferenceMismatch(f"FAD needs at least 2 readable reference clips, found {len(keys)}")
    return Reference("audio", f"reference audio: {record['source']} ({len(keys)} clips)", keys, vectors, True,
                     {"kind": "audio", "source": record["source"], "count": len(keys),
                      "sha256": {k: record["sha256"].get(k) for k in keys}}, skipped)


def load_reference(manifest: str | Path, dev: pd.DataFrame, embedding, cache: EmbeddingCache) -> Reference:
    """The reference set of the dev set at ``manifest`` for ``embedding``."""
    record = read_reference_record(manifest)
    if record["kind"] == "published_embeddings":
        return _published(record, Path(manifest).parent, embedding, list(dev["key"]))
    return _audio(record, dev, cache)
