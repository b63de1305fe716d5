"""The mel stage: every training clip of a manifest -> float16 log-mel -> WebDataset shards.

Clips are shuffled with the run's seed before sharding, so each shard mixes
sources and the training loader's small shuffle buffer is enough; the same seed
gives byte-identical shards. Decoding and the mel run in worker processes;
writing stays in one process, in a fixed order.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from scenesynth.data.manifest import LABEL_COLUMNS, read_manifest, write_rejects
from scenesynth.audio_io import AudioReadError, load_mono
from scenesynth.features.mel import MelFrontEnd
from scenesynth.features.shards import write_shards
from scenesynth.utils.parallel import resolve_workers

_FRONT_END: MelFrontEnd | None = None


def _init_worker(audio_cfg: dict) -> None:
    global _FRONT_END
    torch.set_num_threads(1)  # one process per core does the parallelism
    _FRONT_END = MelFrontEnd.from_params(audio_cfg)


def _mel_job(args: tuple[str, str]) -> tuple[str, np.ndarray | None, int, str | None]:
    key, path = args
    try:
        audio, rate = load_mono(path)
    except AudioReadError as err:
        return key, None, 0, str(err)
    if rate != _FRONT_END.settings.sample_rate:
        return key, None, 0, f"sample rate {rate} != {_FRONT_END.settings.sample_rate} (run the resample stage)"
    mel, true_frames = _FRONT_END.clip_to_mel(audio)
    return key, mel, true_frames, None


def _meta(row: pd.Series, true_frames: int) -> dict:
    meta = {k: row[k] for k in ("caption", "source", "split") if k in row}
    meta["duration"] = float(row["duration"])
    meta["true_frames"] = int(true_frames)
    for label in LABEL_COLUMNS:
        if label in row and isinstance(row[label], str):
            meta[label] = row[label]
    return meta


def build_mel_shards(params: dict, manifest_path: str | Path, out_dir: str | Path, workers: int | None = None,
                     split: str = "train") -> dict:
    """Write ``out_dir/{split}-NNNNNN.tar`` shards (``mel.shard_size`` samples each, the front end of
    ``audio``, clips shuffled with ``seed``), ``index.json`` and ``rejects.csv``.
    ``workers``: None = ``mel.workers``."""
    out_dir = Path(out_dir)
    audio_cfg, shard_size, seed = params["audio"], params["mel"]["shard_size"], params["seed"]
    workers = params["mel"]["workers"] if workers is None else workers
    df = read_manifest(manifest_path)
    df = df[df["split"] == split].sort_values("key").reset_index(drop=True)
    if df.empty:
        raise ValueError(f"{manifest_path}: no clips in split {split!r}")
    order = np.random.default_rng([seed, 0x3E1]).permutation(len(df))
    df = df.iloc[order].reset_index(drop=True)
    rows = {row["key"]: row for _, row in df.iterrows()}
    rejects: list[dict] = []

    def samples() -> Iterator[dict]:
        jobs = list(zip(df["key"], df["path"]))
        n_workers = resolve_workers(workers)
        with ProcessPoolExecutor(n_workers, initializer=_init_worker, initargs=(audio_cfg,)) as pool:
            for key, mel, true_frames, reason in tqdm(pool.map(_mel_job, jobs, chunksize=4), total=len(jobs),
                                                      desc="mel", unit="clip", mininterval=2.0):
                if reason is not None:
                    rejects.append({"key": key, "path": rows[key]["path"], "stage": "mel", "reason": reason})
                    continue
                yield {"key": key, "mel": mel, "meta": _meta(rows[key], true_frames)}

    out_dir.mkdir(parents=True, exist_ok=True)
    index = write_shards(samples(), out_dir, shard_size=shard_size, prefix=split)
    write_rejects(rejects, out_dir / "rejects.csv")
    return index
