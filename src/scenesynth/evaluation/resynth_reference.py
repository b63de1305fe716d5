"""`scenesynth resynth-reference`: the audio reading's real clips, resynthesised beside training.

The conditioning score's audio reading (conditioning_score.py) fits its readers on real training
clips sent through front end -> Griffin-Lim -> the generate stage's file -> front end, and bounds
them with the real dev clips sent alike. Those ~150 Griffin-Lim runs depend on the data and a few
settings, never on the model, and they were two thirds of the evaluate stage on the demo. This
stage makes them once, as soon as the data is there: in the DAG it runs on the core that training
(one thread on the demo) leaves free, and a rerun of evaluate after another training run reads
them again instead of redoing them.

The file holds, per part ("train": the readers' clips, "dev": the ceiling's), the clip keys, a
digest of the log-mels they were made from, and the resynthesised log-mels. evaluate reads a part
only where the keys, the digest and the settings (Griffin-Lim iterations, output rate) are those
it would resynthesise itself, so a stale or foreign file can cost time but never change a figure:
a part that does not match is computed afresh, and the log says why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scenesynth import paths
from scenesynth.data.manifest import read_dev_prompts
from scenesynth.evaluation.conditioning_score import labelled_clips, resynthesised_reals, resynthesis_settings
from scenesynth.utils.atomic import atomic_path

log = logging.getLogger(__name__)
FILE = paths.RESYNTH_FILE
PARTS = ("train", "dev")
FORMAT_VERSION = 1


class ResynthReferenceError(ValueError):
    """A resynth-reference file that cannot be read (one line: the file and the problem)."""


def digest(mels: list[np.ndarray]) -> str:
    """sha256 of a list of log-mels, shapes included: the same clips through the same front end."""
    h = hashlib.sha256()
    for mel in mels:
        array = np.ascontiguousarray(mel, dtype=np.float32)
        h.update(np.asarray(array.shape, dtype=np.int64).tobytes())
        h.update(array.tobytes())
    return h.hexdigest()


@dataclass
class ResynthReference:
    """What a resynth-reference file holds; ``lookup`` hands a part out only where it matches."""

    path: Path
    settings: dict
    parts: dict[str, dict]  # part -> {"keys": [...], "digest": str, "mels": [np.ndarray, ...]}
    skipped: str | None = None

    def lookup(self, part: str, keys: list[str], mels: list[np.ndarray], settings: dict) -> list[np.ndarray] | None:
        """The stored resynthesised log-mels of ``keys`` when they were made from ``mels`` with
        ``settings``; else None (and the log says why)."""
        stored = self.parts.get(part)
        why = (self.skipped or f"no {part!r} part" if stored is None else
               f"made with {self.settings}, this run uses {settings}" if self.settings != settings else
               "made for other clips" if stored["keys"] != list(keys) else
               "made from other log-mels (the data or the front end changed)" if stored["digest"] != digest(mels) else
               None)
        if why is not None:
            log.info("%s: its %r clips are resynthesised again here (%s)", self.path, part, why)
            return None
        log.info("%s: %d %r clips read, already resynthesised", self.path, len(keys), part)
        return stored["mels"]


def _pack(part: str, keys: list[str], sources: list[np.ndarray], again: list[np.ndarray]) -> dict[str, np.ndarray]:
    lengths = np.array([m.shape[1] for m in again], dtype=np.int64)
    rows = again[0].shape[0] if again else 0
    return {f"{part}_keys": np.array(keys, dtype=np.str_), f"{part}_digest": np.array(digest(sources)),
            f"{part}_lengths": lengths,
            f"{part}_mels": (np.concatenate(again, axis=1).astype(np.float32) if again
                             else np.zeros((rows, 0), np.float32))}


def _unpack(arrays, part: str) -> dict:
    mels, ends = arrays[f"{part}_mels"], np.cumsum(arrays[f"{part}_lengths"])
    return {"keys": [str(k) for k in arrays[f"{part}_keys"]], "digest": str(arrays[f"{part}_digest"]),
            "mels": [mels[:, end - length:end] for end, length in zip(ends, arrays[f"{part}_lengths"])]}


def write_reference(path: str | Path, record: dict, packed: dict[str, np.ndarray]) -> None:
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as handle:
        np.savez(handle, record=np.array(json.dumps(record, sort_keys=True)), **packed)


def read_reference(path: str | Path) -> ResynthReference:
    """The file resynth-reference wrote; ResynthReferenceError (one line) if it is not one."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as arrays:
            record = json.loads(str(arrays["record"]))
            if record.get("format_version") != FORMAT_VERSION:
                raise ResynthReferenceError(f"{path}: format {record.get('format_version')}, this code reads "
                                            f"{FORMAT_VERSION} (run `scenesynth resynth-reference` again)")
            parts = {part: _unpack(arrays, part) for part in record.get("parts", [])}
    except ResynthReferenceError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise ResynthReferenceError(f"{path}: not a resynth-reference file ({err})") from err
    return ResynthReference(path, record.get("settings", {}), parts, record.get("skipped"))


def build_resynth_reference(params: dict, manifest: str | Path, train_manifest: str | Path,
                            out_dir: str | Path) -> dict:
    """Write <out>/resynthesised.npz: the audio reading's real clips, resynthesised (or, where there is no
    audio reading, a record saying why); returns the record."""
    record = {"format_version": FORMAT_VERSION, "settings": resynthesis_settings(params), "parts": []}
    skipped = (None if params["evaluate"]["conditioning"] else "evaluate.conditioning is false")
    if skipped is None and params["generate"]["vocoder"] != "griffin_lim":
        skipped = ("the audio reading resynthesises with Griffin-Lim; generate.vocoder is "
                   f"{params['generate']['vocoder']}")
    real = labelled_clips(params, train_manifest, read_dev_prompts(manifest)) if skipped is None else None
    if skipped is None and real is None:
        skipped = "no foreground/background labels in the data: no conditioning score"
    packed: dict[str, np.ndarray] = {}
    if skipped is None:
        _, inputs, again = resynthesised_reals(params, real)
        for part in PARTS:
            packed.update(_pack(part, *inputs[part], again[part]))
        record.update(parts=list(PARTS), clips={part: len(inputs[part][0]) for part in PARTS})
    else:
        record["skipped"] = skipped
    write_reference(Path(out_dir) / FILE, record, packed)
    made = ", ".join(f"{n} {part} clips" for part, n in record.get("clips", {}).items())
    log.info("%s: %s", Path(out_dir) / FILE,
             f"nothing to resynthesise ({skipped})" if skipped else f"{made} resynthesised")
    return record
