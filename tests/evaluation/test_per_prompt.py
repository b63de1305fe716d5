"""Per-prompt scores: distances in the FAD embedding space, worst first; honest gaps where unpaired."""

import numpy as np
import pandas as pd
import pytest

from scenesynth.evaluation.per_prompt import COLUMNS, per_prompt_table
from scenesynth.evaluation.reference import Reference

DEV = pd.DataFrame({"key": ["a", "b", "c"], "caption": ["A", "B", "C"], "background": ["water", "none", "water"]})
REF = {"a": np.array([[0.0, 0.0]]), "b": np.array([[10.0, 0.0]]), "c": np.array([[0.0, 10.0]])}


def reference(keys=("a", "b", "c"), paired=True):
    return Reference("published_embeddings", "test", list(keys), [REF[k] for k in ("a", "b", "c")], paired)


def test_distances_ranks_and_the_other_columns():
    generated = {"0": {"a": np.array([[0.0, 1.0]]), "b": np.array([[10.0, 5.0]]), "c": np.array([[0.0, 10.0]])},
                 "1": {"a": np.array([[0.0, 3.0]]), "b": np.array([[10.0, 5.0]]), "c": np.array([[0.0, 10.0]])}}
    clap = {"0": {"a": 0.1, "b": 0.2, "c": 0.3}, "1": {"a": 0.3, "b": 0.2, "c": 0.3}}
    table = per_prompt_table(DEV, generated, reference(), clap, {"a": {"foreground": "dog", "background": "water",
                                                                      "z_spread": 0.25}})
    assert tuple(table.columns) == COLUMNS and list(table["prompt_id"]) == ["b", "a", "c"] and list(table["rank"]) == [1, 2, 3]
    a = table.set_index("prompt_id").loc["a"]
    assert (a["own_reference_distance"], a["own_reference_distance_std"]) == (2.0, pytest.approx(np.sqrt(2)))
    mean = np.array([10 / 3, 10 / 3])
    assert a["reference_mean_distance"] == pytest.approx(np.mean([np.linalg.norm([0, y] - mean) for y in (1, 3)]))
    assert (a["clap_score"], a["predicted_foreground"], a["nearest_reference"]) == (pytest.approx(0.2), "dog", "a")
    assert table.set_index("prompt_id").loc["c", "own_reference_distance"] == 0.0
    assert a["z_spread"] == 0.25 and np.isnan(table.set_index("prompt_id").loc["b", "z_spread"])


def test_unpaired_reference_files_leave_the_own_distance_empty_and_rank_by_the_set():
    generated = {"0": {"a": np.array([[0.0, 1.0]]), "b": np.array([[30.0, 30.0]]), "c": np.array([[3.0, 3.0]])}}
    table = per_prompt_table(DEV, generated, reference(("r1", "r2", "r3"), paired=False))
    assert table["own_reference_distance"].isna().all() and table["clap_score"].isna().all()
    assert list(table["prompt_id"]) == ["b", "a", "c"]  # farthest from the reference mean first
    assert set(table["nearest_reference"]) <= {"r1", "r2", "r3"}
