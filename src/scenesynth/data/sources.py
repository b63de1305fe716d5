"""The paper's training data as pipeline steps: AudioCaps and WavCaps (AudioSet_SL) -> one manifest.

Each step reads its settings from ``params["data"]`` and writes into its own folder
under data/raw, so Snakemake can run (and rerun) them separately:

- ``fetch_audiocaps_csvs``: the official train/val/test CSVs, sha256 recorded on first fetch
  and verified on every later run.
- ``fetch_audiocaps_clips``: the 10 s YouTube segments (yt-dlp), or an existing folder of clips.
- ``fetch_wavcaps``: as_final.json + blacklists + the split zip (each part checked against the
  size and sha256 the Hub publishes), extracted in place to ``<id>.flac``.
- ``merge_training_sources``: one row per YouTube id (AudioCaps preferred), blacklists applied.

Every step tolerates missing clips: they are recorded with a reason and counted, never fatal.
"""

from __future__ import annotations

import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import soundfile as sf

from scenesynth.data import audiocaps as ac
from scenesynth.data import wavcaps as wc
from scenesynth.data.archive import extract_flac_members, split_parts
from scenesynth.data.download import fetch_recorded, listing_or_saved
from scenesynth.data.hf_hub import HubFile, list_folder, resolve_url
from scenesynth.data.manifest import read_manifest, write_manifest, write_rejects
from scenesynth.utils.atomic import write_json

log = logging.getLogger(__name__)

AUDIOCAPS_SPLITS = ("train", "val", "test")
AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".mp3")
_ID_LINE = re.compile(r"^\s*Y?([A-Za-z0-9_-]{11})(?:\.\w+)?\s*(?:[,#].*)?$")


def _download_options(params: dict) -> dict:
    cfg = params["data"]["download"]
    return {"timeout": cfg["timeout"], "retries": cfg["retries"], "backoff": cfg["backoff"], "progress": True}


# ----------------------------------------------------------------------------- AudioCaps

def fetch_audiocaps_csvs(params: dict, out_dir: str | Path) -> dict[str, Path]:
    """The three official CSVs into ``out_dir`` (validated; row counts compared with the paper's)."""
    cfg, out_dir = params["data"]["audiocaps"], Path(out_dir)
    paths = {}
    for split in AUDIOCAPS_SPLITS:
        path = fetch_recorded(cfg["csv_url"].format(split=split), out_dir / f"{split}.csv",
                              out_dir / "checksums.json", **_download_options(params))
        rows = len(ac.read_audiocaps_csv(path))
        if rows != ac.EXPECTED_ROWS[split]:
            log.warning("%s: %d rows, the published %s split has %d", path, rows, split, ac.EXPECTED_ROWS[split])
        paths[split] = path
    return paths


