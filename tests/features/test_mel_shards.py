"""The mel stage: one bad row is a reject, not a stopped stage; long clips are cropped or cut into
windows; every caption of a clip travels with its (single) mel."""

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import with_overrides
from scenesynth.data.manifest import write_manifest
from scenesynth.features.mel_shards import build_mel_shards, window_starts
from scenesynth.features.shards import iter_shard_samples, shard_paths


def make_clips(tmp_path, params, windows: dict[str, float], captions: dict[str, list[str]] | None = None):
    """48 kHz clips of the given lengths in model windows, and their manifest."""
    rate = params["audio"]["sample_rate"]
    window = params["audio"]["n_frames"] * params["audio"]["hop_length"]
    rows = []
    for i, (key, length) in enumerate(windows.items()):
        path = tmp_path / "audio" / f"clip{i}.wav"
        path.parent.mkdir(exist_ok=True)
        n = int(round(length * window))
        sf.write(path, (0.2 * np.sin(np.arange(n) * (0.01 + 0.01 * i))).astype(np.float32), rate)
        clip_captions = (captions or {}).get(key, [f"caption of {key}"])
        rows.append({"key": key, "path": str(path), "caption": clip_captions[0], "captions": clip_captions,
                     "source": "test", "duration": n / rate, "sample_rate": rate, "split": "train"})
    manifest = tmp_path / "audio" / "manifest.parquet"
    write_manifest(pd.DataFrame(rows), manifest)
    return manifest


@pytest.mark.parametrize("n, long_clips, expected", [
    (100, "crop", [0]), (250, "crop", [0]), (60, "windows", [0]), (100, "windows", [0]),
    (230, "windows", [0, 100]), (250, "windows", [0, 100, 200]), (349, "windows", [0, 100, 200]),
])
def test_window_starts(n, long_clips, expected):
    assert window_starts(n, 100, long_clips) == expected


def test_a_bad_key_is_a_reject_and_the_other_clips_are_sharded(tmp_path, tiny_params):
    manifest = make_clips(tmp_path, tiny_params, {"a": 1.0, "b": 0.5, "c": 0.7})
    table = pd.read_parquet(manifest)
    table.loc[1, "key"] = "b.with.dots"
    table.to_parquet(manifest, index=False)
    index = build_mel_shards(tiny_params, manifest, tmp_path / "mels", workers=1)
    assert index["n_samples"] == 2 and index["long_clips"] == "crop"
    rejects = pd.read_csv(tmp_path / "mels/rejects.csv")
    assert rejects["key"].tolist() == ["b.with.dots"] and rejects["stage"].tolist() == ["mel"]
    assert rejects["reason"].iloc[0].startswith("unsafe key")


def test_long_clips_cut_into_windows_keep_their_captions_and_offsets(tmp_path, tiny_params):
    captions = {"long": ["rain on a roof", "a downpour", "heavy rain"]}
    manifest = make_clips(tmp_path, tiny_params, {"long": 2.6, "short": 0.5}, captions)
    params = with_overrides(tiny_params, mel={**tiny_params["mel"], "long_clips": "windows"})
    index = build_mel_shards(params, manifest, tmp_path / "windows", workers=1)
    samples = {s["key"]: s for s in iter_shard_samples(shard_paths(tmp_path / "windows"))}
    assert sorted(samples) == ["long-w0000", "long-w0001", "long-w0002", "short-w0000"]
    assert index["n_samples"] == 4 and index["long_clips"] == "windows"
    n_frames, rate = tiny_params["audio"]["n_frames"], tiny_params["audio"]["sample_rate"]
    window_seconds = n_frames * tiny_params["audio"]["hop_length"] / rate
    for number in range(3):
        meta = samples[f"long-w{number:04d}"]["meta"]
        assert meta["captions"] == captions["long"] and meta["clip"] == "long" and meta["window"] == number
        assert meta["offset"] == pytest.approx(number * window_seconds)
    assert samples["long-w0001"]["meta"]["true_frames"] == n_frames
    assert samples["long-w0002"]["meta"]["true_frames"] < n_frames  # the padded tail (0.6 of a window)
    assert samples["short-w0000"]["meta"]["true_frames"] < n_frames
    # each window is its own normalised mel, not copies of the first
    assert not np.array_equal(samples["long-w0000"]["mel"], samples["long-w0001"]["mel"])

    build_mel_shards(tiny_params, manifest, tmp_path / "crop", workers=1)
    cropped = {s["key"]: s for s in iter_shard_samples(shard_paths(tmp_path / "crop"))}
    assert sorted(cropped) == ["long", "short"] and cropped["long"]["meta"]["captions"] == captions["long"]
    np.testing.assert_array_equal(cropped["long"]["mel"], samples["long-w0000"]["mel"])
    assert json.loads((tmp_path / "crop/index.json").read_text())["long_clips"] == "crop"
