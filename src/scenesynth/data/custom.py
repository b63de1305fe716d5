"""`data.source: custom`: train on your own folder of captioned audio (README "Train on your own sounds").

The acquire stage of this source reads ``data.custom.captions`` (caption_files.py: Clotho, AudioCaps,
any CSV, JSON lines), finds each named file in ``data.custom.audio_dir``, reads its header and hashes
its bytes, and writes the manifest the rest of the DAG reads, whatever the files' format, rate,
channels or length (resample and mel make them uniform). Nothing is lost silently: a listed file that
is missing, outside the folder, unreadable or shorter than ``data.min_duration`` goes to
``rejects.csv`` with its reason, and ``report.json`` (data/report.py) counts everything.

Keys: a user's names ("my dog (1).wav", "$(rm -rf).flac") cannot be file names or WebDataset keys
downstream, so each clip's key is a slug of its path plus a hash of that path: readable, safe
([A-Za-z0-9_-]), unique, and stable as long as the file keeps its place. The path as written stays
in the ``file`` column.

Several captions per clip: the rows of one file are gathered into the clip's ``captions`` list.
The dev split (the prompts generate and evaluate use, with the clip as FAD reference) is the
caption file's ``split_column``, or ``dev_fraction`` of the clips drawn with the seed over groups of
identical content, so that a copy of a dev clip never trains.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from scenesynth.audio_io import AUDIO_SUFFIXES, AudioReadError, read_header
from scenesynth.data.caption_files import read_caption_file
from scenesynth.data.manifest import CAPTIONS, collect_captions, write_manifest, write_rejects
from scenesynth.data.report import data_report, duplicate_groups, write_data_report
from scenesynth.data.resample import too_short
from scenesynth.utils.atomic import write_json
from scenesynth.utils.parallel import resolve_workers

log = logging.getLogger(__name__)

# What the folder scan counts as audio (soundfile reads more, by content, whatever a listed file's suffix).
SCAN_SUFFIXES = (*AUDIO_SUFFIXES, ".aiff", ".aif", ".aifc", ".opus", ".oga", ".caf", ".w64", ".rf64", ".au")
SLUG_CHARS = 48
PATH_HASH_CHARS = 10  # 40 bits: unique in practice, and checked


class CustomSourceError(ValueError):
    """The custom source cannot be read as params say; the message names the setting or file."""


def clip_key(relative_path: str) -> str:
    """The key of the clip at ``relative_path`` (inside audio_dir): slug of the path + hash of the path."""
    ascii_path = unicodedata.normalize("NFKD", str(Path(relative_path).with_suffix(""))).encode("ascii", "ignore")
    slug = re.sub(r"[^A-Za-z0-9]+", "_", ascii_path.decode()).strip("_")[:SLUG_CHARS].rstrip("_") or "clip"
    digest = hashlib.sha256(relative_path.encode("utf-8")).hexdigest()[:PATH_HASH_CHARS]
    return f"{slug}_{digest}"


def configured_paths(cfg: dict) -> tuple[Path, Path]:
    """(audio_dir, caption file) from ``data.custom``, made absolute; an error naming the setting."""
    for setting in ("audio_dir", "captions"):
        if not cfg[setting]:
            raise CustomSourceError(f"data.source is custom but data.custom.{setting} is not set "
                                    "(README: \"Train on your own sounds\")")
    audio_dir, captions = Path(cfg["audio_dir"]).resolve(), Path(cfg["captions"]).resolve()
    if not audio_dir.is_dir():
        raise CustomSourceError(f"{audio_dir}: data.custom.audio_dir is not a folder")
    if not captions.is_file():
        raise CustomSourceError(f"{captions}: data.custom.captions is not a file")
    return audio_dir, captions


def scan_folder(audio_dir: Path) -> list[str]:
    """Audio files under ``audio_dir`` (any depth, hidden ones skipped), as sorted relative posix paths."""
    found = []
    for root, folders, files in os.walk(audio_dir):
        folders[:] = sorted(f for f in folders if not f.startswith("."))
        for name in files:
            if not name.startswith(".") and Path(name).suffix.lower() in SCAN_SUFFIXES:
                found.append(Path(root, name).relative_to(audio_dir).as_posix())
    return sorted(found)


def inventory(cfg: dict) -> str:
    """A fingerprint of the caption file's bytes and the folder's audio files (names and sizes): the
    acquire rule's rerun trigger, since Snakemake here ignores timestamps and the folder is no output."""
    try:
        audio_dir, captions = configured_paths(cfg)
    except CustomSourceError as err:
        return f"unusable: {err}"  # the acquire job itself reports it
    digest = hashlib.sha256(captions.read_bytes())
    for name in scan_folder(audio_dir):
        digest.update(f"\0{name}\0{(audio_dir / name).stat().st_size}".encode())
    return digest.hexdigest()[:16]


