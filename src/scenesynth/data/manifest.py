"""The manifest: one parquet table per dataset stage, one row per clip.

Paths are stored relative to the manifest's own folder so a data folder can be
moved (or checked out by DVC elsewhere) without rewriting it; readers get
absolute paths back.

Keys become file names (`<key>.wav`) and WebDataset keys, so they are checked once, where a
manifest is read: a row whose key is unsafe or repeated is rejected with its reason instead of
stopping the stage (or writing outside its folder). A clip may carry several captions (Clotho
has five, AudioCaps val/test five): the ``captions`` list column holds all of them, ``caption``
the first (the prompt of a dev clip).
An empty path (``NO_AUDIO``) stays empty: a dev prompt of the published DCASE dev set has no
reference audio (data/dev_set.py).
"""

from __future__ import annotations

import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from scenesynth.audio_io import AudioReadError, probe
from scenesynth.paths import locate
from scenesynth.utils.atomic import atomic_path

REQUIRED_COLUMNS = ("key", "path", "caption", "source", "duration", "sample_rate", "split")
CAPTIONS = "captions"  # every caption of the clip (a list); written with [caption] when a source has one
LABEL_COLUMNS = ("foreground", "background")  # known for the demo data only
REJECT_COLUMNS = ("key", "path", "stage", "reason")
# Letters, digits, '_' and '-': a file name on every system, no path separator, no dot (WebDataset splits
# member names at the first dot); 80 characters leave room for a window suffix in the mel shards.
KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,79}")

log = logging.getLogger(__name__)

NO_AUDIO = ""  # the path of a row without audio


class ManifestError(ValueError):
    """A manifest file is missing or malformed; the message names the file."""


def key_problem(key) -> str | None:
    """Why ``key`` cannot name a clip's files, or None when it can."""
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        return (f"unsafe key {key!r}: keys name files, so they need 1-80 letters, digits, '_' or '-' "
                "(no '.', '/' or spaces), starting with a letter or digit")
    return None


def _as_caption_lists(df: pd.DataFrame) -> list[list[str]]:
    """Every row's captions as a list of str: its ``captions`` entry, or ``[caption]`` where it has none
    (a table without the column, or rows of a one-caption source concatenated with a several-caption one)."""
    lists = df[CAPTIONS] if CAPTIONS in df.columns else [None] * len(df)
    return [[str(c) for c in captions] if isinstance(captions, (list, tuple, np.ndarray))
            else [caption] if isinstance(caption, str) else []
            for captions, caption in zip(lists, df["caption"])]


def read_manifest_and_rejects(path: str | Path, stage: str) -> tuple[pd.DataFrame, list[dict]]:
    """Load a manifest (paths made absolute, ``captions`` lists filled) and split off the rows whose
    key is unsafe or a repeat of an earlier row's: (kept rows, rejects of ``stage``)."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found (run the stage that produces it first)")
    df = pd.read_parquet(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"{path}: missing columns {missing}")
    root = path.parent.resolve()
    df["path"] = [str(locate((root / p).resolve())) if p != NO_AUDIO else NO_AUDIO for p in df["path"]]
    df[CAPTIONS] = _as_caption_lists(df)
    reasons = [key_problem(key) for key in df["key"]]
    repeated = df["key"].duplicated()
    reasons = [reason or (f"duplicate key {key!r} (an earlier row of {path.name} has it)" if again else None)
               for reason, key, again in zip(reasons, df["key"], repeated)]
    rejects = [{"key": str(key), "path": clip, "stage": stage, "reason": reason}
               for key, clip, reason in zip(df["key"], df["path"], reasons) if reason]
    kept = df[[reason is None for reason in reasons]].reset_index(drop=True)
    return kept, rejects


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Load a manifest: the rows with a safe, unique key (others are logged and left out)."""
    df, rejects = read_manifest_and_rejects(path, "read")
    for reject in rejects:
        log.warning("%s: row left out: %s", path, reject["reason"])
    return df


def read_dev_prompts(path: str | Path) -> pd.DataFrame:
    """The manifest's dev split (the evaluation prompts), sorted by key; an error if it has none."""
    df = read_manifest(path)
    dev = df[df["split"] == "dev"].sort_values("key").reset_index(drop=True)
    if dev.empty:
        raise ValueError(f"{path}: no dev prompts (split == 'dev')")
    return dev


def write_manifest(df: pd.DataFrame, path: str | Path) -> None:
    """Write ``df`` atomically, storing paths relative to the manifest's folder and every clip's
    captions as a list (``[caption]`` when the table has no ``captions`` column)."""
    path = Path(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"{path}: refusing to write a manifest without columns {missing}")
    root = path.parent.resolve()
    out = df.copy()
    out["path"] = [os.path.relpath(Path(p).resolve(), root) if p != NO_AUDIO else NO_AUDIO for p in out["path"]]
    out[CAPTIONS] = _as_caption_lists(out)
    empty = [key for key, captions in zip(out["key"], out[CAPTIONS]) if not captions]
    if empty:
        raise ManifestError(f"{path}: refusing to write clip {empty[0]!r} without a caption")
    out = out.sort_values("key", kind="stable").reset_index(drop=True)
    with atomic_path(path) as tmp:
        out.to_parquet(tmp, index=False)


def collect_captions(table: pd.DataFrame, by: str) -> pd.DataFrame:
    """One row per value of ``by`` (the first row's other columns, in ``table`` order) whose
    ``caption`` is its first caption and ``captions`` all its distinct non-empty captions (from the
    rows' ``captions`` lists when the table has them, else from their ``caption``)."""
    captions: dict = {}
    for value, clip_captions in zip(table[by], _as_caption_lists(table)):
        kept = captions.setdefault(value, [])
        for caption in clip_captions:
            text = caption.strip()
            if text and text not in kept:
                kept.append(text)
    first = table.drop_duplicates(by).copy()
    first[CAPTIONS] = [captions[value] for value in first[by]]
    first["caption"] = [c[0] if c else "" for c in first[CAPTIONS]]
    return first.reset_index(drop=True)


def write_rejects(rows: list[dict], path: str | Path) -> None:
    """Record skipped inputs (key, path, stage, reason) as CSV: empty file with header if none."""
    df = pd.DataFrame(rows, columns=list(REJECT_COLUMNS)).sort_values("key", kind="stable")
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def probe_clips(table: pd.DataFrame, workers: int = 16, split: str = "train") -> tuple[pd.DataFrame, list[dict]]:
    """Add duration and sample_rate from each file's header; unreadable files become rejects."""
    def header(path: str):
        try:
            return probe(path), ""
        except AudioReadError as err:
            return None, str(err)

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(header, table["path"]))
    ok = [r is not None for r, _ in results]
    rejects = [{"key": key, "path": path, "stage": "acquire", "reason": reason}
               for key, path, (r, reason) in zip(table["key"], table["path"], results) if r is None]
    good = table[ok].copy()
    good["duration"] = [r[0] for r, _ in results if r is not None]
    good["sample_rate"] = [r[1] for r, _ in results if r is not None]
    good["split"] = split
    return good.reset_index(drop=True), rejects
