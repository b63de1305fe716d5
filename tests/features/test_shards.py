"""WebDataset shards: exact round trip, atomic and deterministic writing, reading."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from scenesynth.features.shards import (
    iter_shard_samples,
    make_webdataset,
    read_index,
    shard_paths,
    verify_shards,
    write_shards,
)

N_MELS, N_FRAMES = 256, 64  # full mel height, fewer frames to keep the tests fast


def make_samples(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {
            "key": f"audiocaps_{i:04d}",
            "mel": (rng.standard_normal((N_MELS, N_FRAMES)) * 3 - 5).astype(np.float16),
            "meta": {
                "caption": f"a dog barks number {i} — with ünïcode",
                "source": "audiocaps",
                "duration": 10.0 - i * 0.5,
                "true_frames": np.int64(N_FRAMES - i),  # numpy scalars must serialise
                "labels": ["Dog", "Bark"],
            },
        }
        for i in range(n)
    ]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_round_trip_is_exact(tmp_path: Path) -> None:
    samples = make_samples(10)
    write_shards(samples, tmp_path, shard_size=4)
    read = list(iter_shard_samples(shard_paths(tmp_path)))
    assert [s["key"] for s in read] == [s["key"] for s in samples]
    for original, loaded in zip(samples, read):
        assert loaded["mel"].dtype == np.float16
        np.testing.assert_array_equal(loaded["mel"], original["mel"])
        expected_meta = dict(original["meta"], true_frames=int(original["meta"]["true_frames"]))
        assert loaded["meta"] == expected_meta


def test_index_and_shard_splitting(tmp_path: Path) -> None:
    index = write_shards(make_samples(10), tmp_path, shard_size=4, prefix="val")
    assert read_index(tmp_path) == index
    assert [s["name"] for s in index["shards"]] == ["val-000000.tar", "val-000001.tar", "val-000002.tar"]
    assert [s["n_samples"] for s in index["shards"]] == [4, 4, 2]
    assert index["n_samples"] == 10
    assert (index["n_mels"], index["n_frames"], index["dtype"]) == (N_MELS, N_FRAMES, "float16")
    for entry in index["shards"]:
        assert entry["sha256"] == sha256(tmp_path / entry["name"])
    verify_shards(tmp_path)
    with tarfile.open(tmp_path / "val-000000.tar") as tar:
        names = tar.getnames()
        assert names[:2] == ["audiocaps_0000.json", "audiocaps_0000.mel.npy"]
        assert {member.mtime for member in tar.getmembers()} == {0}


def test_same_input_gives_identical_bytes(tmp_path: Path) -> None:
    first = write_shards(make_samples(6), tmp_path / "a", shard_size=4)
    second = write_shards(make_samples(6), tmp_path / "b", shard_size=4)
    assert first == second
    for entry in first["shards"]:
        assert (tmp_path / "a" / entry["name"]).read_bytes() == (tmp_path / "b" / entry["name"]).read_bytes()
    assert (tmp_path / "a" / "index.json").read_bytes() == (tmp_path / "b" / "index.json").read_bytes()


def test_no_temporary_files_left(tmp_path: Path) -> None:
    write_shards(make_samples(5), tmp_path, shard_size=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "index.json", "train-000000.tar", "train-000001.tar", "train-000002.tar"
    ]


def test_failure_leaves_no_index_and_no_partial_shard(tmp_path: Path) -> None:
    write_shards(make_samples(3), tmp_path, shard_size=4)  # an earlier, complete set
    samples = make_samples(6)
    samples[5]["key"] = "bad.key"  # dots would break WebDataset's key/extension split
    with pytest.raises(ValueError, match="invalid sample key"):
        write_shards(samples, tmp_path, shard_size=4)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "index.json" not in names  # readers refuse the inconsistent folder
    assert not [n for n in names if n.startswith(".")]  # no temporary files
    assert names == ["train-000000.tar"]  # the completed first shard; shard 1 was discarded
    with pytest.raises(FileNotFoundError):
        shard_paths(tmp_path)


def test_stale_shards_of_a_larger_earlier_run_are_removed(tmp_path: Path) -> None:
    write_shards(make_samples(10), tmp_path, shard_size=4)
    (tmp_path / "other-000000.tar").write_bytes(b"not ours")
    index = write_shards(make_samples(3), tmp_path, shard_size=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json", "other-000000.tar", "train-000000.tar"]
    assert [len(list(iter_shard_samples(shard_paths(tmp_path))))] == [index["n_samples"]] == [3]


def test_invalid_samples_are_rejected(tmp_path: Path) -> None:
    good = make_samples(2)
    with pytest.raises(ValueError, match="duplicate"):
        write_shards([good[0], good[0]], tmp_path / "dup", shard_size=4)
    with pytest.raises(ValueError, match="float16"):
        write_shards([dict(good[0], mel=good[0]["mel"].astype(np.float32))], tmp_path / "f32", shard_size=4)
    with pytest.raises(ValueError, match="shape"):
        write_shards([good[0], dict(good[1], mel=good[1]["mel"][:, :10])], tmp_path / "shape", shard_size=4)
    with pytest.raises(ValueError):
        write_shards([dict(good[0], meta={"duration": float("nan")})], tmp_path / "nan", shard_size=4)


def test_empty_input_writes_an_empty_index(tmp_path: Path) -> None:
    index = write_shards([], tmp_path, shard_size=4)
    assert index["shards"] == [] and index["n_samples"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json"]


def test_shuffle_is_seeded_and_complete(tmp_path: Path) -> None:
    samples = make_samples(12)
    write_shards(samples, tmp_path, shard_size=3)
    paths = shard_paths(tmp_path)

    def order(**kwargs) -> list[str]:
        return [s["key"] for s in iter_shard_samples(paths, shuffle=True, **kwargs)]

    keys = [s["key"] for s in samples]
    assert order(seed=1) == order(seed=1)
    assert sorted(order(seed=1)) == keys
    assert order(seed=1) != keys
    assert order(seed=1) != order(seed=2)
    assert order(seed=1, epoch=0) != order(seed=1, epoch=1)


def test_dataloader_workers_split_shards(tmp_path: Path) -> None:
    """webdataset's split_by_worker: each shard goes to exactly one worker."""
    write_shards(make_samples(8), tmp_path, shard_size=2)
    dataset = make_webdataset(shard_paths(tmp_path)).map(lambda s: s["key"])
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2)
    keys = list(loader)
    assert sorted(keys) == [f"audiocaps_{i:04d}" for i in range(8)]


def test_reader_rejects_missing_shards(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        list(iter_shard_samples([]))
    with pytest.raises(FileNotFoundError):
        list(iter_shard_samples([tmp_path / "missing-000000.tar"]))
