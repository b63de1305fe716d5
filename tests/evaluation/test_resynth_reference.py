"""The resynth-reference stage: the audio reading's real clips resynthesised ahead of evaluate, read back
only where they are what evaluate would make itself."""

import logging

import numpy as np
import pytest

from conftest import with_overrides
from scenesynth.data.dev_set import build_dev_set
from scenesynth.data.manifest import read_dev_prompts
from scenesynth.inference.generate import generate_dev_set
from scenesynth.evaluation import conditioning_score
from scenesynth.evaluation.conditioning_score import labelled_clips, resynthesised_reals
from scenesynth.evaluation.evaluate import evaluate
from scenesynth.evaluation.resynth_reference import (FILE, ResynthReferenceError, build_resynth_reference,
                                                     read_reference)


@pytest.fixture(scope="module")
def made(tmp_path_factory, tiny_data, tiny_params):
    """The tiny demo's dev set, its real clips, the stage's file and what evaluate would resynthesise itself."""
    root = tmp_path_factory.mktemp("resynth")
    build_dev_set(tiny_params, root / "dev", raw_manifest=tiny_data["raw"])
    manifest = root / "dev/manifest.parquet"
    record = build_resynth_reference(tiny_params, manifest, tiny_data["raw"], root / "ref")
    real = labelled_clips(tiny_params, tiny_data["raw"], read_dev_prompts(manifest))
    return {"root": root, "manifest": manifest, "record": record, "real": real, "file": root / "ref" / FILE,
            "fresh": resynthesised_reals(tiny_params, real)[2]}


def refuse_to_resynthesise(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("resynthesised although the stage's file holds these clips")

    monkeypatch.setattr(conditioning_score, "resynthesised", refuse)


def test_evaluate_reads_the_stages_clips_bit_for_bit_and_makes_none(made, tiny_params, tiny_data, monkeypatch):
    record, fresh = made["record"], made["fresh"]
    assert record["parts"] == ["train", "dev"] and "skipped" not in record
    assert record["clips"] == {"train": min(tiny_params["evaluate"]["conditioning_resynth_clips"],
                                            len(made["real"].train_mels)), "dev": len(made["real"].dev_mels)}
    again = build_resynth_reference(tiny_params, made["manifest"], tiny_data["raw"], made["root"] / "again")
    assert again == record and (made["root"] / "again" / FILE).read_bytes() == made["file"].read_bytes()
    refuse_to_resynthesise(monkeypatch)
    _, _, stored = resynthesised_reals(tiny_params, made["real"], read_reference(made["file"]))
    for part in ("train", "dev"):
        assert len(stored[part]) == len(fresh[part]) > 0
        for mine, theirs in zip(stored[part], fresh[part]):
            assert mine.dtype == np.float32 and np.array_equal(mine, theirs)


def test_a_part_made_otherwise_is_resynthesised_again_and_the_log_says_why(made, tiny_params, caplog):
    reference, real = read_reference(made["file"]), made["real"]
    _, inputs, _ = resynthesised_reals(tiny_params, real, reference)
    keys, mels = inputs["dev"]
    settings = conditioning_score.resynthesis_settings(tiny_params)
    with caplog.at_level(logging.INFO, logger="scenesynth.evaluation.resynth_reference"):
        assert reference.lookup("dev", keys, mels, settings) is not None
        other = with_overrides(tiny_params, generate={"griffin_lim_iters": settings["griffin_lim_iters"] + 1})
        assert reference.lookup("dev", keys, mels, conditioning_score.resynthesis_settings(other)) is None
        assert reference.lookup("dev", keys[:-1], mels[:-1], settings) is None
        assert reference.lookup("dev", keys, [mels[0] + 1e-3, *mels[1:]], settings) is None
        assert reference.lookup("ceiling", keys, mels, settings) is None
    reasons = [r.getMessage() for r in caplog.records if "again" in r.getMessage()]
    assert len(reasons) == 4 and all(str(made["file"]) in r for r in reasons)
    assert "made with" in reasons[0] and "other clips" in reasons[1] and "other log-mels" in reasons[2]


def test_without_an_audio_reading_the_file_says_why_and_holds_nothing(tmp_path, made, tiny_params, tiny_data):
    params = with_overrides(tiny_params, generate={"vocoder": "hifigan"})
    record = build_resynth_reference(params, made["manifest"], tiny_data["raw"], tmp_path)
    assert record["parts"] == [] and "Griffin-Lim" in record["skipped"]
    reference = read_reference(tmp_path / FILE)
    keys, mels = [str(k) for k in made["real"].dev["key"]], made["real"].dev_mels
    assert reference.lookup("dev", keys, mels, conditioning_score.resynthesis_settings(tiny_params)) is None


def test_a_file_that_is_not_one_is_a_one_line_error_naming_it(tmp_path):
    bad = tmp_path / FILE
    bad.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ResynthReferenceError, match=str(bad)) as err:
        read_reference(bad)
    assert "\n" not in str(err.value)


def test_evaluate_with_the_file_writes_what_it_writes_without(tmp_path, made, tiny_model, tiny_data, monkeypatch):
    """The stage changes where the audio reading's real clips are made, never a figure."""
    params = with_overrides(tiny_model["params"], evaluate={"clip_seconds": None})
    generate_dev_set(params, tiny_model["model"], made["manifest"], tmp_path / "gen")
    scored = {}
    for name, reference in (("alone", None), ("with_file", made["file"])):
        if reference is not None:
            refuse_to_resynthesise(monkeypatch)
        evaluate(params, tmp_path / "gen", made["manifest"], tmp_path / name, train_manifest=tiny_data["raw"],
                 cache=tmp_path / "cache", model=tiny_model["model"], resynth_reference=reference)
        scored[name] = {f: (tmp_path / name / f).read_bytes() for f in ("conditioning.json", "per_prompt.csv")}
    assert b'"audio"' in scored["alone"]["conditioning.json"] and scored["with_file"] == scored["alone"]
