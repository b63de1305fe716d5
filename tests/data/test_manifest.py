"""The manifest checks keys once, where it is read, and carries every caption of a clip."""

import numpy as np
import pandas as pd
import pytest

from scenesynth.data.manifest import (ManifestError, collect_captions, key_problem, read_manifest,
                                      read_manifest_and_rejects, write_manifest)


def rows(keys: list[str], **extra) -> pd.DataFrame:
    return pd.DataFrame({"key": keys, "path": [f"{i}.wav" for i in range(len(keys))],
                         "caption": [f"caption {i}" for i in range(len(keys))], "source": "test", "duration": 1.0,
                         "sample_rate": 16000, "split": "train", **extra})


@pytest.mark.parametrize("key", ["ac_abc-DEF_12", "demo-train-000001", "0", "a" * 80])
def test_safe_keys_pass(key):
    assert key_problem(key) is None


@pytest.mark.parametrize("key", ["../../x", "a/b", "a.b", "with space", "-leading", "_leading", "", "a" * 81,
                                 "tab\there", "$(touch x)", None, 7])
def test_unsafe_keys_are_named(key):
    assert "unsafe key" in key_problem(key)


def test_bad_and_repeated_keys_are_rejected_not_raised(tmp_path):
    table = rows(["good", "../../escape", "dot.ted", "good", "also-good"])
    table.to_parquet(tmp_path / "manifest.parquet", index=False)  # as a foreign tool would write it
    kept, rejects = read_manifest_and_rejects(tmp_path / "manifest.parquet", "mel")
    assert kept["key"].tolist() == ["good", "also-good"]
    assert kept["path"].tolist() == [str(tmp_path / "0.wav"), str(tmp_path / "4.wav")]  # the first "good" row
    reasons = {r["key"]: r["reason"] for r in rejects}
    assert set(reasons) == {"../../escape", "dot.ted", "good"}
    assert reasons["good"].startswith("duplicate key 'good'") and reasons["../../escape"].startswith("unsafe key")
    assert {r["stage"] for r in rejects} == {"mel"} and str(tmp_path / "1.wav") in {r["path"] for r in rejects}
    assert read_manifest(tmp_path / "manifest.parquet")["key"].tolist() == ["good", "also-good"]


def test_captions_round_trip_and_default_to_the_single_caption(tmp_path):
    write_manifest(rows(["a", "b"]), tmp_path / "one.parquet")
    assert read_manifest(tmp_path / "one.parquet")["captions"].tolist() == [["caption 0"], ["caption 1"]]
    several = rows(["a", "b"], captions=[["x", "y", "z"], np.array(["w"])])
    write_manifest(several, tmp_path / "several.parquet")
    assert read_manifest(tmp_path / "several.parquet")["captions"].tolist() == [["x", "y", "z"], ["w"]]
    old = rows(["a"])  # a manifest written before the captions column existed
    old.to_parquet(tmp_path / "old.parquet", index=False)
    assert read_manifest(tmp_path / "old.parquet")["captions"].tolist() == [["caption 0"]]


def test_a_clip_without_any_caption_is_refused(tmp_path):
    with pytest.raises(ManifestError, match=r"no_caption\.parquet: refusing to write clip 'b' without a caption"):
        write_manifest(rows(["a", "b"], captions=[["x"], []]), tmp_path / "no_caption.parquet")


def test_collect_captions_keeps_every_distinct_caption_in_order():
    table = pd.DataFrame({"id": ["v1", "v2", "v1", "v1", "v1", "v3"],
                          "caption": ["first", "other", " second ", "first", "", float("nan")],
                          "extra": [1, 2, 3, 4, 5, 6]})
    clips = collect_captions(table, "id")
    assert clips["id"].tolist() == ["v1", "v2", "v3"] and clips["extra"].tolist() == [1, 2, 6]
    assert clips["captions"].tolist() == [["first", "second"], ["other"], []]
    assert clips["caption"].tolist() == ["first", "other", ""]
    merged = collect_captions(pd.concat([clips, clips.assign(captions=[["third"], ["other"], ["new"]])]), "id")
    assert merged["captions"].tolist() == [["first", "second", "third"], ["other"], ["new"]]
