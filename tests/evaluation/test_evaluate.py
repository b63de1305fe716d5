"""The evaluate stage on the tiny demo: FAD (organisers' steps), CLAP record, per-prompt CSV, cache, errors."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr

from conftest import with_overrides
from scenesynth.data.dev_set import build_dev_set
from scenesynth.data.manifest import read_manifest
from scenesynth.evaluation.clip_prep import ClipLengthError
from scenesynth.evaluation.evaluate import evaluate
from scenesynth.pretrained.models import MissingPretrained


@pytest.fixture
def dev(tmp_path, tiny_data, tiny_params):
    """The tiny demo's dev set (data/dev) and params that accept clips of any length."""
    build_dev_set(tiny_params, tmp_path / "dev", raw_manifest=tiny_data["raw"])
    return tmp_path / "dev/manifest.parquet"


def any_length(params: dict) -> dict:
    return with_overrides(params, evaluate={"clip_seconds": None})


def references_as_generated(manifest, params, folder, seconds=None):
    """Copy the dev references into the generated layout (seed folders, 32 kHz, 16-bit), cropped to ``seconds``."""
    dev = read_manifest(manifest)
    rate = params["generate"]["sample_rate"]
    for seed in params["generate"]["seeds"]:
        (folder / f"seed{seed}").mkdir(parents=True)
        for key, path in zip(dev["key"], dev["path"]):
            wave, source_rate = sf.read(path, dtype="float32")
            wave = soxr.resample(wave, source_rate, rate)
            sf.write(folder / f"seed{seed}" / f"{key}.wav", wave[: int(seconds * rate)] if seconds else wave, rate,
                     subtype="PCM_16")


def test_references_against_themselves_and_a_rerun_that_embeds_nothing(tmp_path, tiny_model, tiny_data, dev,
                                                                          capsys):
    params = any_length(tiny_model["params"])
    references_as_generated(dev, params, tmp_path / "gen")
    result = evaluate(params, tmp_path / "gen", dev, tmp_path / "metrics", tiny_model["run"],
                      train_manifest=tiny_data["raw"], cache=tmp_path / "cache", model=tiny_model["run"] / "model.pt")
    fad = json.loads((tmp_path / "metrics/fad.json").read_text())
    assert abs(fad["fad_mean"]) < 1e-6 and result["fad"]["fad_mean"] == fad["fad_mean"]
    assert fad["stand_in"] is True and fad["comparable_to_paper"] is False
    assert (fad["baseline_fad"], fad["paper_fad"]) == (61.276, 42.075)
    assert set(fad["fad_per_seed"]) == {str(s) for s in params["generate"]["seeds"]}
    assert fad["reference"]["kind"] == "audio" and fad["scorer"]["pcm16_round_trip"] is True
    n_dev = len(read_manifest(dev))
    assert result["embedded"] == n_dev  # generated clips equal the references byte for byte: one entry each
    clap = json.loads((tmp_path / "metrics/clap_score.json").read_text())
    assert clap["computed"] is False and "no CLAP" in clap["reason"]
    table = pd.read_csv(tmp_path / "metrics/per_prompt.csv", keep_default_na=False)
    assert len(table) == n_dev and sorted(table["rank"]) == list(range(1, n_dev + 1))
    assert np.allclose(table["own_reference_distance"].astype(float), 0.0)
    assert (table["nearest_reference"] == table["prompt_id"]).all()
    assert set(table["predicted_foreground"]) <= set(read_manifest(dev)["foreground"])
    cond = json.loads((tmp_path / "metrics/conditioning.json").read_text())
    assert "fg_predicted" not in cond["generated"] and cond["generated"]["n_z"] == params["evaluate"]["conditioning_z"]
    assert set(cond["ceiling"]) >= {"fg_accuracy", "bg_accuracy"} and cond["diversity"]["ratio"] > 0
    assert np.isfinite(cond["peaks"]["excess"]) and sorted(cond["peaks"]["generated_per_kind"]) == sorted(
        set(read_manifest(dev)["foreground"]))
    assert cond["audio"]["n_training_clips"] == min(params["evaluate"]["conditioning_resynth_clips"], 16)
    assert set(cond["audio"]["ceiling"]) == {"fg_accuracy", "bg_accuracy", "fg_per_kind", "bg_per_kind"}
    kinds = sorted(set(read_manifest(dev)["foreground"]))
    for part in (cond["generated"], cond["audio"]["generated"]):  # per kind, both readings, worst named
        assert sorted(part["fg_per_kind"]) == kinds and part["fg_worst_kind"] in kinds
        assert part["fg_per_kind"][part["fg_worst_kind"]] == min(part["fg_per_kind"].values())
    assert table["z_spread"].astype(float).ge(0).all() and table["z_spread"].astype(float).mean() == pytest.approx(
        cond["diversity"]["ratio"])
    floor = fad["real_floor"]  # sets of as many real training clips as there are prompts: 16 // 6 = 2 draws
    assert (floor["n_clips"], floor["draws"]) == (n_dev, 2) and floor["fd_mean"] > 0
    assert fad["fad_over_floor"] == pytest.approx(fad["fad_mean"] / floor["fd_mean"])
    headline = json.loads((tmp_path / "metrics/headline.json").read_text())
    assert headline["fad_floor"] == floor["fd_mean"] and headline["cond_fg_per_kind"] == cond["generated"]["fg_per_kind"]
    assert headline["cond_fg_worst_kind"] == cond["generated"]["fg_worst_kind"]
    assert headline["cond_peak_excess"] == cond["peaks"]["excess"]
    printed = capsys.readouterr().out.splitlines()
    assert any(line.startswith("conditioning (mel reading, 4 z per prompt): foreground") for line in printed)
    assert any(line.startswith("foreground per kind (mel / audio): ") for line in printed)
    assert printed[0].startswith("FAD (logmel_stats, NOT comparable with the paper): 0.000")
    assert printed[1].startswith(f"FD floor (real training clips vs the same reference, {floor['n_clips']} clips x ")
    assert printed[2] == "CLAP score: not computed (evaluate.clap_score is false: no CLAP checkpoint is used " \
                         "(the demo fetches none))"

    before = {name: (tmp_path / "metrics" / name).read_bytes() for name in ("per_prompt.csv", "clap_score.json",
                                                                           "conditioning.json")}
    again = evaluate(params, tmp_path / "gen", dev, tmp_path / "metrics2", None,
                     train_manifest=tiny_data["raw"], cache=tmp_path / "cache", model=tiny_model["run"] / "model.pt")
    assert again["embedded"] == 0 and again["fad"]["fad_per_seed"] == fad["fad_per_seed"]
    before["fad.json"] = (tmp_path / "metrics/fad.json").read_bytes()
    assert {name: (tmp_path / "metrics2" / name).read_bytes() for name in before} == before  # byte-identical


