"""AudioCaps: the official CSVs and the 10 s YouTube segments they point to (docs/paper.md section 7).

The audio only exists on YouTube, and about 9 % of the videos are gone, so this
module is built around failure: every clip is fetched by yt-dlp (+ ffmpeg) from
an argument list (no shell: ids are validated, captions never reach a command),
with a per-clip timeout, retries with backoff for transient errors, and a
`failed.csv` that records why each missing clip is missing, so that a rerun skips
what is known to be gone (unless asked) and coverage is reported per split.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from scenesynth.audio_io import AUDIO_SUFFIXES
from scenesynth.data.manifest import collect_captions, probe_clips, write_manifest, write_rejects
from scenesynth.fetch.download import download_options, fetch_recorded
from scenesynth.utils.atomic import atomic_path, write_json

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
EXPECTED_ROWS = {"train": 49838, "val": 2475, "test": 4875}
CSV_COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")
CLIP_SECONDS = 10.0
FAILED_COLUMNS = ("youtube_id", "reason", "detail")
_YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")

# yt-dlp's messages -> a short reason; permanent reasons are not retried.
_FAILURE_PATTERNS = (
    ("private", re.compile(r"private video", re.I)),
    ("removed", re.compile(r"(has been removed|account .* terminated|no longer available)", re.I)),
    ("copyright", re.compile(r"copyright", re.I)),
    ("age_restricted", re.compile(r"(sign in to confirm your age|age-restricted|inappropriate)", re.I)),
    ("geo_blocked", re.compile(r"(not available in your country|geo.?restrict)", re.I)),
    ("unavailable", re.compile(r"(video unavailable|this video is unavailable|does not exist)", re.I)),
    ("rate_limited", re.compile(r"(http error 429|too many requests|rate.?limit)", re.I)),
)
PERMANENT = {"private", "removed", "copyright", "age_restricted", "geo_blocked", "unavailable"}


class AudioCapsError(ValueError):
    """A CSV or id is malformed; the message names the file and the row."""


def read_audiocaps_csv(path: str | Path) -> pd.DataFrame:
    """The official CSV (audiocap_id, youtube_id, start_time, caption), validated row by row."""
    path = Path(path)
    table = pd.read_csv(path, dtype={"youtube_id": str, "caption": str})
    missing = [c for c in CSV_COLUMNS if c not in table.columns]
    if missing:
        raise AudioCapsError(f"{path}: missing columns {missing} (expected {list(CSV_COLUMNS)})")
    bad = ~table["youtube_id"].astype(str).str.fullmatch(_YOUTUBE_ID)
    if bad.any():
        row = int(bad.idxmax())
        raise AudioCapsError(f"{path}: row {row + 2}: invalid YouTube id {table['youtube_id'][row]!r}")
    if (table["start_time"] < 0).any():
        raise AudioCapsError(f"{path}: negative start_time in row {int((table['start_time'] < 0).idxmax()) + 2}")
    return table[list(CSV_COLUMNS)]


def yt_dlp_command(youtube_id: str, start: float, out_stem: Path, *, executable: str = "yt-dlp",
                   cookies: str | None = None, rate_limit: str | None = None, socket_timeout: int = 30) -> list[str]:
    """The argument list for one clip: [start, start + 10 s], best audio, mono FLAC at the source rate."""
    if not _YOUTUBE_ID.fullmatch(youtube_id):
        raise AudioCapsError(f"invalid YouTube id {youtube_id!r}")
    cmd = [executable, "--quiet", "--no-warnings", "--no-playlist", "--no-progress",
           "--socket-timeout", str(socket_timeout), "-f", "bestaudio/best",
           "--download-sections", f"*{start:.3f}-{start + CLIP_SECONDS:.3f}", "--force-keyframes-at-cuts",
           "--extract-audio", "--audio-format", "flac", "--postprocessor-args", "ffmpeg:-ac 1",
           "-o", f"{out_stem}.%(ext)s"]
    if cookies:
        cmd += ["--cookies", str(cookies)]
    if rate_limit:
        cmd += ["--limit-rate", str(rate_limit)]
    return cmd + ["--", f"https://www.youtube.com/watch?v={youtube_id}"]


def classify_failure(message: str) -> str:
    for reason, pattern in _FAILURE_PATTERNS:
        if pattern.search(message):
            return reason
    return "error"


@dataclass
class FetchSettings:
    executable: str = "yt-dlp"
    timeout: float = 120.0          # seconds per attempt
    retries: int = 3                # extra attempts for transient failures
    backoff: float = 5.0            # seconds, doubled per attempt
    cookies: str | None = None
    rate_limit: str | None = None   # e.g. "2M" (yt-dlp --limit-rate)


def fetch_clip(youtube_id: str, start: float, out_dir: Path, settings: FetchSettings,
               run: Callable = subprocess.run) -> tuple[str, str]:
    """Fetch one clip to ``out_dir/<id>.flac``; returns ("ok", "") or (reason, detail)."""
    final = out_dir / f"{youtube_id}.flac"
    if final.is_file():
        return "ok", "already present"
    reason, detail = "error", ""
    for attempt in range(settings.retries + 1):
        stem = out_dir / f".{youtube_id}.part{attempt}"
        cmd = yt_dlp_command(youtube_id, start, stem, executable=settings.executable, cookies=settings.cookies,
                             rate_limit=settings.rate_limit)
        try:
            done = run(cmd, capture_output=True, text=True, timeout=settings.timeout)
            produced = stem.with_suffix(stem.suffix + ".flac")
            if done.returncode == 0 and produced.is_file() and produced.stat().st_size > 0:
                os.replace(produced, final)
                return "ok", ""
            detail = (done.stderr or done.stdout or f"exit status {done.returncode}").strip().splitlines()[-1:]
            detail = detail[0] if detail else f"exit status {done.returncode}"
            reason = classify_failure(done.stderr + done.stdout) if done.returncode else "no output file"
        except subprocess.TimeoutExpired:
            reason, detail = "timeout", f"no result within {settings.timeout:g} s"
        except FileNotFoundError as err:
            raise RuntimeError(f"{settings.executable!r} not found: install yt-dlp and ffmpeg "
                               "(pip install yt-dlp; apt-get install ffmpeg)") from err
        finally:
            for leftover in out_dir.glob(f".{youtube_id}.part{attempt}*"):
                leftover.unlink(missing_ok=True)
        if reason in PERMANENT:
            break
        if attempt < settings.retries:
            time.sleep(settings.backoff * 2**attempt)
    return reason, detail


def read_failed(path: Path) -> pd.DataFrame:
    if path.is_file():
        return pd.read_csv(path, dtype=str).fillna("")
    return pd.DataFrame(columns=list(FAILED_COLUMNS))


def fetch_audiocaps_audio(table: pd.DataFrame, out_dir: str | Path, *, workers: int = 4,
                          settings: FetchSettings | None = None, retry_failed: bool = False,
                          run: Callable = subprocess.run) -> dict:
    """Fetch every clip of a CSV table; update ``out_dir/failed.csv``; return coverage numbers.

    Clips listed in failed.csv are skipped unless ``retry_failed``; clips already
    downloaded are kept. Bounded parallelism: ``workers`` yt-dlp processes at once.
    """
    settings = settings or FetchSettings()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    failed_path = out_dir / "failed.csv"
    failed = read_failed(failed_path)
    known_gone = set() if retry_failed else set(failed["youtube_id"])
    clips = table.drop_duplicates("youtube_id")
    todo = [(yid, float(start)) for yid, start in zip(clips["youtube_id"], clips["start_time"])
            if yid not in known_gone and not (out_dir / f"{yid}.flac").is_file()]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = list(pool.map(lambda job: (job[0], *fetch_clip(job[0], job[1], out_dir, settings, run)), todo))
    newly_failed = {yid: (reason, detail) for yid, reason, detail in results if reason != "ok"}
    kept = failed[~failed["youtube_id"].isin([yid for yid, reason, _ in results])]
    rows = [*kept.to_dict("records"),
            *({"youtube_id": yid, "reason": r, "detail": d} for yid, (r, d) in sorted(newly_failed.items()))]
    with atomic_path(failed_path) as tmp:
        pd.DataFrame(rows, columns=list(FAILED_COLUMNS)).sort_values("youtube_id").to_csv(tmp, index=False)
    present = sum((out_dir / f"{yid}.flac").is_file() for yid in clips["youtube_id"])
    coverage = {"listed": int(len(clips)), "downloaded": int(present),
                "coverage": present / len(clips) if len(clips) else 0.0,
                "failed": int(len(rows)), "attempted_this_run": len(todo),
                "failures_by_reason": pd.Series([r["reason"] for r in rows], dtype=str).value_counts().to_dict()}
    log.info("AudioCaps %s: %d / %d clips (%.1f %%)", out_dir, present, len(clips), 100 * coverage["coverage"])
    return coverage


# ----------------------------------------------------------------------------- the fetch-audiocaps-* stages

def fetch_audiocaps_csvs(params: dict, out_dir: str | Path) -> dict[str, Path]:
    """The three official CSVs into ``out_dir`` (validated; row counts compared with the paper's)."""
    cfg, out_dir = params["data"]["audiocaps"], Path(out_dir)
    paths = {}
    for split in SPLITS:
        path = fetch_recorded(cfg["csv_url"].format(split=split), out_dir / f"{split}.csv",
                              out_dir / "checksums.json", **download_options(params))
        rows = len(read_audiocaps_csv(path))
        if rows != EXPECTED_ROWS[split]:
            log.warning("%s: %d rows, the published %s split has %d", path, rows, split, EXPECTED_ROWS[split])
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
        table = read_audiocaps_csv(Path(csv_dir) / f"{split}.csv")
        if cfg["audio_dir"]:
            present = find_local_clips(cfg["audio_dir"], table)
            listed = table["youtube_id"].nunique()
            coverage[split] = {"listed": int(listed), "downloaded": len(present),
                               "coverage": len(present) / listed if listed else 0.0, "from": str(cfg["audio_dir"])}
        else:
            settings = FetchSettings(executable=cfg["yt_dlp"], timeout=cfg["timeout"], retries=cfg["retries"],
                                        backoff=cfg["backoff"], cookies=cfg["cookies"], rate_limit=cfg["rate_limit"])
            coverage[split] = fetch_audiocaps_audio(table, audio_dir, workers=cfg["workers"], settings=settings,
                                                       retry_failed=cfg["retry_failed"])
            present = {yid: audio_dir / f"{yid}.flac" for yid in table["youtube_id"]
                       if (audio_dir / f"{yid}.flac").is_file()}
        for record in table.to_dict("records"):
            if record["youtube_id"] in present:
                rows.append({**record, "path": str(present[record["youtube_id"]]), "audiocaps_split": split})
    table = pd.DataFrame(rows, columns=[*CSV_COLUMNS, "path", "audiocaps_split"])
    # one row per video, every caption kept (val/test have five): the lowest audiocap_id's caption first
    table = collect_captions(table.sort_values(["youtube_id", "audiocap_id"]), "youtube_id")
    manifest, rejects = probe_clips(table.assign(key="ac_" + table["youtube_id"], source="audiocaps"))
    write_rejects(rejects, out_dir / "rejects.csv")
    write_manifest(manifest, out_dir / "manifest.parquet")
    report = {"splits": coverage, "clips": len(manifest), "unreadable": len(rejects)}
    write_json(out_dir / "coverage.json", report)
    for split, numbers in coverage.items():
        log.info("AudioCaps %s: %d of %d clips (%.1f %%)", split, numbers["downloaded"], numbers["listed"],
                 100 * numbers["coverage"])
    return report
