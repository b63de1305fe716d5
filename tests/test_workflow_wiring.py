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
    assert set(stages) == set(rules) == {"acquire", "resample", "mel", "text", "train", "generate", "evaluate"}
    for name, stage in stages.items():
        assert f"--allowed-rules {name} --" in stage["cmd"]
        deps = {d.removeprefix("src/scenesynth/") for d in stage["deps"] if d.startswith("src/scenesynth/")}
        assert deps == rules[name], name
        assert "config" in stage["deps"], name