def _locate(name: str, audio_dir: Path, by_stem: dict[str, list[str]]) -> tuple[str | None, str | None]:
    """(relative path of the file a caption row names, or None; the reason when None). A name without
    an audio suffix may stand for the one scanned file with that stem ("dog_bark" -> "dog_bark.flac")."""
    relative = Path(os.path.normpath(name)).as_posix()
    if os.path.isabs(name) or relative == ".." or relative.startswith("../"):
        return None, f"outside data.custom.audio_dir: {name!r}"
    if (audio_dir / relative).is_file():
        return relative, None
    candidates = by_stem.get(relative, [])
    if len(candidates) == 1:
        return candidates[0], None
    return None, f"missing file: no {name!r} in {audio_dir}"


def _inspect(path: Path) -> tuple[object, str | None, str]:
    """(header or None, reject reason or None, sha256 of the bytes)."""
    try:
        info = read_header(path)
    except AudioReadError as err:
        return None, str(err), ""
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    return info, None, digest


def choose_dev(clips: pd.DataFrame, cfg: dict, seed: int) -> list[str]:
    """The split of each clip: the caption file's, or ``dev_fraction`` of the clips (at least 2, at most
    ``dev_max``) drawn with ``seed`` over content groups, so identical files share a split."""
    if cfg["split_column"]:
        return list(clips["split"])
    wanted = min(cfg["dev_max"], max(2, round(cfg["dev_fraction"] * len(clips))))
    groups = sorted(set(clips["sha256"]))
    order = np.random.default_rng([seed, 0xDE7]).permutation(len(groups))
    members = clips.groupby("sha256")["key"].apply(list).to_dict()
    dev: set[str] = set()
    for index in order:
        if len(dev) >= wanted:
            break
        if len(dev) + len(members[groups[index]]) <= cfg["dev_max"]:  # a whole group, within the cap
            dev.update(members[groups[index]])
    return ["dev" if key in dev else "train" for key in clips["key"]]


def _clips_from_rows(rows: pd.DataFrame, audio_dir: Path, scanned: list[str]) -> tuple[pd.DataFrame, list[dict]]:
    """One row per file the caption file names (located in the folder, captions gathered), and the rejects."""
    by_stem: dict[str, list[str]] = {}
    for name in scanned:
        by_stem.setdefault(Path(name).with_suffix("").as_posix(), []).append(name)
    located = {name: _locate(name, audio_dir, by_stem) for name in dict.fromkeys(rows["file"])}
    rows = rows.assign(relative=[located[name][0] or name for name in rows["file"]])
    conflicting = rows.groupby("relative")["split"].nunique() > 1
    if conflicting.any():
        name = conflicting[conflicting].index[0]
        where = rows.loc[rows["relative"] == name, "where"].tolist()
        raise CustomSourceError(f"{where[-1]}: {name!r} is given two splits (also at {where[0]})")
    clips = collect_captions(rows, "relative")
    clips["key"] = [clip_key(name) for name in clips["relative"]]
    clashes = clips["key"].duplicated()
    if clashes.any():  # two paths with the same slug and hash prefix: never seen, but never silently merged
        raise CustomSourceError(f"two files get the key {clips['key'][clashes].iloc[0]!r}; rename one of them")
    clips["path"] = [str(audio_dir / name) for name in clips["relative"]]
    rejects = []
    for key, name, relative, captions in zip(clips["key"], clips["file"], clips["relative"], clips[CAPTIONS]):
        reason = located[name][1] or (None if captions else "no caption (every caption of the file is empty)")
        if reason:
            rejects.append({"key": key, "path": relative, "stage": "acquire", "reason": reason})
    rejected = {r["key"] for r in rejects}
    return clips[~clips["key"].isin(rejected)].reset_index(drop=True), rejects


