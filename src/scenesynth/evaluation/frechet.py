"""Frechet distance between two Gaussians fitted to clip embeddings (the D in FAD).

FD = |mu1 - mu2|^2 + Tr(C1) + Tr(C2) - 2 Tr((C1 C2)^(1/2)), with unbiased covariances (docs/paper.md section 6).

Why not ``scipy.linalg.sqrtm(C1 @ C2)``: with 60 reference clips and 2048-d embeddings both
covariances have rank <= 59, ``C1 @ C2`` is singular and non-symmetric, and sqrtm returns complex
values, warnings or NaN. Only the trace of the square root is needed, and C1 C2 is similar to the
symmetric PSD matrix S C2 S with S = C1^(1/2) (same eigenvalues), so

    Tr((C1 C2)^(1/2)) = sum_i sqrt(lambda_i(S C2 S)),

which needs only symmetric eigendecompositions (``eigh``) and nothing that can go complex.

When the embeddings themselves are at hand, ``frechet_distance_from_embeddings`` gives the same
value without any D x D factorisation (see there): it is the cheap path for 2048-d embeddings and an
independent cross-check of the covariance path.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.linalg

__all__ = [
    "frechet_distance",
    "frechet_distance_from_embeddings",
    "gaussian_stats",
    "merged_statistics",
    "organisers_frechet",
    "trace_sqrt_product",
]

log = logging.getLogger(__name__)


def gaussian_stats(emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and unbiased covariance [D, D] (ddof=1) of embeddings [N, D], in float64.

    The unbiased estimate is what docs/paper.md section 6 and fadtk use; it needs at least two rows.
    """
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array [N, D], got shape {emb.shape}")
    n_rows = emb.shape[0]
    if n_rows < 2:
        raise ValueError(
            f"an unbiased covariance needs at least 2 embeddings, got {n_rows}"
        )
    if not np.all(np.isfinite(emb)):
        raise ValueError("embeddings contain NaN or inf")
    mu = emb.mean(axis=0)
    centred = emb - mu
    cov = centred.T @ centred / (n_rows - 1)
    return mu, cov


def _noise_floor(eigenvalues: np.ndarray, dim: int) -> float:
    """Eigenvalues below this are rounding noise (the tolerance numpy's matrix_rank uses).

    Dropping them matters for rank-deficient inputs: 2000 noise eigenvalues of size ~1e-16
    would otherwise each add ~1e-8 to the trace after the square root.
    """
    largest = float(np.max(np.abs(eigenvalues))) if eigenvalues.size else 0.0
    return largest * dim * np.finfo(np.float64).eps


def trace_sqrt_product(cov1: np.ndarray, cov2: np.ndarray) -> float:
    """Tr((C1 C2)^(1/2)) via the eigenvalues of the symmetric PSD matrix C1^(1/2) C2 C1^(1/2).

    With C1 = U diag(l) U^T restricted to its r eigenvalues above the noise floor and
    B = U_r diag(sqrt(l_r)) [D, r], C1^(1/2) C2 C1^(1/2) = U_r (B^T C2 B) U_r^T has the same
    non-zero eigenvalues as the r x r matrix B^T C2 B. For 60 clips in 2048 dims r <= 59, so the
    second eigendecomposition is 59 x 59 instead of 2048 x 2048.
    """
    dim = cov1.shape[0]
    eigenvalues1, eigenvectors1 = np.linalg.eigh(cov1)
    kept1 = eigenvalues1 > _noise_floor(eigenvalues1, dim)
    if not np.any(kept1):
        return 0.0
    half = eigenvectors1[:, kept1] * np.sqrt(eigenvalues1[kept1])  # B = U_r diag(sqrt(l_r))
    middle = half.T @ cov2 @ half
    middle = 0.5 * (middle + middle.T)  # remove asymmetric rounding so eigh sees what it expects
    eigenvalues = np.linalg.eigvalsh(middle)
    kept = eigenvalues[eigenvalues > _noise_floor(eigenvalues, dim)]
    return float(np.sum(np.sqrt(kept)))


