"""How sure a FAD is: its spread when the scored prompts are resampled (a bootstrap over prompts).

60 clips against 2048-dimensional statistics give a distance that is both biased (it shrinks as
the number of clips grows) and noisy (another 60 prompts, or another draw of the same 60, gives
another value). The organisers report one number per system; here the FAD comes with the spread of
its bootstrap distribution: the scored prompts are drawn with replacement ``n_resamples`` times
(seeded: the same inputs give the same interval), the generated clips of the drawn prompts make
the generated statistics, and the reference statistics stay fixed (the dev set is what the FAD is
measured against, not a sample of it here). With several generation seeds each replicate uses
the same drawn prompts for every seed and is the mean FAD over seeds, so the interval is that of
the reported mean.

A replicate has fewer distinct clips than the original (about 63 %), and FAD grows as clips get
fewer, so the replicates sit above the FAD itself, by more than their own spread: on 30 synthetic
clips the whole 95 % percentile interval lay above the point, and the bias-corrected (basic)
interval wholly below it (tests/evaluation/test_bootstrap.py). What the bootstrap measures well is
how much the number moves when the prompts move: its standard deviation. So the interval reported
is the normal one about the FAD, F +- 1.96 sd, the spread of a FAD taken, like the challenge's,
on this many prompts; the replicates' mean minus F (``replicate_shift``) and their percentile
interval are reported beside it, as the size of the small-sample bias that neither removes.
"""

from __future__ import annotations

import numpy as np

CONFIDENCE = 0.95
Z = 1.959964  # the normal quantile of CONFIDENCE


def _replicate_parts(vectors: np.ndarray, ref_mean: np.ndarray, ref_cov: np.ndarray) -> tuple:
    x = np.asarray(vectors, dtype=np.float64)
    return x @ x.T, x @ ref_cov @ x.T, x @ ref_mean, float(ref_mean @ ref_mean), float(np.trace(ref_cov))


def _replicate(parts: tuple, rows: np.ndarray) -> float:
    """FD of the generated rows ``rows`` (with repeats) against the fixed reference statistics."""
    gram, cross, proj, ref_sq, ref_trace = parts
    n = len(rows)
    centre = np.eye(n) - 1.0 / n
    k, m = gram[np.ix_(rows, rows)], cross[np.ix_(rows, rows)]
    mean_term = k.sum() / n**2 - 2.0 * proj[rows].mean() + ref_sq
    trace1 = float(np.trace(centre @ k @ centre)) / (n - 1)
    middle = centre @ m @ centre / (n - 1)
    eigenvalues = np.linalg.eigvalsh(0.5 * (middle + middle.T))
    floor = max(float(np.max(np.abs(eigenvalues))), 1e-300) * n * np.finfo(np.float64).eps
    trace_sqrt = float(np.sum(np.sqrt(eigenvalues[eigenvalues > floor])))
    return max(mean_term + trace1 + ref_trace - 2.0 * trace_sqrt, 0.0)


def fad_bootstrap(generated: dict[str, np.ndarray], ref_mean: np.ndarray, ref_cov: np.ndarray,
                  n_resamples: int, seed: int) -> dict:
    """The bootstrap of the mean FAD over seeds. ``generated``: per generation seed, the clip embeddings
    [n_prompts, D] in one prompt order shared by every seed. Returns the replicates' std and the
    percentile interval (``CONFIDENCE``), or {"skipped": why} when there is nothing to resample."""
    if n_resamples <= 0:
        return {"skipped": "evaluate.fad_bootstrap is 0"}
    sets = [np.asarray(v, dtype=np.float64) for v in generated.values()]
    n = sets[0].shape[0] if sets else 0
    if n < 3 or any(s.shape[0] != n for s in sets):
        return {"skipped": f"a bootstrap over prompts needs the same >= 3 prompts in every seed (got "
                           f"{[s.shape[0] for s in sets]})"}
    ref_mean, ref_cov = np.asarray(ref_mean, dtype=np.float64), np.asarray(ref_cov, dtype=np.float64)
    parts = [_replicate_parts(s, ref_mean, ref_cov) for s in sets]
    rng = np.random.default_rng([seed, n])
    draws = rng.integers(0, n, size=(n_resamples, n))
    point = float(np.mean([_replicate(p, np.arange(n)) for p in parts]))
    replicates = np.array([np.mean([_replicate(p, rows) for p in parts]) for rows in draws])
    tail = (1.0 - CONFIDENCE) / 2.0
    q_low, q_high = np.quantile(replicates, [tail, 1.0 - tail])
    sd = float(replicates.std(ddof=1))
    return {"unit": "prompts (the generated clips of each drawn prompt, every seed alike)",
            "n_resamples": int(n_resamples), "seed": int(seed), "confidence": CONFIDENCE, "fad": point,
            "std": sd,
            "interval": [max(point - Z * sd, 0.0), point + Z * sd],
            "percentile_interval": [float(q_low), float(q_high)],
            "replicate_shift": float(replicates.mean()) - point,
            "note": "interval = FAD +- 1.96 sd of the bootstrap over prompts (the mean FAD over seeds); the "
                    "replicates, having repeated clips, sit above it by replicate_shift; the reference statistics "
                    "stay fixed; FAD's small-sample bias is not removed"}
