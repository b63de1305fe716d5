"""The FAD's floor: the same Frechet distance between REAL training clips and the reference.

A Frechet distance over a few dozen clips is never 0, even for a perfect generator: the mean and
covariance of 60 clips are estimates, and the training clips are not the dev clips. So a stand-in
FAD of 11 483 says nothing on its own. Here the same embedding, clip preparation and statistics
score sets of real training clips of the generated set's size against the same reference: what a
generator that draws real clips would reach with these sample sizes. ``draws`` disjoint sets give
its mean and spread; the evaluate stage prints the run's FAD as a multiple of it.

Training clips are prepared as the reference is (mono, 32 kHz, 16-bit round trip), then cut (or
zero-padded) to ``evaluate.clip_seconds`` from their start, the length a scored generated clip has.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from scenesynth.audio_io import AudioReadError
from scenesynth.data.manifest import read_manifest
from scenesynth.evaluation.clip_prep import ClipRecipe, prepare_clip
from scenesynth.evaluation.embedding_cache import EmbeddingCache
from scenesynth.evaluation.frechet import merged_statistics, organisers_frechet
from scenesynth.evaluation.reference import Reference

log = logging.getLogger(__name__)
FLOOR_STREAM = 104_729  # the floor's draws are their own random stream


def prepare_real(path: Path, recipe: ClipRecipe) -> np.ndarray:
    """A training clip as a scored clip: prepared like the reference, cut or padded to the scored length."""
    wave = prepare_clip(path, ClipRecipe(sample_rate=recipe.sample_rate))
    samples = recipe.expected_samples()
    if samples is None:
        return wave
    return wave[:samples] if len(wave) >= samples else np.pad(wave, (0, samples - len(wave)))


def real_floor(params: dict, train_manifest: str | Path, n_clips: int, reference: Reference, embedding,
               identity: dict, cache: str | Path, recipe: ClipRecipe) -> dict | None:
    """FD of ``draws`` disjoint sets of ``n_clips`` real training clips against ``reference`` (mean, std,
    each draw), or None when the draws are switched off or there are fewer than two training clips."""
    draws = params["evaluate"]["fd_floor_draws"]
    manifest = read_manifest(train_manifest)
    train = manifest[manifest["split"] == "train"].sort_values("key").reset_index(drop=True)
    n_clips = min(n_clips, len(train))
    if draws < 1 or n_clips < 2:
        return None
    draws = max(1, min(draws, len(train) // n_clips))
    rng = np.random.default_rng(params["seed"] * 1_000_003 + FLOOR_STREAM)
    real_cache = EmbeddingCache(cache, embedding, {**identity, "real_clips": "start, cut or zero-padded"},
                                lambda p: prepare_real(p, recipe))
    vectors, skipped = [], []
    for i in rng.permutation(len(train)):  # an unreadable clip is skipped, recorded, and the next one drawn
        if len(vectors) == n_clips * draws:
            break
        try:
            vectors.append(real_cache.embeddings([train["path"].iloc[i]])[0])
        except AudioReadError as err:
            log.warning("FD floor: %s", err)
            skipped.append({"path": str(train["path"].iloc[i]), "reason": str(err)})
    draws = len(vectors) // n_clips
    if draws < 1:
        return None
    ref_mean, ref_cov, _ = merged_statistics(reference.vectors)
    values = []
    for d in range(draws):
        mean, cov, _ = merged_statistics(vectors[d * n_clips:(d + 1) * n_clips])
        values.append(organisers_frechet(mean, cov, ref_mean, ref_cov,
                                         sqrtm_check=params["evaluate"]["sqrtm_check"])[0])
    log.info("FD floor: %d draw(s) of %d real training clips: %s", draws, n_clips, values)
    return {"fd_mean": float(np.mean(values)), "fd_std": float(np.std(values, ddof=1)) if draws > 1 else 0.0,
            "fd_per_draw": [float(v) for v in values], "n_clips": int(n_clips), "draws": int(draws),
            "skipped_clips": skipped,
            "what": "the same Frechet distance (embedding, clip preparation, statistics) between disjoint sets of "
                    "real training clips, as many as the generated set has, and the same reference: the floor a "
                    "generator of real clips reaches with these sample sizes"}


def floor_line(fad: dict) -> str:
    """'FD floor (real training clips vs the reference, 60 clips x 8 draws): 3 120.4 +- 410.2; this run 3.68 x
    its floor', or '' when there is none."""
    floor = fad.get("real_floor")
    if not floor:
        return ""
    return (f"FD floor (real training clips vs the same reference, {floor['n_clips']} clips x {floor['draws']} "
            f"draws): {floor['fd_mean']:.3f} +- {floor['fd_std']:.3f}; this run: {fad['fad_over_floor']:.2f} x its floor")
