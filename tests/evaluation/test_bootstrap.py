"""FAD's bootstrap over prompts (evaluation/bootstrap.py): each replicate is the FAD of the drawn clips,
the draw is seeded, and the spread shrinks as the number of prompts grows."""

import numpy as np
import pytest

from scenesynth.evaluation import bootstrap
from scenesynth.evaluation.bootstrap import fad_bootstrap
from scenesynth.evaluation.frechet import frechet_distance, gaussian_stats


def embeddings(n, dim=24, shift=0.3, seed=0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    return rng.normal(size=(n, dim)) @ mixing + shift


@pytest.fixture
def reference():
    return gaussian_stats(embeddings(80, shift=0.0, seed=1))


def test_each_replicate_is_the_fad_of_the_drawn_clips_computed_independently(reference):
    generated = embeddings(30, seed=2)
    parts = bootstrap._replicate_parts(generated, *reference)
    rng = np.random.default_rng(5)
    for rows in [np.arange(30), *rng.integers(0, 30, size=(5, 30))]:
        independent = frechet_distance(*gaussian_stats(generated[rows]), *reference)
        assert bootstrap._replicate(parts, rows) == pytest.approx(independent, rel=1e-9, abs=1e-9)


def test_seeded_and_deterministic_and_the_mean_over_seeds_is_what_is_resampled(reference):
    sets = {"0": embeddings(30, seed=2), "1": embeddings(30, seed=3)}
    first, again = fad_bootstrap(sets, *reference, 200, seed=0), fad_bootstrap(sets, *reference, 200, seed=0)
    assert first == again
    assert fad_bootstrap(sets, *reference, 200, seed=1)["std"] != first["std"]
    low, high = first["interval"]
    point = np.mean([frechet_distance(*gaussian_stats(v), *reference) for v in sets.values()])
    assert first["fad"] == pytest.approx(point, rel=1e-9) and first["std"] > 0
    assert (low + high) / 2 == pytest.approx(point) and high - low == pytest.approx(2 * 1.959964 * first["std"])
    # repeated clips raise FAD: the replicates sit above the point (here their whole percentile interval)
    assert first["replicate_shift"] > 0 and first["percentile_interval"][0] > point


def test_the_spread_shrinks_with_more_prompts(reference):
    few = fad_bootstrap({"0": embeddings(20, seed=4)}, *reference, 300, seed=0)
    many = fad_bootstrap({"0": embeddings(320, seed=4)}, *reference, 300, seed=0)
    assert many["std"] < few["std"] / 2  # ~ 1 / sqrt(n): 4x for 16x the prompts


def test_nothing_to_resample_is_said_not_made_up(reference):
    assert "skipped" in fad_bootstrap({"0": embeddings(30)}, *reference, 0, seed=0)
    assert "skipped" in fad_bootstrap({"0": embeddings(2)}, *reference, 100, seed=0)
