"""WavCaps' AudioSet_SL part (docs/paper.md section 7): captions, blacklists, and the merge with AudioCaps.

The metadata names clips "Y<YouTube id>.wav"; the audio ships as 32 kHz FLAC
inside a split zip (see `archive.py`). Blacklists keep evaluation clips out of
training. Both datasets draw on AudioSet, so the same YouTube video can appear
twice: the merge keeps one row per YouTube id (rule below).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pandas as pd

from scenesynth.data.audiocaps import read_audiocaps_csv
from scenesynth.data.manifest import collect_captions, probe_clips, write_manifest, write_rejects
from scenesynth.fetch.archive import extract_flac_members, split_parts
from scenesynth.fetch.download import download_options, fetch_recorded, listing_or_saved
from scenesynth.fetch.hf_hub import HubFile, list_folder, resolve_url
from scenesynth.utils.atomic import write_json

log = logging.getLogger(__name__)
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

    Rule: a video in both keeps its AudioCaps row (human-written captions, the
    segment AudioCaps chose); within AudioCaps, the captions of one video are all
    kept (``captions``), the lowest audiocap_id's first. Returns the merged table and the counts.
    """
    ac = collect_captions(audiocaps.sort_values(["youtube_id", "audiocap_id"]), "youtube_id").assign(source="audiocaps")
    wc = wavcaps.drop_duplicates("youtube_id").assign(source="wavcaps")
    overlap = wc["youtube_id"].isin(ac["youtube_id"])
    merged = pd.concat([ac, wc[~overlap]], ignore_index=True).sort_values("youtube_id").reset_index(drop=True)
    counts = {"audiocaps": int(len(ac)), "wavcaps": int(len(wc)), "duplicates_dropped": int(overlap.sum()),
              "total": int(len(merged))}
    return merged, counts


# ----------------------------------------------------------------------------- the fetch-wavcaps stage

def wavcaps_part_listing(params: dict, parts_dir: Path) -> list[HubFile]:
    """The parts of the AudioSet_SL split zip with the Hub's sizes and sha256 (saved for offline reruns)."""
    cfg = params["data"]["wavcaps"]
    saved = parts_dir / "listing.json"
    listing = listing_or_saved(lambda: list_folder(cfg["endpoint"], cfg["repo"], cfg["revision"], cfg["zip_folder"],
                                                   timeout=params["data"]["download"]["timeout"]), saved, HubFile)
    listing = [f for f in listing if re.search(r"\.(zip|z\d\d)$", f.path)]
    finals = [f for f in listing if f.path.endswith(".zip")]
    if len(finals) != 1:
        raise FileNotFoundError(f"{cfg['repo']}/{cfg['zip_folder']}: expected one .zip (+ .zNN parts), "
                                f"found {[f.path for f in listing]}")
    write_json(saved, [vars(f) for f in listing])
    return listing


def fetch_wavcaps_archive(params: dict, parts_dir: Path, listing: list[HubFile]) -> list[Path]:
    """Every part of the split zip, each checked against the Hub's size and sha256."""
    cfg = params["data"]["wavcaps"]
    for part in listing:
        fetch_recorded(resolve_url(cfg["endpoint"], cfg["repo"], cfg["revision"], part.path),
                       parts_dir / Path(part.path).name, parts_dir / "checksums.json",
                       pinned={"sha256": part.sha256, "size": part.size} if part.sha256 else None,
                       **download_options(params))
    final = next(f for f in listing if f.path.endswith(".zip"))
    return split_parts(parts_dir / Path(final.path).name)


def extract_wavcaps_archive(params: dict, out_dir: Path, audio_dir: Path) -> tuple[int, list[tuple[str, str]]]:
    """Fetch and extract the split zip unless ``audio_dir`` already holds this exact listing's members.

    The marker written after a complete extraction saves a rerun (a code or setting change) from
    hashing ~100 GB of parts again, or from downloading them again after ``delete_archive``.
    Returns (members extracted, rejected (member, reason)).
    """
    listing = wavcaps_part_listing(params, out_dir / "archive")
    marker = audio_dir / ".extracted_from.json"
    parts_record = [vars(f) for f in listing]
    if marker.is_file():
        done = json.loads(marker.read_text())
        if done["parts"] == parts_record:
            return done["extracted"], [tuple(r) for r in done["rejected"]]
    parts = fetch_wavcaps_archive(params, out_dir / "archive", listing)
    extraction = extract_flac_members(parts, audio_dir, flatten=True, check_audio=True)
    extracted = len(extraction.extracted) + len(extraction.skipped_existing)
    audio_dir.mkdir(parents=True, exist_ok=True)
    write_json(marker, {"parts": parts_record, "extracted": extracted, "rejected": extraction.rejected})
    if params["data"]["wavcaps"]["delete_archive"]:
        for part in parts:
            part.unlink()
    return extracted, extraction.rejected


def fetch_wavcaps(params: dict, audiocaps_csv_dir: str | Path, out_dir: str | Path) -> dict:
    """Captions, blacklists and audio of WavCaps' AudioSet_SL -> ``out_dir/manifest.parquet``."""
    cfg, out_dir = params["data"]["wavcaps"], Path(out_dir)
    meta = out_dir / "meta"
    options = download_options(params)

    def meta_file(path: str) -> Path:
        url = resolve_url(cfg["endpoint"], cfg["repo"], cfg["revision"], path)
        return fetch_recorded(url, meta / Path(path).name, meta / "checksums.json", **options)

    captions = read_wavcaps_captions(meta_file(cfg["captions"]))
    blocked = read_blacklist([meta_file(p) for p in cfg["blacklists"]])
    # Belt and braces: AudioCaps' own test clips never train, whatever the blacklists say.
    blocked |= set(read_audiocaps_csv(Path(audiocaps_csv_dir) / "test.csv")["youtube_id"])

    report: dict = {"listed": len(captions)}
    if cfg["audio_dir"]:
        audio_dir = Path(cfg["audio_dir"])
        if not audio_dir.is_dir():
            raise FileNotFoundError(f"{audio_dir}: data.wavcaps.audio_dir is not a folder")
        archive_rejects: list[dict] = []
    else:
        audio_dir = out_dir / "audio"
        report["extracted"], rejected = extract_wavcaps_archive(params, out_dir, audio_dir)
        archive_rejects = [{"key": Path(name).stem, "path": name, "stage": "extract", "reason": reason}
                           for name, reason in rejected]
    kept, report["blacklisted"] = apply_blacklist(captions, blocked)
    paths = [audio_dir / f"Y{yid}.flac" for yid in kept["youtube_id"]]
    present = [p.is_file() for p in paths]
    report["missing_audio"] = present.count(False)
    kept = kept.assign(path=[str(p) for p in paths])[present]
    manifest, unreadable = probe_clips(kept.assign(key="wc_" + kept["youtube_id"], source="wavcaps"))
    report.update(unreadable=len(unreadable), archive_rejected=len(archive_rejects), clips=len(manifest))
    write_rejects(archive_rejects + unreadable, out_dir / "rejects.csv")
    write_manifest(manifest, out_dir / "manifest.parquet")
    write_json(out_dir / "report.json", report)
    log.info("WavCaps AudioSet_SL: %d clips (%d blacklisted, %d missing, %d unreadable)", len(manifest),
             report["blacklisted"], report["missing_audio"], len(unreadable))
    return report
