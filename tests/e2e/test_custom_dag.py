"""Bring your own sounds: a folder of real-format audio with a caption file, through the real DAG.

One Snakemake run on a Clotho-style folder (config/tiny.yaml's sizes, long clips cut into windows)
to the metrics; the AudioCaps-layout CSV and JSON lines through acquire, resample, mel and text
as library calls (the stages after those do not depend on the caption format).
"""

from __future__ import annotations

import csv
import json

import pandas as pd
import pytest
import yaml

from conftest import REPO
from custom_folder import (CORRUPT_NAME, MISSING_NAME, SHELL_NAME, TOO_SHORT_NAME, build_audio, build_audiocaps_layout,
                           custom_overlay, write_clip, write_clotho_csv, write_jsonl)
from test_workflow import planned_rules, project_copy, run
from scenesynth.config import deep_merge, load_params
from scenesynth.data.acquire import acquire
from scenesynth.data.manifest import read_manifest
from scenesynth.data.resample import resample_manifest
from scenesynth.features.mel_shards import build_mel_shards
from scenesynth.features.shards import iter_shard_samples, shard_paths
from scenesynth.text.cache import TextCache, build_manifest_text_cache

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
OVERLAY = "config/custom_tiny.yaml"


def no_shell_ran(*folders) -> None:
    for folder in folders:
        assert not list(folder.rglob("pwned*")), f"a file name reached a shell in {folder}"


def test_a_clotho_style_folder_runs_the_real_dag_to_the_metrics(tmp_path):
    project = project_copy(tmp_path)
    audio = build_audio(tmp_path)
    captions = write_clotho_csv(tmp_path)
    tiny = yaml.safe_load((project / "config/tiny.yaml").read_text())
    overlay = deep_merge(tiny, custom_overlay(audio, captions))
    overlay["mel"]["long_clips"] = "windows"
    (project / OVERLAY).write_text(yaml.safe_dump(overlay))
    config = ["--config", f"overlay={OVERLAY}"]
    run(["snakemake", "--cores", "2", *config], project, timeout=900)

    manifest = read_manifest(project / "data/raw/manifest.parquet")
    train, dev = manifest[manifest["split"] == "train"], manifest[manifest["split"] == "dev"]
    assert SHELL_NAME in set(manifest["file"]) and len(dev) >= 2
    every_caption = {caption for clip in train["captions"] for caption in clip}
    assert set(TextCache(project / "data/text").captions) == every_caption
    assert len(every_caption) > len(train)  # several per clip, all of them
    rejects = pd.read_csv(project / "data/raw/rejects.csv")
    assert {CORRUPT_NAME, TOO_SHORT_NAME, MISSING_NAME} == set(rejects["path"])
    assert rejects.set_index("path").loc[CORRUPT_NAME, "reason"].startswith("unreadable audio")

    index = json.loads((project / "data/mels/index.json").read_text())
    windows = (train["duration"] * 48000 // (64 * 480)).clip(lower=1)  # whole windows per clip, at least one
    assert index["long_clips"] == "windows" and index["n_samples"] >= windows.sum() > len(train)
    fad = json.loads((project / "metrics/fad.json").read_text())
    assert fad["n_prompts"] == len(dev) and fad["embedding"] == "logmel_stats"
    for seed in overlay["generate"]["seeds"]:
        assert sorted(p.stem for p in (project / f"outputs/dev/seed{seed}").glob("*.wav")) == sorted(dev["key"])
    assert (project / "outputs/report/metrics.html").is_file()
    report = json.loads((project / "data/raw/report.json").read_text())
    assert report["readable"] == len(manifest) and report["rejected"] == 3
    summary = run(["scenesynth", "summary", "--overlay", OVERLAY], project).stdout
    assert f"data            : {len(manifest)} clips" in summary and "3 rejected" in summary
    no_shell_ran(tmp_path, project)

    # The folder is outside the DAG: unchanged, nothing reruns; a new captioned clip reruns acquire.
    assert planned_rules(project, config) == set()
    write_clip(audio / "late" / "kettle.wav", 0.9, 22050, 1, "WAV", 1500, seed=7)
    with open(captions, "a", newline="") as handle:
        csv.writer(handle).writerow(["late/kettle.wav", "a kettle whistles", "", "", "", ""])
    assert {"acquire", "train", "evaluate"} <= planned_rules(project, config)


@pytest.mark.parametrize("layout", ["audiocaps", "jsonl"])
def test_audiocaps_csv_and_json_lines_reach_the_text_cache_and_the_shards(tmp_path, layout):
    if layout == "audiocaps":
        audio, captions, _ = build_audiocaps_layout(tmp_path)
    else:
        audio, captions = build_audio(tmp_path), write_jsonl(tmp_path)
    overlay = tmp_path / "overlay.yaml"
    tiny = yaml.safe_load((REPO / "config/tiny.yaml").read_text())
    overlay.write_text(yaml.safe_dump(deep_merge(tiny, custom_overlay(audio, captions))))
    params = load_params(REPO / "params.yaml", overlay)
    raw = acquire(params, tmp_path / "raw")
    _, rejects = resample_manifest(params, raw, tmp_path / "audio48k", workers=1)
    index = build_mel_shards(params, tmp_path / "audio48k/manifest.parquet", tmp_path / "mels", workers=1)
    build_manifest_text_cache(params, raw, tmp_path / "text")

    manifest = read_manifest(raw)
    train = manifest[manifest["split"] == "train"]
    assert rejects == [] and index["n_samples"] == len(train)  # acquire already took out every bad file
    assert set(TextCache(tmp_path / "text").captions) == {c for clip in train["captions"] for c in clip}
    stored = {s["key"]: s["meta"]["captions"] for s in iter_shard_samples(shard_paths(tmp_path / "mels"))}
    assert stored == dict(zip(train["key"], train["captions"]))  # one mel per clip, all its captions
    reasons = pd.read_csv(tmp_path / "raw/rejects.csv")["reason"]
    expected = {"missing file"} if layout == "audiocaps" else {"missing file", "unreadable audio", "too short"}
    assert {reason.split(":")[0] for reason in reasons} == expected
    no_shell_ran(tmp_path)

