"""Resample every clip of a manifest to the vocoder's rate (48 kHz), mono 16-bit FLAC (or WAV).

soundfile reads, soxr resamples (docs/paper.md section 0: torchaudio does not work
with this CPU torch). Unreadable, empty or non-finite inputs are skipped and
recorded with their reason, and so are clips shorter than ``data.min_duration`` (a
10-sample file is no training clip) and rows whose key could not name a file (checked
where the manifest is read, so a key like ``../../x`` never becomes a path); outputs
already present are kept (each was written atomically, so an existing file is complete),
which makes an interrupted run resume where it stopped.

Speed (~160k clips): a mono file is not averaged over its single channel, and
the output FLAC is encoded in memory from int16 samples converted here exactly
as libsndfile converts float (x * 32768, rounded half to even, clipped), then
written with one call: the same bytes as ``sf.write`` of the float waveform,
a few ms a clip faster (benchmarks/data_stage.py).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import soxr
from tqdm import tqdm

from scenesynth.audio_io import AudioReadError, encode16_bytes, load_mono
from scenesynth.data.manifest import read_manifest_and_rejects, write_manifest, write_rejects
from scenesynth.config import fingerprint
from scenesynth.utils.atomic import atomic_path, write_text
from scenesynth.utils.parallel import resolve_workers


log = logging.getLogger(__name__)


def too_short(duration: float, min_duration: float) -> str | None:
    """The reject reason of a clip shorter than ``data.min_duration`` seconds, or None."""
    if duration < min_duration:
        return f"too short: {duration:.4f} s < data.min_duration {min_duration:g} s"
    return None


def resample_clip(src: str, dst: str, target_rate: int, quality: str,
                  min_duration: float = 0.0) -> tuple[float, str | None]:
    """Resample one file; returns (duration in s, reject reason or None)."""
    if Path(dst).is_file():
        info = sf.info(dst)
        duration = info.frames / info.samplerate
        return duration, too_short(duration, min_duration)
    try:
        audio, rate = load_mono(src)
    except AudioReadError as err:
        return 0.0, str(err)
    reason = too_short(len(audio) / rate, min_duration)
    if reason:
        return len(audio) / rate, reason
    if rate != target_rate:
        audio = soxr.resample(audio, rate, target_rate, quality=quality)
    # the container follows dst's suffix: .wav (resample.format default: fast to write and read) or .flac (less disk)
    encoded = encode16_bytes(np.clip(audio, -1.0, 1.0, out=audio), target_rate,  # audio is our own array
                             "WAV" if dst.endswith(".wav") else "FLAC")
    with atomic_path(dst) as tmp:
        tmp.write_bytes(encoded)
    return len(audio) / target_rate, None


def _resample_job(args: tuple) -> tuple[float, str | None]:
    return resample_clip(*args)


def _discard_stale_audio(out_dir: Path, manifest_path: str | Path, target_rate: int, quality: str,
                        audio_format: str = "flac") -> None:
    """Finished files are reused only for the same source manifest, rate, quality and format."""
    settings = {"manifest": hashlib.sha256(Path(manifest_path).read_bytes()).hexdigest(), "rate": target_rate,
                "quality": quality}
    if audio_format != "flac":  # keeps the identity of existing FLAC outputs unchanged
        settings["format"] = audio_format
    identity = fingerprint(settings)
    marker = out_dir / ".resample_id"
    if marker.is_file() and marker.read_text().strip() != identity:
        log.info("%s holds audio resampled from other inputs: removing it", out_dir / "audio")
        shutil.rmtree(out_dir / "audio", ignore_errors=True)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    write_text(marker, identity + "\n")


def resample_manifest(params: dict, manifest_path: str | Path, out_dir: str | Path,
                      workers: int | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """Resample all clips to ``audio.sample_rate`` (``resample.quality``, ``resample.format``), rejecting
    those shorter than ``data.min_duration``; write ``out_dir/manifest.parquet`` and ``out_dir/rejects.csv``.
    ``workers``: None = ``resample.workers``."""
    out_dir = Path(out_dir)
    target_rate, quality = params["audio"]["sample_rate"], params["resample"]["quality"]
    audio_format = params["resample"]["format"]
    workers = params["resample"]["workers"] if workers is None else workers
    min_duration = params["data"]["min_duration"]
    df, rejects = read_manifest_and_rejects(manifest_path, "resample")
    _discard_stale_audio(out_dir, manifest_path, target_rate, quality, audio_format)
    destinations = [str(out_dir / "audio" / f"{key}.{audio_format}") for key in df["key"]]
    jobs = [(src, dst, target_rate, quality, min_duration) for src, dst in zip(df["path"], destinations)]
    n_workers = resolve_workers(workers)
    progress = dict(total=len(jobs), desc="resample", unit="clip", mininterval=2.0)
    if n_workers > 1:
        with ProcessPoolExecutor(n_workers) as pool:
            results = list(tqdm(pool.map(_resample_job, jobs, chunksize=8), **progress))
    else:
        results = [resample_clip(*job) for job in tqdm(jobs, **progress)]

    keep = []
    for (_, row), dst, (duration, reason) in zip(df.iterrows(), destinations, results):
        if reason is not None:
            rejects.append({"key": row["key"], "path": row["path"], "stage": "resample", "reason": reason})
            continue
        keep.append({**row.to_dict(), "path": dst, "sample_rate": target_rate, "duration": duration})
    out = pd.DataFrame(keep, columns=df.columns)
    write_manifest(out, out_dir / "manifest.parquet")
    write_rejects(rejects, out_dir / "rejects.csv")
    return out, rejects
