"""The stage table is the one record of what each stage depends on: the rules, dvc.yaml and the CLI
follow it, and the package's imports form no cycle."""

import ast
import inspect
import re

import pytest

from conftest import REPO
from scenesynth import cli
from scenesynth.config import load_params
from scenesynth.workflow.dvc import DVC_STAGES, dvc_yaml
from scenesynth.workflow.rules import train_threads
from scenesynth.workflow.stages import (STAGES, _module_files, code_paths, import_closure, imported_modules,
                                        stage_code, stage_settings)


def rules_in_workflow() -> dict[str, str]:
    found = {}
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for rule, body in re.findall(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)+)", smk.read_text(), flags=re.M):
            found[rule] = body
    return found


def test_every_rule_takes_its_settings_and_code_from_the_stage_table():
    rules = rules_in_workflow()
    assert set(rules) == set(STAGES)
    for rule, body in rules.items():
        assert f'stage_settings(PARAMS, "{rule}")' in body, rule
        assert f'stage_code("{rule}")' in body, rule
        assert f"scenesynth {STAGES[rule].verb} " in body, rule


def test_committed_dvc_yaml_is_the_one_derived_from_the_stage_table():
    assert (REPO / "dvc.yaml").read_text() == dvc_yaml(REPO / "params.yaml"), \
        "dvc.yaml is stale: run `python -m scenesynth.workflow.dvc > dvc.yaml`"
    assert set(DVC_STAGES) == set(STAGES) - {"fetch_pretrained", "fetch_audiocaps_csv", "fetch_audiocaps_audio",
                                             "fetch_wavcaps", "fetch_dcase_dev"}


def test_every_verb_lands_in_the_module_the_table_names():
    handlers = {action.dest: action for action in cli.build_parser()._subparsers._group_actions}
    verbs = next(iter(handlers.values())).choices
    for rule, stage in STAGES.items():
        assert stage.verb in verbs, rule
        handler = verbs[stage.verb].get_default("func")
        imports = {node.module for node in ast.walk(ast.parse(inspect.getsource(handler)))
                   if isinstance(node, ast.ImportFrom)}
        assert stage.module in imports, (rule, stage.verb, imports)


def test_code_dependencies_follow_the_imports():
    train = code_paths("train")
    assert {"models", "losses", "training", "features", "text"} <= set(train)
    assert "evaluation" in train and "report" not in train  # evaluation: train.eval_every scores as it trains
    assert "scenesynth.models.attention_tfsca" in import_closure("scenesynth.training.loop")
    assert code_paths("resample") != code_paths("generate")
    assert stage_code("train") != stage_code("evaluate")


def test_ignored_keys_leave_the_rerun_trigger_and_nothing_else():
    params = load_params(REPO / "params.yaml")
    ddp = {**params, "train": {**params["train"], "processes_per_node": 4, "nodes": 2}}
    assert stage_settings(ddp, "train") == stage_settings(params, "train")  # more GPUs is not a new experiment
    assert ddp["train"]["nodes"] == 2  # the copy was popped, not the params
    assert train_threads(ddp) == 4 * (params["train"]["num_workers"] + 1)
    other = {**params, "train": {**params["train"], "lr_g": 2e-4}}
    assert stage_settings(other, "train") != stage_settings(params, "train")
    more_workers = {**params, "resample": {**params["resample"], "workers": 7}}
    assert stage_settings(more_workers, "resample") == stage_settings(params, "resample")


def test_the_package_has_no_import_cycle():
    modules = sorted(_module_files())
    graph = {name: imported_modules(name) for name in modules}
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for other in sorted(graph[name]):
            if state.get(other) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(other):] + [other]))
            if other not in state:
                visit(other, path + [other])
        state[name] = 2

    for name in modules:
        if name not in state:
            visit(name, [name])
