"""WavCaps' AudioSet_SL part (SPEC.md section 7): captions, blacklists, and the merge with AudioCaps.

The metadata names clips "Y<YouTube id>.wav"; the audio ships as 32 kHz FLAC
inside a split zip (see `archive.py`). Blacklists keep evaluation clips out of
training. Both datasets draw on AudioSet, so the same YouTube video can appear
twice: the merge keeps one row per YouTube id (rule below).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

_WAVCAPS_ID = re.compile(r"^Y([A-Za-z0-9_-]{11})\.(wav|flac)$")


class WavCapsError(ValueError):
    """A metadata file is malformed; the message names the file and the entry."""


def youtube_id_of(wavcaps_id: str, source: str = "") -> str:
    match = _WAVCAPS_ID.fullmatch(wavcaps_id)
    if not match:
        raise WavCapsError(f"{source}: not an AudioSet_SL id (expected 'Y<11 chars>.wav'): {wavcaps_id!r}")
    return match.group(1)


def _entries(path: Path) -> list[dict]:
    data = json.loads(Path(path).read_text())
    entries = data["data"] if isinstance(data, dict) and "data" in data else data
    if not isinstance(entries, list):
        raise WavCapsError(f"{path}: expected a list of entries or {{'data': [...]}}")
    return entries


def read_wavcaps_captions(path: str | Path) -> pd.DataFrame:
    """as_final.json -> youtube_id, wavcaps_id, caption, duration (one row per clip)."""
    path = Path(path)
    rows = []
    for i, entry in enumerate(_entries(path)):
        missing = [k for k in ("id", "caption") if k not in entry]
        if missing:
            raise WavCapsError(f"{path}: entry {i} lacks {missing}")
        rows.append({"youtube_id": youtube_id_of(entry["id"], f"{path} entry {i}"), "wavcaps_id": entry["id"],
                     "caption": str(entry["caption"]).strip(), "duration": float(entry.get("duration", 10.0))})
    return pd.DataFrame(rows, columns=["youtube_id", "wavcaps_id", "caption", "duration"])


def read_blacklist(paths: list[str | Path]) -> set[str]:
    """YouTube ids listed under "AudioSet" in WavCaps' blacklist files."""
    ids: set[str] = set()
    for path in paths:
        data = json.loads(Path(path).read_text())
        for name in data.get("AudioSet", []):
            ids.add(youtube_id_of(name, str(path)))
    return ids


def apply_blacklist(table: pd.DataFrame, blocked: set[str]) -> tuple[pd.DataFrame, int]:
    """Drop blacklisted clips; returns (kept rows, number dropped)."""
    mask = table["youtube_id"].isin(blocked)
    return table[~mask].reset_index(drop=True), int(mask.sum())


def merge_sources(audiocaps: pd.DataFrame, wavcaps: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """One row per YouTube id across both sources.

    Rule: a video in both keeps its AudioCaps row (human-written caption, the
    segment AudioCaps chose); within AudioCaps, several captions of one video
    keep the first by audiocap_id. Returns the merged table and the counts.
    """
    ac = audiocaps.sort_values(["youtube_id", "audiocap_id"]).drop_duplicates("youtube_id").assign(source="audiocaps")
    wc = wavcaps.drop_duplicates("youtube_id").assign(source="wavcaps")
    overlap = wc["youtube_id"].isin(ac["youtube_id"])
    merged = pd.concat([ac, wc[~overlap]], ignore_index=True).sort_values("youtube_id").reset_index(drop=True)
    counts = {"audiocaps": int(len(ac)), "wavcaps": int(len(wc)), "duplicates_dropped": int(overlap.sum()),
              "total": int(len(merged))}
    return merged, counts
