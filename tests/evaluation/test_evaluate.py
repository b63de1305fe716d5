import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import soxr

from conftest import with_overrides
from scenesynth.data.manifest import read_manifest
from scenesynth.pretrained.models import MissingPretrained
from scenesynth.evaluation.evaluate import evaluate


def references_as_generated(tiny_data, params, folder):
    """Copy the dev references into the generated layout (seed folders, 32 kHz, 16-bit)."""
    dev = read_manifest(tiny_data["raw"]).query("split == 'dev'")
    rate = params["generate"]["sample_rate"]
    for seed in params["generate"]["seeds"]:
        (folder / f"seed{seed}").mkdir(parents=True)
        for key, path in zip(dev["key"], dev["path"]):
            wave, source_rate = sf.read(path, dtype="float32")
            sf.write(folder / f"seed{seed}" / f"{key}.wav", soxr.resample(wave, source_rate, rate), rate,
                     subtype="PCM_16")


def test_fad_of_references_against_themselves_is_near_zero(tmp_path, tiny_model, tiny_data):
    params = tiny_model["params"]
    references_as_generated(tiny_data, params, tmp_path / "gen")
    result = evaluate(params, tmp_path / "gen", tiny_data["raw"], tmp_path / "metrics", tiny_model["run"])
    fad = json.loads((tmp_path / "metrics" / "fad.json").read_text())
    assert abs(fad["fad_mean"]) < 1e-6 and result["fad"]["fad_mean"] == fad["fad_mean"]
    assert fad["stand_in"] is True and fad["comparable_to_paper"] is False
    assert (fad["baseline_fad"], fad["paper_fad"]) == (61.276, 42.075)
    assert set(fad["fad_per_seed"]) == {str(s) for s in params["generate"]["seeds"]}
    cond = json.loads((tmp_path / "metrics" / "conditioning.json").read_text())
    assert cond["generated"]["fg_accuracy"] == cond["real_dev"]["fg_accuracy"]


def test_fad_against_a_custom_folder_is_never_called_comparable(tmp_path, tiny_model, tiny_data, monkeypatch):
    """Even with the paper's embedding, a FAD against the user's own clips is not the paper's FAD."""
    from scenesynth.evaluation import evaluate as stage

    logmel = stage.get_embedding("logmel_stats")
    monkeypatch.setattr(logmel, "name", stage.PAPER_EMBEDDING)  # stands in for PANNs: only its name is read
    monkeypatch.setattr(stage, "get_embedding", lambda name, **_: logmel)
    references_as_generated(tiny_data, tiny_model["params"], tmp_path / "gen")
    for source, comparable in (("custom", False), ("audiocaps_wavcaps", True)):
        params = with_overrides(tiny_model["params"], data={"source": source})
        fad = evaluate(params, tmp_path / "gen", tiny_data["raw"], tmp_path / source, tiny_model["run"])["fad"]
        assert fad["comparable_to_paper"] is comparable, source


def test_generated_clips_score_worse_than_references(tmp_path, tiny_model, tiny_data):
    """Noise in place of the generated clips gives a larger FAD than the references do."""
    params = tiny_model["params"]
    references_as_generated(tiny_data, params, tmp_path / "gen")
    rng = np.random.default_rng(0)
    for path in (tmp_path / "gen").rglob("*.wav"):
        sf.write(path, 0.1 * rng.standard_normal(sf.info(path).frames), params["generate"]["sample_rate"],
                 subtype="PCM_16")
    result = evaluate(params, tmp_path / "gen", tiny_data["raw"], tmp_path / "metrics", tiny_model["run"])
    assert result["fad"]["fad_mean"] > 1.0


def test_missing_clip_and_unavailable_embedding_fail_clearly(tmp_path, tiny_model, tiny_data):
    params = tiny_model["params"]
    references_as_generated(tiny_data, params, tmp_path / "gen")
    victim = next((tmp_path / "gen" / "seed0").glob("*.wav"))
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=victim.name):
        evaluate(params, tmp_path / "gen", tiny_data["raw"], tmp_path / "m", tiny_model["run"])
    shutil.rmtree(tmp_path / "gen")
    references_as_generated(tiny_data, params, tmp_path / "gen")
    panns = with_overrides(params, evaluate={"fad_embedding": "panns_wavegram_logmel"})
    with pytest.raises(MissingPretrained, match="3987831"):
        evaluate(panns, tmp_path / "gen", tiny_data["raw"], tmp_path / "m", tiny_model["run"],
                 pretrained=tmp_path / "no_pretrained")


def test_unreadable_reference_or_training_clips_are_skipped_and_reported(tmp_path, tiny_model, tiny_data):
    params = tiny_model["params"]
    raw = tmp_path / "raw"
    shutil.copytree(tiny_data["raw"].parent, raw)
    table = read_manifest(raw / "manifest.parquet")
    dev_key = sorted(table.query("split == 'dev'")["key"])[0]
    train_key = sorted(table.query("split == 'train'")["key"])[0]
    (raw / "audio" / f"{dev_key}.wav").write_bytes(b"")
    (raw / "audio" / f"{train_key}.wav").write_bytes(b"junk")
    references_as_generated(tiny_data, params, tmp_path / "gen")
    result = evaluate(params, tmp_path / "gen", raw / "manifest.parquet", tmp_path / "m", tiny_model["run"])
    assert [s["key"] for s in result["fad"]["skipped_references"]] == [dev_key]
    assert result["fad"]["n_prompts"] == int((table["split"] == "dev").sum()) - 1
    assert [s["key"] for s in result["conditioning"]["skipped_training_clips"]] == [train_key]
