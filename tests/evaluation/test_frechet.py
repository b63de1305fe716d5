"""Frechet distance: closed forms, agreement with scipy's sqrtm, and rank-deficient stability."""

import warnings

import numpy as np
import pytest
import scipy.linalg

from scenesynth.evaluation.frechet import (
    frechet_distance,
    frechet_distance_from_embeddings,
    gaussian_stats,
    merged_statistics,
    organisers_frechet,
)


pytestmark = pytest.mark.usefixtures("single_thread")

def sqrtm_reference(mu1, cov1, mu2, cov2) -> float:
    """The textbook FID formula (scipy sqrtm of C1 C2, real part), used only as a cross-check."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = scipy.linalg.sqrtm(cov1 @ cov2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(root).real)


def random_spd(rng, dim: int) -> np.ndarray:
    factor = rng.normal(size=(dim, dim))
    return factor @ factor.T / dim + 0.1 * np.eye(dim)


def random_orthogonal(rng, dim: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(dim, dim)))
    return q * np.sign(np.diag(r))


def test_diagonal_closed_form():
    a = np.array([1.0, 4.0, 9.0, 0.25])
    b = np.array([4.0, 1.0, 9.0, 2.25])
    mu1 = np.array([0.0, 1.0, 2.0, 3.0])
    mu2 = np.array([1.0, 1.0, 0.0, 3.0])
    # |dmu|^2 = 1 + 0 + 4 + 0 = 5; sum (sqrt a - sqrt b)^2 = 1 + 1 + 0 + 1 = 3.
    expected = 5.0 + 3.0
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_commuting_non_diagonal_closed_form():
    rng = np.random.default_rng(1)
    dim = 6
    basis = random_orthogonal(rng, dim)
    a = rng.uniform(0.1, 5.0, size=dim)
    b = rng.uniform(0.1, 5.0, size=dim)
    cov1 = basis @ np.diag(a) @ basis.T
    cov2 = basis @ np.diag(b) @ basis.T
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, cov1, mu2, cov2) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_scipy_sqrtm_on_random_spd(seed):
    rng = np.random.default_rng(seed)
    dim = 32
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    cov1, cov2 = random_spd(rng, dim), random_spd(rng, dim)
    assert frechet_distance(mu1, cov1, mu2, cov2) == pytest.approx(
        sqrtm_reference(mu1, cov1, mu2, cov2), rel=1e-6
    )


def test_distance_to_itself_is_zero_and_distance_is_symmetric():
    rng = np.random.default_rng(3)
    dim = 40
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    cov1, cov2 = random_spd(rng, dim), random_spd(rng, dim)
    scale = np.trace(cov1)
    assert abs(frechet_distance(mu1, cov1, mu1, cov1)) <= 1e-8 * scale
    forward = frechet_distance(mu1, cov1, mu2, cov2)
    backward = frechet_distance(mu2, cov2, mu1, cov1)
    assert forward > 0
    assert forward == pytest.approx(backward, rel=1e-9)


def test_scales_quadratically_with_the_embedding():
    rng = np.random.default_rng(4)
    dim = 10
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    cov1, cov2 = random_spd(rng, dim), random_spd(rng, dim)
    base = frechet_distance(mu1, cov1, mu2, cov2)
    scaled = frechet_distance(3 * mu1, 9 * cov1, 3 * mu2, 9 * cov2)
    assert scaled == pytest.approx(9 * base, rel=1e-9)


def test_rank_deficient_60_clips_in_2048_dims_is_finite():
    """The FAD reference set: 60 clips, 2048-d embeddings -> both covariances have rank 59."""
    rng = np.random.default_rng(5)
    clips1 = rng.normal(size=(60, 2048))
    clips2 = 1.3 * rng.normal(size=(60, 2048)) + 0.1
    distance = frechet_distance(*gaussian_stats(clips1), *gaussian_stats(clips2))
    assert np.isfinite(distance) and distance > 0
    # Independent route (nuclear norm of A1 A2^T, no D x D factorisation) must give the same value.
    assert distance == pytest.approx(frechet_distance_from_embeddings(clips1, clips2), rel=1e-8)


def test_rank_deficient_set_against_itself_is_zero():
    rng = np.random.default_rng(9)
    clips = rng.normal(size=(60, 512))
    mu, cov = gaussian_stats(clips)
    assert frechet_distance(mu, cov, mu, cov) <= 1e-8 * np.trace(cov)
    assert frechet_distance_from_embeddings(clips, clips) <= 1e-8 * np.trace(cov)


def test_embedding_path_matches_covariance_path_on_full_rank_data():
    rng = np.random.default_rng(10)
    clips1 = rng.normal(size=(200, 16)) @ rng.normal(size=(16, 16))
    clips2 = rng.normal(size=(150, 16)) + 0.5
    expected = frechet_distance(*gaussian_stats(clips1), *gaussian_stats(clips2))
    assert frechet_distance_from_embeddings(clips1, clips2) == pytest.approx(expected, rel=1e-9)


def test_rank_deficient_agrees_with_real_part_of_sqrtm():
    # 512 dims keeps scipy's sqrtm fast (2048 takes ~16 s here); rank is still 59 << 512.
    rng = np.random.default_rng(6)
    mu1, cov1 = gaussian_stats(rng.normal(size=(60, 512)))
    mu2, cov2 = gaussian_stats(1.3 * rng.normal(size=(60, 512)) + 0.1)
    distance = frechet_distance(mu1, cov1, mu2, cov2)
    assert np.isfinite(distance) and distance >= 0
    assert distance == pytest.approx(sqrtm_reference(mu1, cov1, mu2, cov2), rel=1e-5)


def test_gaussian_stats_is_unbiased_float64():
    rng = np.random.default_rng(7)
    emb = rng.normal(size=(9, 5)).astype(np.float32)
    mu, cov = gaussian_stats(emb)
    assert mu.dtype == np.float64 and cov.dtype == np.float64
    np.testing.assert_allclose(mu, emb.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(emb.astype(np.float64), rowvar=False, ddof=1), rtol=1e-10)


def test_sample_statistics_approach_the_analytic_distance():
    rng = np.random.default_rng(8)
    dim = 4
    mu1, mu2 = np.zeros(dim), np.array([1.0, -0.5, 0.0, 2.0])
    cov1, cov2 = random_spd(rng, dim), random_spd(rng, dim)
    analytic = frechet_distance(mu1, cov1, mu2, cov2)
    samples1 = rng.multivariate_normal(mu1, cov1, size=200_000)
    samples2 = rng.multivariate_normal(mu2, cov2, size=200_000)
    estimated = frechet_distance(*gaussian_stats(samples1), *gaussian_stats(samples2))
    assert estimated == pytest.approx(analytic, rel=0.02)


def test_invalid_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="at least 2"):
        gaussian_stats(np.ones((1, 3)))
    with pytest.raises(ValueError, match="2-D"):
        gaussian_stats(np.ones(3))
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.zeros(2), np.array([[1.0, np.nan], [np.nan, 1.0]]), np.zeros(2), np.eye(2))


def fadtk_frechet():
    """fadtk's own formula when fadtk imports; not installed here: fadtk 1.1.0 pins numpy < 2 (this
    environment has numpy 2.x) and imports torchaudio at module level (a CUDA build that fails on CPU
    torch), so an import error of any kind means skip, not fail."""
    try:
        from fadtk.fad import calc_frechet_distance
    except Exception as err:  # ImportError, or OSError from torchaudio's shared libraries
        pytest.skip(f"fadtk not importable here: {type(err).__name__}: {err}")
    return calc_frechet_distance


def test_agrees_with_fadtk_calc_frechet_distance():
    calc_frechet_distance = fadtk_frechet()
    rng = np.random.default_rng(11)
    clips1 = rng.normal(size=(200, 16)) @ rng.normal(size=(16, 16))
    clips2 = rng.normal(size=(150, 16)) + 0.5
    mu1, cov1 = gaussian_stats(clips1)
    mu2, cov2 = gaussian_stats(clips2)
    assert frechet_distance(mu1, cov1, mu2, cov2) == pytest.approx(
        float(np.real(calc_frechet_distance(mu1, cov1, mu2, cov2))), rel=1e-6
    )


def fork_statistics(per_file):
    """The organisers' fork, utils.calculate_embd_statistics_online, as written (np.cov per file)."""
    mu, scatter, n = np.zeros(per_file[0].shape[-1]), np.zeros((per_file[0].shape[-1],) * 2), 0
    for rows in per_file:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            file_mu, file_scatter, file_n = rows.mean(axis=0), np.cov(rows, rowvar=False) * (len(rows) - 1), len(rows)
        delta = file_mu - mu
        mu += file_n / (n + file_n) * delta
        scatter += file_scatter + delta[:, None] * delta[None, :] * n * file_n / (n + file_n)
        n += file_n
    return mu, scatter / (n - 1)


