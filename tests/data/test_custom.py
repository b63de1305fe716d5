"""`data.source: custom`: a user's folder of real-format audio and a caption file -> the manifest,
rejects and data report, with safe keys, every caption, and a dev split that never leaks."""

import json
import re

import pandas as pd
import pytest
import yaml

from conftest import REPO
from custom_folder import (CLIPS, CORRUPT_NAME, DUPLICATE_NAME, MISSING_NAME, SHELL_NAME, SPACES_NAME,
                           TOO_SHORT_NAME, UNCAPTIONED_NAME, build_audio, build_audiocaps_layout, captions_of,
                           custom_overlay, write_clip, write_clotho_csv, write_jsonl)
from scenesynth.config import ConfigError, load_params
from scenesynth.data.acquire import acquire
from scenesynth.data.custom import CustomSourceError, choose_dev, clip_key, inventory
from scenesynth.data.manifest import KEY_PATTERN, read_manifest


def params_for(tmp_path, audio, captions, **custom) -> dict:
    overlay = tmp_path / "custom.yaml"
    overlay.write_text(yaml.safe_dump(custom_overlay(audio, captions, **custom)))
    return load_params(REPO / "params.yaml", overlay)


@pytest.fixture
def folder(tmp_path):
    return build_audio(tmp_path)


def test_a_clotho_folder_becomes_a_manifest_with_every_caption_and_every_loss_recorded(tmp_path, folder):
    params = params_for(tmp_path, folder, write_clotho_csv(tmp_path))
    manifest = read_manifest(acquire(params, tmp_path / "raw"))
    usable = [*CLIPS, DUPLICATE_NAME]
    assert sorted(manifest["file"]) == sorted(usable)
    assert all(KEY_PATTERN.fullmatch(key) for key in manifest["key"])
    for _, clip in manifest.iterrows():
        expected = captions_of(clip["file"])
        assert clip["captions"] == expected and clip["caption"] == expected[0]
        assert clip["path"] == str(folder / clip["file"])
    by_file = manifest.set_index("file")
    assert by_file.loc["city/traffic stereo.flac", ["sample_rate", "channels", "format"]].tolist() == [44100, 2, "FLAC"]
    assert by_file.loc["rain.ogg", ["sample_rate", "format"]].tolist() == [16000, "OGG"]
    assert by_file.loc[SPACES_NAME, "duration"] == pytest.approx(1.2)

    rejects = pd.read_csv(tmp_path / "raw/rejects.csv")
    reasons = dict(zip(rejects["path"], rejects["reason"]))
    assert set(reasons) == {CORRUPT_NAME, TOO_SHORT_NAME, MISSING_NAME}
    assert reasons[CORRUPT_NAME].startswith("unreadable audio")
    assert reasons[TOO_SHORT_NAME].startswith("too short: 0.0006 s < data.min_duration 0.5 s")
    assert reasons[MISSING_NAME].startswith("missing file")

    report = json.loads((tmp_path / "raw/report.json").read_text())
    assert (report["clips_found"], report["readable"], report["rejected"]) == (len(usable) + 3, len(usable), 3)
    assert report["rejected_by_reason"] == {"missing file": 1, "too short": 1, "unreadable audio": 1}
    assert report["uncaptioned_files"] == 1 and report["uncaptioned_examples"] == [UNCAPTIONED_NAME]
    assert report["duplicates"] == {"groups": 1, "clips": 2, "examples": [[DUPLICATE_NAME, "rain.ogg"]]}
    seconds = sum(spec[0] for spec in CLIPS.values()) + CLIPS["rain.ogg"][0]
    assert report["hours"] == pytest.approx(seconds / 3600, abs=1e-4)
    train = manifest[manifest["split"] == "train"]
    assert report["captions"]["total"] == sum(len(c) for c in train["captions"])
    # which clips are dev depends on content hashes, and libsndfile gives each OGG file a random stream serial
    assert report["captions"]["per_clip"]["max"] == max(len(c) for c in train["captions"])
    assert report["caption_format"] == "clotho"
    assert report["sample_rates"] == {"16000": 4, "44100": 3, "48000": 4} and report["channels"] == {"1": 8, "2": 3}


def test_the_dev_split_is_drawn_with_the_seed_and_keeps_copies_together(tmp_path, folder):
    captions = write_clotho_csv(tmp_path)
    splits = {}
    for seed in range(6):
        params = params_for(tmp_path, folder, captions, dev_fraction=0.3)
        params["seed"] = seed
        table = read_manifest(acquire(params, tmp_path / f"raw{seed}")).set_index("file")
        assert (table["split"] == "dev").sum() >= 3  # 0.3 of 11, groups taken whole
        assert table.loc["rain.ogg", "split"] == table.loc[DUPLICATE_NAME, "split"]
        splits[seed] = tuple(table["split"])
    assert len(set(splits.values())) > 1
    again = params_for(tmp_path, folder, captions, dev_fraction=0.3)
    again["seed"] = 5
    assert tuple(read_manifest(acquire(again, tmp_path / "again")).set_index("file")["split"]) == splits[5]
    capped = params_for(tmp_path, folder, captions, dev_fraction=0.9, dev_max=2)
    assert (read_manifest(acquire(capped, tmp_path / "capped"))["split"] == "dev").sum() == 2


