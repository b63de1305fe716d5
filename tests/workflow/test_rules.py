"""The rules' inputs that depend on params: the dev set is never an input of the training path."""

from conftest import REPO, TINY_OVERLAY
from scenesynth import paths
from scenesynth.config import load_params
from scenesynth.workflow.rules import acquire_inputs, dev_set_inputs, dev_set_options


def test_training_never_takes_the_dev_set_and_every_source_has_one():
    paper, tiny = load_params(REPO / "params.yaml"), load_params(REPO / "params.yaml", TINY_OVERLAY)
    assert set(acquire_inputs(paper)) == {"audiocaps", "wavcaps"} and acquire_inputs(tiny) == {}
    assert not any(path.startswith(paths.DEV) for path in acquire_inputs(paper).values())
    assert dev_set_inputs(paper) == {"dcase": f"{paths.DCASE_DEV}/report.json"}
    assert dev_set_inputs(tiny) == {"manifest": f"{paths.RAW}/manifest.parquet"}
    assert dev_set_options(dev_set_inputs(paper)) == f"--dcase {paths.DCASE_DEV}"
    assert dev_set_options({"manifest": "my data/m.parquet"}) == "--manifest 'my data/m.parquet'"