def _as_checked_covariance(cov: np.ndarray, dim: int, name: str) -> np.ndarray:
    cov = np.asarray(cov, dtype=np.float64)
    if cov.shape != (dim, dim):
        raise ValueError(f"{name} must have shape ({dim}, {dim}), got {cov.shape}")
    if not np.all(np.isfinite(cov)):
        raise ValueError(f"{name} contains NaN or inf")
    asymmetry = np.max(np.abs(cov - cov.T)) if dim else 0.0
    scale = max(np.max(np.abs(cov)) if dim else 0.0, 1e-300)
    if asymmetry > 1e-8 * scale:
        raise ValueError(f"{name} is not symmetric (max |C - C^T| = {asymmetry:.3g})")
    return 0.5 * (cov + cov.T)


def frechet_distance(
    mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray
) -> float:
    """Frechet distance between N(mu1, cov1) and N(mu2, cov2), in float64.

    Finite and non-negative for rank-deficient covariances. The exact value is >= 0; a result
    below zero can only be rounding (e.g. identical inputs), so it is returned as 0.0.
    """
    mu1 = np.asarray(mu1, dtype=np.float64).reshape(-1)
    mu2 = np.asarray(mu2, dtype=np.float64).reshape(-1)
    if mu1.shape != mu2.shape:
        raise ValueError(f"means differ in shape: {mu1.shape} vs {mu2.shape}")
    if not (np.all(np.isfinite(mu1)) and np.all(np.isfinite(mu2))):
        raise ValueError("means contain NaN or inf")
    dim = mu1.shape[0]
    cov1 = _as_checked_covariance(cov1, dim, "cov1")
    cov2 = _as_checked_covariance(cov2, dim, "cov2")

    mean_term = float(np.sum((mu1 - mu2) ** 2))
    trace_term = float(np.trace(cov1) + np.trace(cov2))
    distance = mean_term + trace_term - 2.0 * trace_sqrt_product(cov1, cov2)
    return max(distance, 0.0)


def _centred(emb: np.ndarray, name: str) -> np.ndarray:
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim != 2 or emb.shape[0] < 2:
        raise ValueError(f"{name} must be [N, D] with N >= 2, got shape {emb.shape}")
    if not np.all(np.isfinite(emb)):
        raise ValueError(f"{name} contains NaN or inf")
    return emb - emb.mean(axis=0)


def frechet_distance_from_embeddings(emb1: np.ndarray, emb2: np.ndarray) -> float:
    """FD between the Gaussians fitted (unbiased) to emb1 [N1, D] and emb2 [N2, D], in O(N1 N2 D).

    With centred data A1, A2, C_i = A_i^T A_i / (N_i - 1), the non-zero eigenvalues of C1 C2 are the
    squared singular values of A1 A2^T / sqrt((N1 - 1)(N2 - 1)); so Tr((C1 C2)^(1/2)) is the nuclear
    norm of that N1 x N2 matrix. Equal to ``frechet_distance(*gaussian_stats(emb1),
    *gaussian_stats(emb2))`` up to rounding, without forming or factorising a D x D matrix.
    """
    centred1, centred2 = _centred(emb1, "emb1"), _centred(emb2, "emb2")
    mean1 = np.asarray(emb1, dtype=np.float64).mean(axis=0)
    mean2 = np.asarray(emb2, dtype=np.float64).mean(axis=0)
    if centred1.shape[1] != centred2.shape[1]:
        raise ValueError(f"embedding sizes differ: {centred1.shape[1]} vs {centred2.shape[1]}")
    n1, n2 = centred1.shape[0], centred2.shape[0]
    mean_term = float(np.sum((mean1 - mean2) ** 2))
    trace_term = float(np.sum(centred1**2) / (n1 - 1) + np.sum(centred2**2) / (n2 - 1))
    singular_values = np.linalg.svd(centred1 @ centred2.T, compute_uv=False)
    trace_sqrt = float(np.sum(singular_values)) / np.sqrt((n1 - 1) * (n2 - 1))
    return max(mean_term + trace_term - 2.0 * trace_sqrt, 0.0)