def test_the_dev_draw_takes_whole_content_groups_within_the_cap():
    pairs = [(f"k{i}", f"h{i // 2}") for i in range(10)]  # five pairs of identical files, and one single file
    clips = pd.DataFrame(pairs + [("single", "h-single")], columns=["key", "sha256"])
    cfg = {"split_column": None, "dev_fraction": 0.3, "dev_max": 3}
    for seed in range(20):
        split = dict(zip(clips["key"], choose_dev(clips, cfg, seed)))
        assert list(split.values()).count("dev") == 3  # a pair and the single file: never two pairs (4 > 3)
        assert all(split[f"k{i}"] == split[f"k{i + 1}"] for i in range(0, 10, 2))


def test_a_split_column_decides_the_dev_split_and_a_bad_value_names_the_line(tmp_path, folder):
    names = sorted(CLIPS)
    table = pd.DataFrame({"filename": names, "text": [f"clip {i}" for i in range(len(names))],
                          "subset": ["dev" if i < 3 else "Train" for i in range(len(names))]})
    table.to_csv(tmp_path / "mine.csv", index=False)
    params = params_for(tmp_path, folder, tmp_path / "mine.csv", split_column="subset")
    manifest = read_manifest(acquire(params, tmp_path / "raw"))
    assert sorted(manifest.loc[manifest["split"] == "dev", "file"]) == names[:3]
    assert json.loads((tmp_path / "raw/report.json").read_text())["caption_format"] == "csv"
    table.loc[4, "subset"] = "evaluation"
    table.to_csv(tmp_path / "mine.csv", index=False)
    with pytest.raises(ValueError, match=r"mine\.csv: line 6: split 'evaluation' is neither 'train' nor 'dev'"):
        acquire(params, tmp_path / "raw")


def test_paths_outside_the_folder_are_rejected_and_never_read(tmp_path, folder):
    (tmp_path / "secret.wav").write_bytes((folder / "tone_a.wav").read_bytes())
    lines = [{"path": name, "caption": "fine"} for name in sorted(CLIPS)]
    lines += [{"path": "../secret.wav", "caption": "escape"}, {"path": str(tmp_path / "secret.wav"), "caption": "abs"},
              {"path": "birds/../tone_b.flac", "caption": "another name for tone b"},
              {"path": "tone_d", "caption": "a stem without its suffix"}]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    manifest = read_manifest(acquire(params_for(tmp_path, folder, tmp_path / "c.jsonl"), tmp_path / "raw"))
    rejects = pd.read_csv(tmp_path / "raw/rejects.csv")
    assert sorted(rejects["path"]) == sorted(["../secret.wav", str(tmp_path / "secret.wav")])
    assert rejects["reason"].str.startswith("outside data.custom.audio_dir").all()
    assert str(tmp_path / "secret.wav") not in set(manifest["path"])
    by_file = manifest.set_index("file")
    assert by_file.loc["tone_b.flac", "captions"] == ["fine", "another name for tone b"]
    assert by_file.loc["tone_d.wav", "captions"] == ["fine", "a stem without its suffix"]


def test_keys_are_safe_stable_and_distinct_for_names_that_slug_alike():
    names = [SHELL_NAME, "a b.wav", "a_b.wav", "a-b.wav", "été/café.flac", "日本語.wav", ".wav", "x" * 300 + ".wav"]
    keys = [clip_key(name) for name in names]
    assert all(KEY_PATTERN.fullmatch(key) for key in keys) and len(set(keys)) == len(keys)
    assert keys == [clip_key(name) for name in names]
    assert keys[0].startswith("dog_touch_pwned_bark") and keys[4].startswith("ete_cafe_")
    assert re.fullmatch(r"clip_[0-9a-f]{10}", keys[5])


def test_formats_are_detected_and_give_the_same_clips(tmp_path, folder):
    clotho = read_manifest(acquire(params_for(tmp_path, folder, write_clotho_csv(tmp_path)), tmp_path / "a"))
    jsonl = read_manifest(acquire(params_for(tmp_path, folder, write_jsonl(tmp_path)), tmp_path / "b"))
    columns = ["key", "file", "captions", "split", "duration"]
    pd.testing.assert_frame_equal(clotho[columns], jsonl[columns])
    audio, csv_path, expected = build_audiocaps_layout(tmp_path)
    audiocaps = read_manifest(acquire(params_for(tmp_path, audio, csv_path), tmp_path / "c"))
    assert {f.split(".")[0].lstrip("Y"): c for f, c in zip(audiocaps["file"], audiocaps["captions"])} == expected
    rejects = pd.read_csv(tmp_path / "c/rejects.csv")
    assert rejects["reason"].tolist() == [f"missing file: no 'yt010-_abcd' in {audio}"]
    assert json.loads((tmp_path / "c/report.json").read_text())["caption_format"] == "audiocaps"


