"""The data report (`data/raw/report.json`): what the acquire stage found, before any training.

Training on a folder nobody has looked at is how a run wastes a GPU-week on silence, one
caption repeated 5 000 times, or half the clips missing. So every source's acquire stage
writes one report in one shape: clips readable and rejected (counted by reason), hours per
split, caption statistics (captions per clip, words per caption), and duplicates by content
hash where the stage has read the files. `scenesynth summary` prints its headline.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from scenesynth.data.manifest import CAPTIONS
from scenesynth.utils.atomic import write_json

REPORT_NAME = "report.json"
MAX_EXAMPLES = 10


def reason_kind(reason: str) -> str:
    """The kind of a reject reason (its text before the first ':'), for counting."""
    return str(reason).split(":", 1)[0].strip()


def _spread(values: list[float]) -> dict:
    if not values:
        return {"min": 0, "mean": 0.0, "median": 0.0, "max": 0}
    array = np.asarray(values, dtype=np.float64)
    return {"min": float(array.min()), "mean": round(float(array.mean()), 3), "median": float(np.median(array)),
            "max": float(array.max())}


def caption_statistics(manifest: pd.DataFrame) -> dict:
    """Captions per clip and words per caption over the training clips, and the captions shared by
    several clips (a caption repeated thousands of times teaches nothing about the audio)."""
    train = manifest[manifest["split"] == "train"]
    captions = [caption for clip in train[CAPTIONS] for caption in clip]
    repeated = Counter(captions).most_common(MAX_EXAMPLES)
    return {"total": len(captions), "distinct": len(set(captions)),
            "per_clip": _spread([len(clip) for clip in train[CAPTIONS]]),
            "words": _spread([len(caption.split()) for caption in captions]),
            "most_repeated": [{"caption": text, "clips": n} for text, n in repeated if n > 1]}


def duplicate_groups(names: list[str], hashes: list[str]) -> dict:
    """Clips with identical content (equal sha256 of the file): how many groups, how many clips."""
    groups: dict[str, list[str]] = {}
    for name, digest in zip(names, hashes):
        groups.setdefault(digest, []).append(name)
    repeated = sorted((sorted(members) for members in groups.values() if len(members) > 1), key=lambda g: g[0])
    return {"groups": len(repeated), "clips": sum(len(g) for g in repeated), "examples": repeated[:MAX_EXAMPLES]}


def data_report(source: str, manifest: pd.DataFrame, rejects: list[dict], duplicates: dict | str,
                **details) -> dict:
    """The report of one acquire run. ``duplicates``: :func:`duplicate_groups`' result, or why it
    was not computed; ``details``: what only this source knows (files in the folder, formats ...)."""
    hours = {split: round(float(manifest.loc[manifest["split"] == split, "duration"].sum()) / 3600, 4)
             for split in sorted(set(manifest["split"]))}
    return {
        "source": source,
        "clips_found": len(manifest) + len(rejects),
        "readable": len(manifest),
        "rejected": len(rejects),
        "rejected_by_reason": dict(sorted(Counter(reason_kind(r["reason"]) for r in rejects).items())),
        "rejected_examples": [{"key": r["key"], "path": str(r["path"]), "reason": r["reason"]}
                              for r in rejects[:MAX_EXAMPLES]],
        "clips_by_split": {split: int((manifest["split"] == split).sum()) for split in sorted(set(manifest["split"]))},
        "hours": round(sum(hours.values()), 4),
        "hours_by_split": hours,
        "captions": caption_statistics(manifest),
        "duplicates": duplicates,
        **details,
    }


def write_data_report(out_dir: str | Path, report: dict) -> Path:
    path = Path(out_dir) / REPORT_NAME
    write_json(path, report)
    return path


def headline(report: dict) -> str:
    """One line for `scenesynth summary`."""
    reasons = ", ".join(f"{kind} {n}" for kind, n in report["rejected_by_reason"].items())
    splits = ", ".join(f"{n} {split}" for split, n in report["clips_by_split"].items())
    duplicates = report["duplicates"]
    repeated = (f"{duplicates['groups']} duplicate groups" if isinstance(duplicates, dict)
                else "duplicates not checked")
    return (f"{report['readable']} clips ({splits}; {report['hours']:.2f} h), "
            f"{report['captions']['total']} training captions, {report['rejected']} rejected"
            f"{f' ({reasons})' if reasons else ''}, {repeated}")


def read_data_report(path: str | Path) -> dict:
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else {}
