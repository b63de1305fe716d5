"""The mel stage: every training clip of a manifest -> float16 log-mel -> WebDataset shards.

Clips are shuffled with the run's seed before sharding, so each shard mixes
sources and the training loader's small shuffle buffer is enough; the same seed
gives byte-identical shards. Decoding and the mel run in worker processes;
writing stays in one process, in a fixed order.

A clip longer than the model's window (``audio.n_frames`` frames) is cropped to its
first window (``mel.long_clips: crop``, the paper's 10 s clips fit one) or cut into
consecutive windows, each a sample of its own with the clip's captions
(``mel.long_clips: windows``, for long field recordings); a shorter clip, or the tail
window, is zero-padded and its true length kept in the sample's metadata. The mel is
stored once per clip (or window) whatever the number of its captions: the metadata
lists them all, and training draws one per pass (training/data.py).
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from scenesynth.data.manifest import CAPTIONS, LABEL_COLUMNS, read_manifest_and_rejects, write_rejects
from scenesynth.audio_io import AudioReadError, load_mono
from scenesynth.features.mel import MelFrontEnd
from scenesynth.features.shards import write_shards
from scenesynth.utils.parallel import resolve_workers

_FRONT_END: MelFrontEnd | None = None
CROP, WINDOWS = "crop", "windows"


def _init_worker(audio_cfg: dict) -> None:
    global _FRONT_END
    torch.set_num_threads(1)  # one process per core does the parallelism
    _FRONT_END = MelFrontEnd.from_params(audio_cfg)


def window_starts(n_samples: int, window: int, long_clips: str) -> list[int]:
    """Where each sample of a clip starts: the first window only (``crop``), or every whole window
    plus the tail when it holds at least half a window (``windows``); always at least one."""
    if long_clips == CROP or n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window + 1, window))
    tail = n_samples - (starts[-1] + window)
    if 2 * tail >= window:
        starts.append(starts[-1] + window)
    return starts


def _mel_job(args: tuple[str, str, str]) -> tuple[str, list[tuple[np.ndarray, int, int]], str | None]:
    key, path, long_clips = args
    try:
        audio, rate = load_mono(path)
    except AudioReadError as err:
        return key, [], str(err)
    if rate != _FRONT_END.settings.sample_rate:
        return key, [], f"sample rate {rate} != {_FRONT_END.settings.sample_rate} (run the resample stage)"
    window = _FRONT_END.settings.clip_samples
    pieces = []
    for start in window_starts(len(audio), window, long_clips):
        mel, true_frames = _FRONT_END.clip_to_mel(audio[start: start + window])
        pieces.append((mel, true_frames, start))
    return key, pieces, None


def _meta(row: pd.Series, true_frames: int) -> dict:
    meta = {k: row[k] for k in ("caption", "source", "split") if k in row}
    meta[CAPTIONS] = list(row[CAPTIONS])
    meta["duration"] = float(row["duration"])
    meta["true_frames"] = int(true_frames)
    for label in LABEL_COLUMNS:
        if label in row and isinstance(row[label], str):
            meta[label] = row[label]
    return meta


def build_mel_shards(params: dict, manifest_path: str | Path, out_dir: str | Path, workers: int | None = None,
                     split: str = "train") -> dict:
    """Write ``out_dir/{split}-NNNNNN.tar`` shards (``mel.shard_size`` samples each, the front end of
    ``audio``, long clips as ``mel.long_clips`` says, clips shuffled with ``seed``), ``index.json``
    and ``rejects.csv`` (unreadable clips, and rows whose key cannot name a sample).
    ``workers``: None = ``mel.workers``."""
    out_dir = Path(out_dir)
    audio_cfg, shard_size, seed = params["audio"], params["mel"]["shard_size"], params["seed"]
    long_clips = params["mel"]["long_clips"]
    workers = params["mel"]["workers"] if workers is None else workers
    df, rejects = read_manifest_and_rejects(manifest_path, "mel")
    df = df[df["split"] == split].sort_values("key").reset_index(drop=True)
    if df.empty:
        raise ValueError(f"{manifest_path}: no clips in split {split!r}")
    order = np.random.default_rng([seed, 0x3E1]).permutation(len(df))
    df = df.iloc[order].reset_index(drop=True)
    rows = {row["key"]: row for _, row in df.iterrows()}

    def samples() -> Iterator[dict]:
        jobs = [(key, path, long_clips) for key, path in zip(df["key"], df["path"])]
        n_workers = resolve_workers(workers)
        rate = audio_cfg["sample_rate"]
        with ProcessPoolExecutor(n_workers, initializer=_init_worker, initargs=(audio_cfg,)) as pool:
            for key, pieces, reason in tqdm(pool.map(_mel_job, jobs, chunksize=4), total=len(jobs),
                                            desc="mel", unit="clip", mininterval=2.0):
                if reason is not None:
                    rejects.append({"key": key, "path": rows[key]["path"], "stage": "mel", "reason": reason})
                    continue
                for number, (mel, true_frames, start) in enumerate(pieces):
                    meta = _meta(rows[key], true_frames)
                    if long_clips == WINDOWS:
                        meta.update(clip=key, window=number, offset=start / rate)
                    name = key if long_clips == CROP else f"{key}-w{number:04d}"
                    yield {"key": name, "mel": mel, "meta": meta}

    out_dir.mkdir(parents=True, exist_ok=True)
    index = write_shards(samples(), out_dir, shard_size=shard_size, prefix=split, extra={"long_clips": long_clips})
    write_rejects(rejects, out_dir / "rejects.csv")
    return index