def test_one_noisy_prompt_ranks_worst_and_a_changed_clip_is_embedded_again(tmp_path, tiny_model, dev):
    params = any_length(tiny_model["params"])
    references_as_generated(dev, params, tmp_path / "gen")
    evaluate(params, tmp_path / "gen", dev, tmp_path / "m", None, cache=tmp_path / "cache")
    victim = sorted((tmp_path / "gen/seed0").glob("*.wav"))[1]
    info = sf.info(victim)
    sf.write(victim, 0.3 * np.random.default_rng(0).standard_normal(info.frames), info.samplerate, subtype="PCM_16")
    result = evaluate(params, tmp_path / "gen", dev, tmp_path / "m", None, cache=tmp_path / "cache")
    assert result["embedded"] == 1 and result["fad"]["fad_mean"] > 0.1
    assert result["per_prompt"].iloc[0]["prompt_id"] == victim.stem
    assert result["fad"]["fad_per_seed"]["0"] > result["fad"]["fad_per_seed"]["1"]


def test_a_flat_folder_of_another_system_s_clips_is_scored_as_one_set(tmp_path, tiny_model, dev):
    params = any_length(tiny_model["params"])
    references_as_generated(dev, params, tmp_path / "gen")
    flat = tmp_path / "other_system"
    shutil.copytree(tmp_path / "gen/seed0", flat)
    sf.write(flat / "not_a_prompt.wav", np.zeros(16000, np.float32), 32000, subtype="PCM_16")
    result = evaluate(params, flat, dev, tmp_path / "m", None, cache=tmp_path / "cache")
    assert list(result["fad"]["fad_per_seed"]) == ["all"] and result["fad"]["n_seeds"] == 1
    assert result["fad"]["generated"]["left_out"] == [{"path": str(flat / "not_a_prompt.wav"),
                                                       "reason": "named after no dev prompt id"}]


