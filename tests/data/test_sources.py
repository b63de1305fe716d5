"""The real acquisition code (AudioCaps + WavCaps -> one manifest) against a local copy of the servers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO
from remote_sources import EXPECTED, HF, build_remote, install_fake_yt_dlp, source_overlay
from scenesynth.config import load_params
from scenesynth.fetch.download import DownloadError
from scenesynth.data.manifest import REQUIRED_COLUMNS, read_manifest
from scenesynth.data.acquire import merge_training_sources, read_excluded_ids
from scenesynth.data.audiocaps import fetch_audiocaps_clips, fetch_audiocaps_csvs, find_local_clips
from scenesynth.data.wavcaps import fetch_wavcaps


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = deep_merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


@pytest.fixture
def remote(tmp_path, static_server):
    root = tmp_path / "remote"
    root.mkdir()
    url = static_server(root)
    build_remote(root, url)
    return {"root": root, "url": url, "yt_dlp": install_fake_yt_dlp(tmp_path / "bin")}


def params_for(tmp_path: Path, remote: dict, **data: dict) -> dict:
    """params.yaml + an overlay pointing at the local server, validated like any overlay."""
    overlay = source_overlay(remote["url"], remote["yt_dlp"])
    overlay["data"] = deep_merge(overlay["data"], data)
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return load_params(REPO / "params.yaml", path)


def test_the_default_params_fetch_from_the_public_sources():
    data = load_params(REPO / "params.yaml")["data"]
    assert data["source"] == "audiocaps_wavcaps"
    assert data["audiocaps"]["csv_url"].format(split="train") == \
        "https://raw.githubusercontent.com/cdjkim/audiocaps/master/dataset/train.csv"
    assert (data["wavcaps"]["endpoint"], data["wavcaps"]["repo"]) == ("https://huggingface.co", "cvssp/WavCaps")


def test_full_acquisition_builds_one_manifest_and_reports_every_loss(tmp_path, remote):
    params = params_for(tmp_path, remote)
    csv = fetch_audiocaps_csvs(params, tmp_path / "ac/csv")
    assert sorted(csv) == ["test", "train", "val"]
    recorded = json.loads((tmp_path / "ac/csv/checksums.json").read_text())
    assert set(recorded) == {"train.csv", "val.csv", "test.csv"} and all(len(r["sha256"]) == 64 for r in recorded.values())

    coverage = fetch_audiocaps_clips(params, tmp_path / "ac/csv", tmp_path / "ac")
    assert coverage["splits"]["train"]["listed"] == 4 and coverage["splits"]["train"]["downloaded"] == 3
    failed = pd.read_csv(tmp_path / "ac/audio/failed.csv")
    assert dict(zip(failed["youtube_id"], failed["reason"])) == EXPECTED["audiocaps_failed"]
    ac = read_manifest(tmp_path / "ac/manifest.parquet")
    assert set(ac["key"]) == EXPECTED["audiocaps_keys"]
    assert set(ac["sample_rate"]) == {44100} and ac["duration"].round(2).eq(10.0).all()
    good = ac.set_index("key").loc["ac_acGood00001"]
    assert (good["caption"], good["captions"]) == ("A dog barks twice", ["A dog barks twice",
                                                                         "A dog barks at the mail carrier"])

    report = fetch_wavcaps(params, tmp_path / "ac/csv", tmp_path / "wc")
    assert report["listed"] == 7 and report["blacklisted"] == 2  # the blacklist entry + the AudioCaps test clip
    assert report["archive_rejected"] == 1 and report["missing_audio"] == 2  # corrupt member + never in the zip
    rejects = pd.read_csv(tmp_path / "wc/rejects.csv")
    assert rejects["reason"].str.contains("FLAC").any()
    wc = read_manifest(tmp_path / "wc/manifest.parquet")
    assert set(wc["key"]) == EXPECTED["wavcaps_keys"] and set(wc["sample_rate"]) == {32000}
    extracted = {p.name for p in (tmp_path / "wc/audio").iterdir()}
    assert "YwcGood00001.flac" in extracted and not any("/" in n or n.startswith("mnt") for n in extracted)

    merged_path = merge_training_sources(params, tmp_path / "ac/manifest.parquet", tmp_path / "wc/manifest.parquet",
                                         tmp_path / "raw")
    merged = read_manifest(merged_path)
    assert set(merged["key"]) == EXPECTED["merged_keys"]  # the dev prompts are the dev-set stage's, not training's
    assert set(REQUIRED_COLUMNS) <= set(merged.columns) and set(merged["split"]) == {"train"}
    assert merged.set_index("key").loc["ac_bothSources", "caption"] == "An engine idles"
    assert all(Path(p).is_file() for p in merged["path"])
    source = json.loads((tmp_path / "raw/source.json").read_text())
    assert source["counts"]["duplicates_dropped"] == 1 and "AudioCaps wins" in source["duplicate_rule"]
    report = json.loads((tmp_path / "raw/report.json").read_text())
    assert report["readable"] == len(merged) and report["clips_by_split"] == {"train": 5}  # no dev rows in training data
    assert report["rejected_by_reason"] == {"unreadable FLAC": 1}  # the corrupt zip member, from wavcaps/rejects.csv
    assert report["captions"]["total"] == 6  # acGood00001 has two
    assert report["duplicates"].startswith("not computed")


def test_a_rerun_downloads_nothing_again(tmp_path, remote):
    params = params_for(tmp_path, remote)
    fetch_audiocaps_csvs(params, tmp_path / "ac/csv")
    fetch_wavcaps(params, tmp_path / "ac/csv", tmp_path / "wc")
    stamps = {p: p.stat().st_mtime_ns for p in [*(tmp_path / "wc/archive").glob("AudioSet_SL.*"),
                                                *(tmp_path / "wc/audio").iterdir()]}
    assert len(stamps) >= 3 + 5
    # the served parts and the Hub API vanish: a rerun relies on the verified local files only
    for part in (remote["root"] / HF / "Zip_files/AudioSet_SL").iterdir():
        part.unlink()
    (remote["root"] / "api/datasets/cvssp/WavCaps/tree/main/Zip_files/AudioSet_SL").unlink()
    report = fetch_wavcaps(params, tmp_path / "ac/csv", tmp_path / "wc")
    assert report["clips"] == len(EXPECTED["wavcaps_keys"])
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in stamps.items())


def test_a_changed_upstream_file_is_refused(tmp_path, remote):
    params = params_for(tmp_path, remote)
    fetch_audiocaps_csvs(params, tmp_path / "csv")
    (tmp_path / "csv/val.csv").write_text("tampered locally")
    fetch_audiocaps_csvs(params, tmp_path / "csv")  # re-fetched and matches the recorded hash again
    assert "acValid0001" in (tmp_path / "csv/val.csv").read_text()
    served = remote["root"] / "cdjkim/audiocaps/master/dataset/val.csv"
    served.write_text(served.read_text() + '999,newVideo001,0,"added upstream"\n')
    (tmp_path / "csv/val.csv").unlink()
    with pytest.raises(DownloadError, match=r"changed upstream.*remove its entry from checksums\.json"):
        fetch_audiocaps_csvs(params, tmp_path / "csv")


def test_a_part_that_disagrees_with_the_hub_listing_is_rejected(tmp_path, remote):
    part = remote["root"] / HF / "Zip_files/AudioSet_SL/AudioSet_SL.z01"
    part.write_bytes(part.read_bytes()[:-10] + bytes(10))  # same size, other bytes
    params = params_for(tmp_path, remote)
    fetch_audiocaps_csvs(params, tmp_path / "ac/csv")
    with pytest.raises(DownloadError, match=r"AudioSet_SL\.z01.*sha256"):
        fetch_wavcaps(params, tmp_path / "ac/csv", tmp_path / "wc")
    assert not (tmp_path / "wc/audio").exists()


def test_clips_the_user_already_holds_replace_youtube(tmp_path, remote):
    local = tmp_path / "my_audiocaps"
    (local / "sub").mkdir(parents=True)
    import numpy as np
    import soundfile as sf

    sf.write(local / "YacGood00001.wav", np.zeros(16000, np.float32), 16000)     # Y<id>
    sf.write(local / "sub" / "104.flac", np.zeros(16000, np.float32), 16000)    # <audiocap_id>
    (local / "bothSources.wav").write_bytes(b"RIFF broken")                     # unreadable
    params = params_for(tmp_path, remote, audiocaps={"audio_dir": str(local), "yt_dlp": "/nonexistent/yt-dlp"})
    fetch_audiocaps_csvs(params, tmp_path / "csv")
    report = fetch_audiocaps_clips(params, tmp_path / "csv", tmp_path / "ac")
    assert report["splits"]["train"]["downloaded"] == 3 and report["unreadable"] == 1
    assert set(read_manifest(tmp_path / "ac/manifest.parquet")["key"]) == {"ac_acGood00001", "ac_acGood00002"}
    assert "unreadable" in (tmp_path / "ac/rejects.csv").read_text()


def test_local_clip_names(tmp_path):
    (tmp_path / "abcdefghijk_30.flac").write_bytes(b"")
    table = pd.DataFrame({"youtube_id": ["abcdefghijk", "zzzzzzzzzzz"], "audiocap_id": [1, 2], "start_time": [30, 0]})
    assert set(find_local_clips(tmp_path, table)) == {"abcdefghijk"}
    with pytest.raises(FileNotFoundError, match="audio_dir"):
        find_local_clips(tmp_path / "nope", table)


def test_exclusion_list(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("# DCASE dev sources\nYabcdefghijk.wav\nzzzzzzzzzzz, 30\n\n")
    assert read_excluded_ids(path) == {"abcdefghijk", "zzzzzzzzzzz"}
    path.write_text("not an id at all\n")
    with pytest.raises(ValueError, match=r"ids\.txt: line 1"):
        read_excluded_ids(path)


def test_bad_source_settings_are_rejected_by_the_schema(tmp_path):
    from scenesynth.config import ConfigError

    for bad in ({"audiocaps": {"csv_url": "https://x/train.csv"}}, {"audiocaps": {"splits": ["test"]}},
                {"wavcaps": {"bogus": 1}}, {"download": {"retries": -1}}):
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump({"data": bad}))
        with pytest.raises(ConfigError):
            load_params(REPO / "params.yaml", path)
