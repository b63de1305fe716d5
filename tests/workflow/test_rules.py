"""The rules' inputs that depend on params: the dev set feeds training only through its periodic evaluation."""

from conftest import REPO, TINY_OVERLAY
from scenesynth import paths
from scenesynth.config import load_params
from scenesynth.workflow.rules import (acquire_inputs, dev_set_inputs, dev_set_options, option_of,
                                       resynth_reference_inputs, train_eval_inputs)


def test_training_never_takes_the_dev_set_and_every_source_has_one():
    paper, tiny = load_params(REPO / "params.yaml"), load_params(REPO / "params.yaml", TINY_OVERLAY)
    assert set(acquire_inputs(paper)) == {"audiocaps", "wavcaps"} and acquire_inputs(tiny) == {}
    assert not any(path.startswith(paths.DEV) for path in acquire_inputs(paper).values())
    assert dev_set_inputs(paper) == {"dcase": f"{paths.DCASE_DEV}/report.json"}
    assert dev_set_inputs(tiny) == {"manifest": f"{paths.RAW}/manifest.parquet"}
    assert dev_set_options(dev_set_inputs(paper)) == f"--dcase {paths.DCASE_DEV}"
    assert dev_set_options({"manifest": "my data/m.parquet"}) == "--manifest 'my data/m.parquet'"


def test_training_takes_the_dev_set_and_the_eval_models_only_when_it_evaluates():
    paper = load_params(REPO / "params.yaml")
    inputs = train_eval_inputs(paper)
    assert inputs["dev_manifest"] == f"{paths.DEV}/manifest.parquet" and inputs["reference"].startswith(paths.DEV)
    assert inputs["eval_models"] == [f"{paths.PRETRAINED}/{name}/source.json"
                                     for name in ("clap_rerank", "clap_text", "hifigan_48k", "panns")]
    off = {**paper, "train": {**paper["train"], "eval_every": 0}}
    assert train_eval_inputs(off) == {}
    assert train_eval_inputs(load_params(REPO / "params.yaml", TINY_OVERLAY))["eval_models"] == []  # stand-ins


def test_evaluate_takes_the_resynthesised_clips_only_where_it_has_an_audio_reading():
    paper, tiny = load_params(REPO / "params.yaml"), load_params(REPO / "params.yaml", TINY_OVERLAY)
    assert resynth_reference_inputs(paper) == {}  # the HiFi-GAN's clips: no Griffin-Lim reading, no such job
    assert resynth_reference_inputs(tiny) == {"resynth_reference": f"{paths.RESYNTH}/{paths.RESYNTH_FILE}"}
    assert resynth_reference_inputs({**tiny, "evaluate": {**tiny["evaluate"], "conditioning": False}}) == {}
    assert option_of(resynth_reference_inputs(tiny), "resynth_reference") == \
        f"--resynth-reference {paths.RESYNTH}/{paths.RESYNTH_FILE}"
    quoted = option_of({"resynth_reference": "my data/r.npz"}, "resynth_reference")
    assert quoted == "--resynth-reference 'my data/r.npz'"
    assert option_of({}, "resynth_reference") == ""
