"""The CLAP score: does each clip follow its prompt? (docs/paper.md section 6)

Cosine of CLAP's audio and text embeddings, computed exactly as the generation's re-ranker
computes it (inference/rerank.py, the ``clap_rerank`` checkpoint, LAION-CLAP HTSAT-tiny
``630k-audioset-best.pt``): the 32 kHz clip is resampled to CLAP's 48 kHz (soxr VHQ), repeat-
padded to 10 s by the checkpoint's own feature extractor, and compared with the caption as
written. The score of a run is the mean over prompts; its mean and standard deviation over the
generation seeds are reported beside FAD. Where params fetch no CLAP (the demo), the record says
why instead of holding a number.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soxr

from scenesynth.audio_io import load_mono
from scenesynth.inference.rerank import SAMPLE_RATE as CLAP_RATE
from scenesynth.inference.rerank import ClapReranker

DEFINITION = ("cosine of the CLAP audio and text embeddings (clap_rerank, as the re-ranker scores); "
              "per seed the mean over prompts; mean and std (n - 1) over seeds")


def not_computed(reason: str) -> dict:
    return {"computed": False, "reason": reason, "definition": DEFINITION}


def clip_scores(reranker: ClapReranker, clips: dict[str, Path], captions: dict[str, str]) -> dict[str, float]:
    """{prompt id: cosine} for one seed's clips."""
    scores = {}
    for key, path in clips.items():
        wave, rate = load_mono(path)
        if rate != CLAP_RATE:
            wave = soxr.resample(wave, rate, CLAP_RATE, quality="VHQ")
        scores[key] = float(reranker.scores(wave[None, :], captions[key])[0])
    return scores


def clap_score(pretrained: str | Path, device: str, clips_by_seed: dict[str, dict[str, Path]],
               captions: dict[str, str]) -> tuple[dict, dict[str, dict[str, float]]]:
    """(the metrics record, per seed {prompt id: cosine}); MissingPretrained when clap_rerank is absent."""
    folder = Path(pretrained) / "clap_rerank"
    reranker = ClapReranker(folder, device=device)  # raises MissingPretrained naming the fetch command
    per_seed = {seed: clip_scores(reranker, clips, captions) for seed, clips in clips_by_seed.items()}
    means = np.array([np.mean(list(scores.values())) for scores in per_seed.values()])
    record = {
        "computed": True, "definition": DEFINITION, "model": "clap_rerank", "checkpoint": reranker.checkpoint,
        "clap_score_mean": float(means.mean()), "clap_score_std": float(means.std(ddof=1)) if len(means) > 1 else 0.0,
        "per_seed": {seed: float(m) for seed, m in zip(per_seed, means)},
        "n_prompts": len(next(iter(per_seed.values()))), "n_seeds": len(per_seed),
    }
    return record, per_seed
