"""The manifest: one parquet table per dataset stage, one row per clip.

Paths are stored relative to the manifest's own folder so a data folder can be
moved (or checked out by DVC elsewhere) without rewriting it; readers get
absolute paths back. An empty path (``NO_AUDIO``) stays empty: a dev prompt of the published
DCASE dev set has no reference audio (data/dev_set.py).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from scenesynth.audio_io import AudioReadError, probe
from scenesynth.utils.atomic import atomic_path

REQUIRED_COLUMNS = ("key", "path", "caption", "source", "duration", "sample_rate", "split")
LABEL_COLUMNS = ("foreground", "background")  # known for the demo data only
REJECT_COLUMNS = ("key", "path", "stage", "reason")
NO_AUDIO = ""  # the path of a row without audio


class ManifestError(ValueError):
    """A manifest file is missing or malformed; the message names the file."""


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Load a manifest and resolve its ``path`` column to absolute paths."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found (run the stage that produces it first)")
    df = pd.read_parquet(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"{path}: missing columns {missing}")
    if df["key"].duplicated().any():
        dup = df.loc[df["key"].duplicated(), "key"].iloc[0]
        raise ManifestError(f"{path}: duplicate key {dup!r}")
    root = path.parent.resolve()
    df["path"] = [str((root / p).resolve()) if p != NO_AUDIO else NO_AUDIO for p in df["path"]]
    return df


def read_dev_prompts(path: str | Path) -> pd.DataFrame:
    """The manifest's dev split (the evaluation prompts), sorted by key; an error if it has none."""
    df = read_manifest(path)
    dev = df[df["split"] == "dev"].sort_values("key").reset_index(drop=True)
    if dev.empty:
        raise ValueError(f"{path}: no dev prompts (split == 'dev')")
    return dev


def write_manifest(df: pd.DataFrame, path: str | Path) -> None:
    """Write ``df`` atomically, storing paths relative to the manifest's folder."""
    path = Path(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"{path}: refusing to write a manifest without columns {missing}")
    root = path.parent.resolve()
    out = df.copy()
    out["path"] = [os.path.relpath(Path(p).resolve(), root) if p != NO_AUDIO else NO_AUDIO for p in out["path"]]
    out = out.sort_values("key", kind="stable").reset_index(drop=True)
    with atomic_path(path) as tmp:
        out.to_parquet(tmp, index=False)


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