def acquire_custom(params: dict, out_dir: str | Path) -> Path:
    """Write ``out_dir/manifest.parquet``, ``rejects.csv``, ``report.json`` and ``source.json`` for the
    user's folder; return the manifest path."""
    cfg, out_dir = params["data"]["custom"], Path(out_dir)
    audio_dir, caption_file = configured_paths(cfg)
    rows, fmt = read_caption_file(caption_file, cfg, audio_dir)
    scanned = scan_folder(audio_dir)
    clips, rejects = _clips_from_rows(rows, audio_dir, scanned)

    with ThreadPoolExecutor(resolve_workers(cfg["workers"])) as pool:
        inspected = list(pool.map(_inspect, map(Path, clips["path"])))
    min_duration = params["data"]["min_duration"]
    readable = []
    for (info, reason, digest), key, relative in zip(inspected, clips["key"], clips["relative"]):
        duration = info.frames / info.samplerate if info is not None else 0.0
        reason = reason or too_short(duration, min_duration)
        if reason:
            rejects.append({"key": key, "path": relative, "stage": "acquire", "reason": reason})
        readable.append(reason is None)
    headers = [item for item, ok in zip(inspected, readable) if ok]
    clips = clips[readable].reset_index(drop=True).assign(
        duration=[info.frames / info.samplerate for info, _, _ in headers],
        sample_rate=[int(info.samplerate) for info, _, _ in headers],
        channels=[int(info.channels) for info, _, _ in headers],
        format=[str(info.format) for info, _, _ in headers],
        sha256=[digest for _, _, digest in headers], source="custom")
    clips["split"] = choose_dev(clips, cfg, params["seed"])
    counts = clips["split"].value_counts()
    if counts.get("dev", 0) < 2 or counts.get("train", 0) < 1:
        raise CustomSourceError(f"{caption_file}: {len(clips)} usable clips, {counts.get('dev', 0)} of them dev: "
                                "generate and evaluate need at least 2 dev clips and training at least 1 "
                                f"({len(rejects)} rejected, see {out_dir / 'rejects.csv'})")
    write_rejects(rejects, out_dir / "rejects.csv")
    manifest = out_dir / "manifest.parquet"
    write_manifest(clips.drop(columns=["file", "where"]).rename(columns={"relative": "file"}), manifest)
    listed = set(clips["relative"]) | {r["path"] for r in rejects}
    uncaptioned = [name for name in scanned if name not in listed]
    report = data_report(
        "custom", clips, rejects, duplicate_groups(list(clips["relative"]), list(clips["sha256"])),
        caption_file=str(caption_file), caption_format=fmt, audio_dir=str(audio_dir),
        files_in_folder=len(scanned), uncaptioned_files=len(uncaptioned), uncaptioned_examples=uncaptioned[:10],
        formats=clips["format"].value_counts().sort_index().to_dict(),
        sample_rates={str(k): int(v) for k, v in clips["sample_rate"].value_counts().sort_index().items()},
        channels={str(k): int(v) for k, v in clips["channels"].value_counts().sort_index().items()},
        dev_split=f"column {cfg['split_column']!r}" if cfg["split_column"] else
        f"{cfg['dev_fraction']:g} of the clips (at most {cfg['dev_max']}) drawn with seed {params['seed']}")
    write_data_report(out_dir, report)
    write_json(out_dir / "source.json", {"source": "custom", "synthetic": False, "n_clips": len(clips),
                                         "audio_dir": str(audio_dir), "captions": str(caption_file),
                                         "format": fmt})
    log.info("custom source: %d clips (%d dev), %d rejected, %d files without a caption", len(clips),
             counts.get("dev", 0), len(rejects), len(uncaptioned))
    return manifest