def test_statistics_merged_file_by_file_equal_those_of_all_rows():
    rng = np.random.default_rng(4)
    files = [rng.normal(size=(rows, 6)).astype(np.float16) for rows in (1, 4, 1, 3, 2)]
    mean, cov, count = merged_statistics(files)
    expected_mean, expected_cov = gaussian_stats(np.concatenate(files).astype(np.float64))
    assert count == 11 and np.allclose(mean, expected_mean) and np.allclose(cov, expected_cov)
    # The fork agrees where every file has several rows (given float64 rows: on float16 ones its per-file
    # np.mean returns float16, a rounding of its own), and is all NaN with one row per file under numpy 2.
    several = [f.astype(np.float64) for f in files if len(f) > 1]
    assert np.allclose(fork_statistics(several)[1], merged_statistics(several)[1])
    one_row = [f for f in files if len(f) == 1] + [rng.normal(size=(1, 6))]
    assert np.isnan(fork_statistics(one_row)[1]).all() and np.isfinite(merged_statistics(one_row)[1]).all()
    with pytest.raises(ValueError, match="at least 2"):
        merged_statistics([files[0]])


def test_organisers_frechet_reports_its_sqrtm_cross_check():
    rng = np.random.default_rng(8)
    mu1, cov1 = gaussian_stats(rng.normal(size=(40, 10)))
    mu2, cov2 = gaussian_stats(rng.normal(size=(30, 10)) + 0.3)
    value, details = organisers_frechet(mu1, cov1, mu2, cov2)
    assert value == pytest.approx(sqrtm_reference(mu1, cov1, mu2, cov2), rel=1e-9)
    assert details["trace_sqrt"] == "eigenvalues" and not details["eps_fallback"]
    assert details["sqrtm_delta"] < 1e-9 and details["sqrtm_trace"] > 0
    assert "sqrtm_delta" not in organisers_frechet(mu1, cov1, mu2, cov2, sqrtm_check=False)[1]