# ----------------------------------------------------------------------------- the organisers' scorer

def merged_statistics(per_file: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean, unbiased covariance and row count of several files' embeddings [rows_i, D], merged file
    by file as the organisers' fadtk fork does (``utils.calculate_embd_statistics_online``).

    Each file contributes its mean and its scatter sum((x - mean_i)(x - mean_i)^T); the running
    mean and scatter are merged with the pairwise update of Chan et al.; cov = scatter / (n - 1).
    The fork takes each file's scatter as ``np.cov(file, rowvar=False) * (rows - 1)``: for a
    one-row file (one PANNs vector per clip) numpy 1 did not transpose a single row, returned a
    scalar and so a zero scatter by luck, while numpy 2 transposes it and returns a NaN matrix
    (numpy/lib/_function_base_impl.py, `cov`: ``if not rowvar and m.ndim != 1``), so the fork's
    statistics are all NaN under numpy 2. Here a file's scatter is computed directly (zero for
    one row), which is what the fork meant and computed under numpy 1. One more quirk of the fork
    is not copied: ``np.mean`` of a float16 file returns a float16 mean, so for files of several
    rows (VGGish) its merge uses rounded means; one-row files (PANNs) are unaffected.
    """
    if not per_file:
        raise ValueError("no embeddings to take statistics of")
    dim = np.asarray(per_file[0]).shape[-1]
    mean, scatter, count = np.zeros(dim), np.zeros((dim, dim)), 0
    for index, rows in enumerate(per_file):
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, dim)
        if not np.all(np.isfinite(rows)):
            raise ValueError(f"embedding {index} contains NaN or inf")
        file_mean = rows.mean(axis=0)
        centred = rows - file_mean
        delta = file_mean - mean
        added = rows.shape[0]
        scatter += centred.T @ centred + np.outer(delta, delta) * count * added / (count + added)
        mean += delta * added / (count + added)
        count += added
    if count < 2:
        raise ValueError(f"an unbiased covariance needs at least 2 embeddings, got {count}")
    return mean, scatter / (count - 1), count


SQRTM_TOLERANCE = 1e-3  # the fork warns when the two square roots' traces differ by more


def organisers_frechet(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray, *,
                       sqrtm_check: bool = True, eps: float = 1e-6) -> tuple[float, dict]:
    """The fork's ``calc_frechet_distance`` step by step: the trace of the square root from
    eigenvalues (here those of the symmetric PSD product, see ``trace_sqrt_product``: the same
    eigenvalues as C1 C2 without complex round-off), ``eps`` added to both diagonals when that root
    is not finite, and the cross-check against ``scipy.linalg.sqrtm(C1 C2)`` (a warning when the
    traces differ by more than 1e-3). Returns (FD, what the checks found)."""
    value = frechet_distance(mu1, cov1, mu2, cov2)
    details: dict = {"trace_sqrt": "eigenvalues", "eps_fallback": False}
    if not np.isfinite(value):
        offset = np.eye(np.asarray(cov1).shape[0]) * eps
        value = frechet_distance(mu1, np.asarray(cov1) + offset, mu2, np.asarray(cov2) + offset)
        details["eps_fallback"] = True
    if sqrtm_check:
        ours = trace_sqrt_product(np.asarray(cov1, np.float64), np.asarray(cov2, np.float64))
        with np.errstate(all="ignore"):
            root = scipy.linalg.sqrtm(np.asarray(cov1, np.float64) @ np.asarray(cov2, np.float64))
        theirs = complex(np.trace(root))
        delta = abs(ours - theirs.real) if np.isfinite(theirs.real) else float("inf")
        details.update(sqrtm_trace=theirs.real, sqrtm_trace_imag=theirs.imag, sqrtm_delta=delta)
        if not delta <= SQRTM_TOLERANCE:
            log.warning("sqrtm cross-check: the square roots' traces differ by %.3g", delta)
    return value, details