def find_local_clips(folder: str | Path, table: pd.DataFrame) -> dict[str, Path]:
    """Map YouTube ids of ``table`` to audio files in ``folder`` (any depth).

    Accepted names (the stems used by the usual redistributions): ``<id>``, ``Y<id>``,
    ``<audiocap_id>`` and ``<id>_<start seconds>``, with a .flac/.wav/.ogg/.mp3 suffix.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: data.audiocaps.audio_dir is not a folder")
    by_stem = {p.stem: p for p in sorted(folder.rglob("*")) if p.suffix.lower() in AUDIO_SUFFIXES}
    found = {}
    for yid, cap_id, start in zip(table["youtube_id"], table["audiocap_id"], table["start_time"]):
        for stem in (yid, f"Y{yid}", str(cap_id), f"{yid}_{int(start)}", f"{yid}_{int(start) * 1000}"):
            if stem in by_stem:
                found[yid] = by_stem[stem]
                break
    return found


def fetch_audiocaps_clips(params: dict, csv_dir: str | Path, out_dir: str | Path) -> dict:
    """Audio of the configured splits -> ``out_dir/manifest.parquet``; returns coverage per split."""
    cfg, out_dir = params["data"]["audiocaps"], Path(out_dir)
    audio_dir = out_dir / "audio"
    coverage, rows = {}, []
    for split in cfg["splits"]:
        table = ac.read_audiocaps_csv(Path(csv_dir) / f"{split}.csv")
        if cfg["audio_dir"]:
            present = find_local_clips(cfg["audio_dir"], table)
            listed = table["youtube_id"].nunique()
            coverage[split] = {"listed": int(listed), "downloaded": len(present),
                               "coverage": len(present) / listed if listed else 0.0, "from": str(cfg["audio_dir"])}
        else:
            settings = ac.FetchSettings(executable=cfg["yt_dlp"], timeout=cfg["timeout"], retries=cfg["retries"],
                                        backoff=cfg["backoff"], cookies=cfg["cookies"], rate_limit=cfg["rate_limit"])
            coverage[split] = ac.fetch_audiocaps_audio(table, audio_dir, workers=cfg["workers"], settings=settings,
                                                       retry_failed=cfg["retry_failed"])
            present = {yid: audio_dir / f"{yid}.flac" for yid in table["youtube_id"]
                       if (audio_dir / f"{yid}.flac").is_file()}
        for record in table.to_dict("records"):
            if record["youtube_id"] in present:
                rows.append({**record, "path": str(present[record["youtube_id"]]), "audiocaps_split": split})
    table = pd.DataFrame(rows, columns=[*ac.CSV_COLUMNS, "path", "audiocaps_split"])
    table = table.sort_values(["youtube_id", "audiocap_id"]).drop_duplicates("youtube_id")
    manifest, rejects = probe_clips(table.assign(key="ac_" + table["youtube_id"], source="audiocaps"))
    write_rejects(rejects, out_dir / "rejects.csv")
    write_manifest(manifest, out_dir / "manifest.parquet")
    report = {"splits": coverage, "clips": len(manifest), "unreadable": len(rejects)}
    write_json(out_dir / "coverage.json", report)
    for split, numbers in coverage.items():
        log.info("AudioCaps %s: %d of %d clips (%.1f %%)", split, numbers["downloaded"], numbers["listed"],
                 100 * numbers["coverage"])
    return report


# ----------------------------------------------------------------------------- WavCaps

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
                       **_download_options(params))
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
    options = _download_options(params)

    def meta_file(path: str) -> Path:
        url = resolve_url(cfg["endpoint"], cfg["repo"], cfg["revision"], path)
        return fetch_recorded(url, meta / Path(path).name, meta / "checksums.json", **options)

    captions = wc.read_wavcaps_captions(meta_file(cfg["captions"]))
    blocked = wc.read_blacklist([meta_file(p) for p in cfg["blacklists"]])
    # Belt and braces: AudioCaps' own test clips never train, whatever the blacklists say.
    blocked |= set(ac.read_audiocaps_csv(Path(audiocaps_csv_dir) / "test.csv")["youtube_id"])

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
    kept, report["blacklisted"] = wc.apply_blacklist(captions, blocked)
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


# ----------------------------------------------------------------------------- both

def probe_clips(table: pd.DataFrame, workers: int = 16, split: str = "train") -> tuple[pd.DataFrame, list[dict]]:
    """Add duration and sample_rate from each file's header; unreadable files become rejects."""
    def probe(path: str):
        try:
            info = sf.info(path)
        except (RuntimeError, sf.LibsndfileError, OSError) as err:
            return None, f"unreadable: {err}"
        if info.frames <= 0:
            return None, "no audio frames"
        return (info.frames / info.samplerate, info.samplerate), ""

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(probe, table["path"]))
    ok = [r is not None for r, _ in results]
    rejects = [{"key": key, "path": path, "stage": "acquire", "reason": reason}
               for key, path, (r, reason) in zip(table["key"], table["path"], results) if r is None]
    good = table[ok].copy()
    good["duration"] = [r[0] for r, _ in results if r is not None]
    good["sample_rate"] = [r[1] for r, _ in results if r is not None]
    good["split"] = split
    return good.reset_index(drop=True), rejects


def read_excluded_ids(path: str | Path | None) -> set[str]:
    """YouTube ids (one per line, optional `Y` prefix / suffix / trailing comment) never to train on."""
    if not path:
        return set()
    ids = set()
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _ID_LINE.match(line)
        if not match:
            raise ValueError(f"{path}: line {number}: not a YouTube id: {line.strip()!r}")
        ids.add(match.group(1))
    return ids


def merge_training_sources(params: dict, audiocaps_manifest: str | Path, wavcaps_manifest: str | Path,
                           out_dir: str | Path, dev_manifest: str | Path | None = None) -> Path:
    """One manifest: training rows (a video in both sources keeps its AudioCaps row, see
    wavcaps.merge_sources) plus, if given, the evaluation prompts as the `dev` split."""
    out_dir = Path(out_dir)
    audiocaps = read_manifest(audiocaps_manifest)
    wavcaps = read_manifest(wavcaps_manifest)
    merged, counts = wc.merge_sources(audiocaps, wavcaps)
    excluded = read_excluded_ids(params["data"]["exclude_ids"])
    merged, counts["excluded_by_list"] = wc.apply_blacklist(merged, excluded)
    if dev_manifest:
        dev = read_manifest(dev_manifest)
        clash = set(dev["key"]) & set(merged["key"])
        if clash:
            raise ValueError(f"{dev_manifest}: dev keys also used by training clips: {sorted(clash)[:3]}")
        merged = pd.concat([merged, dev], ignore_index=True)
        counts["dev_prompts"] = len(dev)
    manifest = out_dir / "manifest.parquet"
    write_manifest(merged, manifest)
    write_json(out_dir / "source.json", {"source": "audiocaps_wavcaps", "synthetic": False, "n_clips": len(merged),
                                         "counts": counts,
                                         "duplicate_rule": "one row per YouTube id; AudioCaps wins over WavCaps; "
                                                           "within AudioCaps the lowest audiocap_id"})
    log.info("training manifest: %d clips (%s)", len(merged), counts)
    return manifest