def test_everything_not_scored_is_printed_and_recorded_with_its_reason(tmp_path, tiny_model, dev, capsys):
    params = any_length(tiny_model["params"])
    references_as_generated(dev, params, tmp_path / "gen")
    gen = tmp_path / "gen"
    first = sorted((gen / "seed0").glob("*.wav"))[0]
    shutil.copy(first, gen / first.name)                          # a loose clip beside the seed folders
    wave, rate = sf.read(first, dtype="float32")
    sf.write(first.with_suffix(".flac"), wave * 0.1, rate)        # a second file for one prompt id
    (gen / "notes").mkdir()                                       # a folder that is no seed
    result = evaluate(params, gen, dev, tmp_path / "m", None, cache=tmp_path / "cache")
    reasons = {Path(item["path"]).relative_to(gen).as_posix(): item["reason"]
               for item in json.loads((tmp_path / "m/fad.json").read_text())["generated"]["left_out"]}
    assert reasons == {first.name: "a clip beside seed<N>/ folders: only those are scored",
                       f"seed0/{first.stem}.flac": f"another file for prompt id {first.stem} ({first.name} is scored)",
                       "notes": "a folder not named seed<N>/ (not scored)"}
    printed = capsys.readouterr().out
    assert "left out (not scored; all listed in fad.json, generated.left_out): 3 clip(s) or folder(s), 0 file(s)" \
           in printed and f"{first.stem}.flac: another file for prompt id" in printed
    assert result["fad"]["n_seeds"] == len(params["generate"]["seeds"])


def test_two_folders_of_one_seed_are_an_error_not_two_seeds(tmp_path, tiny_model, dev):
    params = any_length(tiny_model["params"])
    references_as_generated(dev, params, tmp_path / "gen")
    shutil.copytree(tmp_path / "gen/seed1", tmp_path / "gen/seed01")
    with pytest.raises(FileNotFoundError, match=r"seed01 and .*seed1: both are seed 1; keep one"):
        evaluate(params, tmp_path / "gen", dev, tmp_path / "m", None, cache=tmp_path / "cache")


def test_missing_or_wrong_length_clips_and_an_unavailable_embedding_fail_clearly(tmp_path, tiny_model, dev):
    params = tiny_model["params"]  # clip_seconds 0.5 (the tiny crop)
    references_as_generated(dev, params, tmp_path / "gen", seconds=params["evaluate"]["clip_seconds"])
    evaluate(params, tmp_path / "gen", dev, tmp_path / "m", None, cache=tmp_path / "cache")
    victim = next((tmp_path / "gen/seed1").glob("*.wav"))
    sf.write(victim, np.zeros(16001, np.float32), 32000, subtype="PCM_16")
    with pytest.raises(ClipLengthError, match=rf"{victim.name}: 16001 samples .* exactly 0.5 s \(16000 samples"):
        evaluate(params, tmp_path / "gen", dev, tmp_path / "m", None, cache=tmp_path / "cache")
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=victim.name):
        evaluate(params, tmp_path / "gen", dev, tmp_path / "m", None, cache=tmp_path / "cache")
    panns = with_overrides(params, evaluate={"fad_embedding": "panns_wavegram_logmel"})
    with pytest.raises(MissingPretrained, match="3987831"):
        evaluate(panns, tmp_path / "gen", dev, tmp_path / "m", None, pretrained=tmp_path / "no_pretrained")


def test_unreadable_reference_or_training_clips_are_skipped_and_reported(tmp_path, tiny_model, tiny_data):
    params = any_length(tiny_model["params"])
    raw = tmp_path / "raw"
    shutil.copytree(tiny_data["raw"].parent, raw)
    build_dev_set(params, tmp_path / "dev", raw_manifest=raw / "manifest.parquet")
    table = read_manifest(raw / "manifest.parquet")
    references_as_generated(tmp_path / "dev/manifest.parquet", params, tmp_path / "gen")
    dev_key = sorted(table.query("split == 'dev'")["key"])[0]
    train_key = sorted(table.query("split == 'train'")["key"])[0]
    (raw / "audio" / f"{dev_key}.wav").write_bytes(b"")
    (raw / "audio" / f"{train_key}.wav").write_bytes(b"junk")
    result = evaluate(params, tmp_path / "gen", tmp_path / "dev/manifest.parquet", tmp_path / "m", None,
                      train_manifest=raw / "manifest.parquet", cache=tmp_path / "cache",
                      model=tiny_model["run"] / "model.pt")
    assert [s["key"] for s in result["fad"]["skipped_references"]] == [dev_key]
    assert result["fad"]["n_prompts"] == int((table["split"] == "dev").sum()) - 1
    assert [s["key"] for s in result["conditioning"]["skipped_training_clips"]] == [train_key]


def test_a_failing_evaluate_sweeps_nothing(tmp_path, monkeypatch, capsys):
    from conftest import REPO, TINY_OVERLAY
    from scenesynth.cli import main

    monkeypatch.chdir(tmp_path)
    stray = tmp_path / "m" / ".fad.json.partial-abc"
    stray.parent.mkdir()
    stray.write_bytes(b"part")
    assert main(["evaluate", "--params", str(REPO / "params.yaml"), "--overlay", str(TINY_OVERLAY),
                 "--generated", "absent", "--out", "m", "--cache", "cache"]) == 1
    assert stray.is_file(), "a failing command swept its --out"
    assert "absent: no folder of generated clips" in capsys.readouterr().err