def test_unusable_settings_and_files_stop_with_the_name_of_what_to_fix(tmp_path, folder):
    with pytest.raises(ConfigError, match="data.custom.dev_fraction"):
        params_for(tmp_path, folder, tmp_path / "x.csv", dev_fraction=0)
    params = params_for(tmp_path, folder, tmp_path / "absent.csv")
    with pytest.raises(CustomSourceError, match=r"absent\.csv: data\.custom\.captions is not a file"):
        acquire(params, tmp_path / "raw")
    params["data"]["custom"]["audio_dir"] = None
    with pytest.raises(CustomSourceError, match="data.custom.audio_dir is not set"):
        acquire(params, tmp_path / "raw")
    (tmp_path / "odd.csv").write_text("name,words\na.wav,hello\n")
    with pytest.raises(ValueError, match=r"odd\.csv: cannot tell the file column.*data\.custom\.file_column"):
        acquire(params_for(tmp_path, folder, tmp_path / "odd.csv"), tmp_path / "raw")
    (tmp_path / "bad.jsonl").write_text('{"path": "rain.ogg", "caption": "ok"}\n{"path": "x.wav", caption}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl: line 2: not JSON"):
        acquire(params_for(tmp_path, folder, tmp_path / "bad.jsonl"), tmp_path / "raw")
    (tmp_path / "comma.csv").write_text('file,caption\nrain.ogg,"rain, heavy"\ntone_a.wav,a tone, low\n')
    with pytest.raises(ValueError, match=r"comma\.csv: line 3: 3 fields but the header has 2"):
        acquire(params_for(tmp_path, folder, tmp_path / "comma.csv"), tmp_path / "raw")
    (tmp_path / "two.csv").write_text("file,caption\nrain.ogg,rain\ntone_a.wav,a tone\n")
    with pytest.raises(ValueError, match=r"two\.csv: 2 usable clips, 2 of them dev: .* at least 2 dev clips and "
                                         r"training at least 1"):
        acquire(params_for(tmp_path, folder, tmp_path / "two.csv"), tmp_path / "raw")
    assert not (tmp_path / "raw/manifest.parquet").exists()


def test_the_inventory_changes_with_the_captions_and_the_folder(tmp_path, folder):
    captions = write_clotho_csv(tmp_path)
    cfg = params_for(tmp_path, folder, captions)["data"]["custom"]
    first = inventory(cfg)
    assert inventory(cfg) == first
    write_clip(folder / "new" / "late addition.wav", 0.7, 16000, 1, "WAV", 300, seed=5)
    second = inventory(cfg)
    assert second != first
    captions.write_text(captions.read_text().replace("Rain falls", "Rain drips"))
    assert inventory(cfg) not in (first, second)
    assert inventory({**cfg, "audio_dir": None}).startswith("unusable: ")


def test_the_readme_walk_through_overlay_is_valid_and_reads_a_folder(tmp_path, folder):
    """The two heredocs of README "Train on your own sounds", as a shell would write them."""
    section = (REPO / "README.md").read_text().split("## Train on your own sounds", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"cat >>? config/mine\.yaml <<'?EOF'?\n(.*?)\nEOF\n", section, flags=re.S)
    assert len(blocks) == 2
    home = tmp_path / "home"
    (home / "sounds").mkdir(parents=True)
    names = ["rain.ogg", "tone_a.wav", "tone_b.flac", "tone_c.ogg", SPACES_NAME]
    for name in names:
        (home / "sounds" / name).parent.mkdir(parents=True, exist_ok=True)
        (home / "sounds" / name).write_bytes((folder / name).read_bytes())
    pd.DataFrame({"file_name": names, "caption_1": [f"a caption of {n}" for n in names],
                  "caption_2": "another"}).to_csv(home / "sounds/captions.csv", index=False)
    overlay = tmp_path / "mine.yaml"
    overlay.write_text(blocks[0].replace("$HOME", str(home)) + "\n" + blocks[1] + "\n")
    params = load_params(REPO / "params.yaml", overlay)
    assert params["text"]["encoder"] == "hash" and params["generate"]["vocoder"] == "griffin_lim"
    manifest = read_manifest(acquire(params, tmp_path / "raw"))
    assert len(manifest) == 5 and set(manifest["split"]) == {"train", "dev"}
