"""The data report every acquire run writes (data/raw/report.json) and its line in `scenesynth summary`."""

import json

import pandas as pd

from scenesynth.data.manifest import read_manifest
from scenesynth.data.report import data_report, duplicate_groups, headline, reason_kind


def test_the_demo_report_counts_its_clips_and_captions(tiny_data, tiny_params):
    report = json.loads((tiny_data["raw"].parent / "report.json").read_text())
    manifest = read_manifest(tiny_data["raw"])
    demo = tiny_params["data"]["demo"]
    assert report["source"] == "demo" and report["readable"] == len(manifest) and report["rejected"] == 0
    assert report["clips_by_split"] == {"dev": demo["n_dev"], "train": demo["n_train"]}
    assert abs(report["hours"] - len(manifest) * demo["duration"] / 3600) < 1e-4
    assert report["captions"]["total"] == demo["n_train"] and report["duplicates"]["groups"] == 0


def test_numbers_reasons_duplicates_and_the_summary_line():
    manifest = pd.DataFrame({"key": ["a", "b", "c", "d"], "split": ["train", "train", "train", "dev"],
                             "duration": [3600.0, 1800.0, 1800.0, 360.0],
                             "captions": [["a dog barks", "a dog"], ["rain"], ["a dog barks"], ["wind blows hard"]]})
    rejects = [{"key": "x", "path": "x.wav", "reason": "unreadable audio: bad header"},
               {"key": "y", "path": "y.wav", "reason": "too short: 0.1 s < data.min_duration 0.5 s"},
               {"key": "z", "path": "z.wav", "reason": "unreadable audio: truncated"}]
    duplicates = duplicate_groups(["a", "b", "c", "d"], ["h1", "h2", "h1", "h1"])
    assert duplicates == {"groups": 1, "clips": 3, "examples": [["a", "c", "d"]]}
    report = data_report("custom", manifest, rejects, duplicates, files_in_folder=9)
    assert (report["clips_found"], report["readable"], report["rejected"]) == (7, 4, 3)
    assert report["rejected_by_reason"] == {"too short": 1, "unreadable audio": 2}
    assert report["hours_by_split"] == {"dev": 0.1, "train": 2.0} and report["hours"] == 2.1
    captions = report["captions"]
    assert (captions["total"], captions["distinct"]) == (4, 3)
    assert captions["per_clip"] == {"min": 1.0, "mean": 1.333, "median": 1.0, "max": 2.0}
    assert captions["words"] == {"min": 1.0, "mean": 2.25, "median": 2.5, "max": 3.0}  # 3, 2, 1, 3 words
    assert captions["most_repeated"] == [{"caption": "a dog barks", "clips": 2}] and report["files_in_folder"] == 9
    assert headline(report) == ("4 clips (1 dev, 3 train; 2.10 h), 4 training captions, 3 rejected "
                                "(too short 1, unreadable audio 2), 1 duplicate groups")
    assert reason_kind("missing file: no 'x' in /a") == "missing file"
