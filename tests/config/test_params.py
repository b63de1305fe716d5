import shutil
from pathlib import Path

import pytest
import yaml

from scenesynth.config import ConfigError, deep_merge, load_params, source_fingerprint
from scenesynth.workflow.rules import overlay_from

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture()
def params_copy(tmp_path) -> Path:
    return write(tmp_path / "params.yaml", yaml.safe_load((REPO / "params.yaml").read_text()))


@pytest.mark.parametrize("overlay", [None, "config/demo.yaml", "config/tiny.yaml", "config/separable.yaml"])
def test_shipped_params_and_overlays_are_valid(overlay):
    params = load_params(REPO / "params.yaml", REPO / overlay if overlay else None)
    assert params["audio"]["hop_length"] == (480 if overlay in (None, "config/tiny.yaml") else 1920)
    if overlay:
        assert params["data"]["source"] == "demo"
        assert params["overlay"] == str(REPO / overlay)


def test_paper_defaults():
    p = load_params(REPO / "params.yaml")
    assert (p["audio"]["n_mels"], p["audio"]["n_frames"], p["audio"]["sample_rate"]) == (256, 1024, 48000)
    assert (p["train"]["lr_g"], p["train"]["lr_d"], p["train"]["betas"], p["train"]["d_steps"]) == (
        1e-4, 4e-4, [0.5, 0.999], 2)
    assert (p["loss"]["tau"], p["loss"]["gamma1"], p["loss"]["gamma2"], p["loss"]["gamma3"]) == (0.1, 5, 5, 50)


def test_unknown_key_is_named(params_copy):
    data = yaml.safe_load(params_copy.read_text())
    data["train"]["learning_rate"] = 0.1
    write(params_copy, data)
    with pytest.raises(ConfigError, match=r"unknown key train\.learning_rate"):
        load_params(params_copy)


def test_wrong_type_is_named(params_copy):
    data = yaml.safe_load(params_copy.read_text())
    data["train"]["lr_g"] = "fast"
    write(params_copy, data)
    with pytest.raises(ConfigError, match=r"key train\.lr_g: 'fast' is not of type 'number'"):
        load_params(params_copy)


def test_missing_key_is_named(params_copy):
    data = yaml.safe_load(params_copy.read_text())
    del data["audio"]["hop_length"]
    write(params_copy, data)
    with pytest.raises(ConfigError, match="hop_length"):
        load_params(params_copy)


def test_overlay_errors_name_the_overlay(params_copy, tmp_path):
    overlay = write(tmp_path / "bad.yaml", {"model": {"z_dimension": 3}})
    with pytest.raises(ConfigError, match=r"(?s)bad\.yaml.*unknown key model\.z_dimension"):
        load_params(params_copy, overlay)
    nested = write(tmp_path / "nested.yaml", {"overlay": "other.yaml"})
    with pytest.raises(ConfigError, match="may not set `overlay`"):
        load_params(params_copy, nested)
    with pytest.raises(ConfigError, match="file not found"):
        load_params(params_copy, tmp_path / "absent.yaml")


def test_semantic_checks(params_copy, tmp_path):
    overlay = write(tmp_path / "o.yaml", {"audio": {"fmax": 30000}})
    with pytest.raises(ConfigError, match="audio.fmax"):
        load_params(params_copy, overlay)


def test_overlay_key_in_file_is_used(params_copy):
    data = yaml.safe_load(params_copy.read_text())
    data["overlay"] = str(REPO / "config/demo.yaml")
    write(params_copy, data)
    assert load_params(params_copy)["data"]["source"] == "demo"


def test_deep_merge_replaces_leaves_and_merges_dicts():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 4}
    merged = deep_merge(base, {"a": {"c": [3]}, "e": 5})
    assert merged == {"a": {"b": 1, "c": [3]}, "d": 4, "e": 5}
    assert base["a"]["c"] == [1, 2]


def test_snakemake_config_may_only_set_overlay(params_copy):
    data = yaml.safe_load(params_copy.read_text())
    assert overlay_from(dict(data, overlay="config/demo.yaml"), params_copy) == "config/demo.yaml"
    assert overlay_from(dict(data), params_copy) == ""
    with pytest.raises(ConfigError, match="may only set `overlay`.*train"):
        overlay_from(dict(data, train={"steps": 1}), params_copy)


def test_source_fingerprint_is_stable_and_specific():
    assert source_fingerprint("data") == source_fingerprint("data")
    assert source_fingerprint("data") != source_fingerprint("training")


def test_a_change_the_overlay_would_shadow_is_refused(tmp_path):
    """`dvc exp run -S train.steps=9` with an overlay that sets train.steps would train the overlay's
    steps while the experiment table showed 9: refused, naming the key and the way to vary it."""
    import subprocess

    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    shutil.copy(REPO / "params.yaml", project / "params.yaml")
    shutil.copy(REPO / "config" / "tiny.yaml", project / "config" / "tiny.yaml")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "x"]):
        subprocess.run(cmd, cwd=project, check=True)
    load_params(project / "params.yaml", "config/tiny.yaml")  # unchanged: fine
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["lr_g"] = 2e-4  # the tiny overlay does not set it: it runs
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    assert load_params(project / "params.yaml", "config/tiny.yaml")["train"]["lr_g"] == 2e-4
    params["train"]["steps"] = 9  # the tiny overlay sets it: refused
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=r"train.steps is 9 here .* config/tiny.yaml:train.steps="):
        load_params(project / "params.yaml", "config/tiny.yaml")
    assert load_params(project / "params.yaml")["train"]["steps"] == 9  # no overlay: nothing shadows it
    shutil.rmtree(project / ".git")
    load_params(project / "params.yaml", "config/tiny.yaml")  # outside git nothing to compare with
