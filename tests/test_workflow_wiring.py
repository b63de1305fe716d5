"""Snakemake and DVC describe the same DAG: each DVC stage runs its rule, with the same code deps."""

import re

import yaml

from conftest import REPO


def rule_code_packages() -> dict[str, set[str]]:
    found = {}
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for rule, body in re.findall(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)+)", smk.read_text(), flags=re.M):
            match = re.search(r"source_fingerprint\(([^)]*)\)", body)
            if match:
                found[rule] = {name.strip().strip('"') for name in match.group(1).split(",")}
    return found


def test_every_dvc_stage_runs_its_rule_with_the_same_code_dependencies():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    rules = rule_code_packages()
    fetch_rules = {"fetch_audiocaps_csv", "fetch_audiocaps_audio", "fetch_wavcaps", "fetch_dcase_dev"}
    assert set(stages) == set(rules) - fetch_rules - {"fetch_pretrained"} == {"acquire", "resample", "mel", "text", "train", "generate",
                                                       "evaluate", "report_assets"}
    for name, stage in stages.items():
        allowed = set(re.search(r"--allowed-rules ([\w ]+?) --", stage["cmd"]).group(1).split())
        # DVC's acquire stage runs the fetch rules too: they write inside its output, data/raw.
        # ... and text/generate/evaluate fetch the pre-trained models their params choose.
        expected = {name} | fetch_rules if name == "acquire" else \
            {name, "fetch_pretrained"} if name in ("text", "generate", "evaluate") else {name}
        assert allowed == expected, name
        deps = {d.removeprefix("src/scenesynth/").removesuffix(".py") for d in stage["deps"]
                if d.startswith("src/scenesynth/")}
        assert deps == set().union(*(rules[rule] for rule in allowed)), name
        assert "config" in stage["deps"], name


def test_train_rule_settings_ignore_the_process_count():
    from scenesynth.config import load_params
    from scenesynth.workflow import train_settings, train_threads

    params = load_params(REPO / "params.yaml")
    ddp = {**params, "train": {**params["train"], "processes_per_node": 4, "nodes": 2}}
    assert train_settings(ddp) == train_settings(params)  # resuming on more GPUs is not a new experiment
    assert train_threads(ddp) == 4 * (params["train"]["num_workers"] + 1)
    other = {**params, "train": {**params["train"], "lr_g": 2e-4}}
    assert train_settings(other) != train_settings(params)
