"""The stage table: for every step of the DAG, the CLI verb, the module it lands in, and the
params.yaml keys whose values make it rerun.

Snakemake's rules (workflow/rules/*.smk) and DVC's stages (dvc.yaml, written by
`python -m scenesynth.workflow.dvc`) both read this table, so they cannot disagree on what a
stage depends on. The code a stage depends on is derived, not listed: the package modules its
entry module imports, directly or not (`code_paths`), so a new import is a new dependency.
"""

from __future__ import annotations

import ast
import copy
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from scenesynth.config import TRAIN_PROCESS_KEYS

PACKAGE = "scenesynth"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
SOURCE_PREFIX = f"src/{PACKAGE}"


@dataclass(frozen=True)
class Stage:
    """One rule of the DAG."""

    verb: str                    # `scenesynth <verb>`
    module: str                  # the module the verb lands in (its import closure is the stage's code)
    settings: tuple[str, ...]    # params keys (dotted) whose values rerun it
    ignored: tuple[str, ...] = ()  # keys under `settings` that do not change its outputs


STAGES: dict[str, Stage] = {
    "fetch_audiocaps_csv": Stage("fetch-audiocaps-csv", "scenesynth.data.audiocaps", ("data.audiocaps.csv_url",)),
    "fetch_audiocaps_audio": Stage("fetch-audiocaps-audio", "scenesynth.data.audiocaps",
                                   ("data.audiocaps", "data.download")),
    "fetch_wavcaps": Stage("fetch-wavcaps", "scenesynth.data.wavcaps", ("data.wavcaps", "data.download")),
    "fetch_dcase_dev": Stage("fetch-dcase-dev", "scenesynth.data.dcase_dev", ("data.dcase_dev", "data.download")),
    # Every source has a dev set; training reads it only to evaluate as it goes (train.eval_every > 0).
    "dev_set": Stage("dev-set", "scenesynth.data.dev_set", ("data.source", "data.dcase_dev")),
    "fetch_pretrained": Stage("fetch-pretrained", "scenesynth.pretrained.fetch",
                              ("pretrained.hf_endpoint", "pretrained.zenodo_api")),  # + the model's own entry
    "acquire": Stage("acquire", "scenesynth.data.acquire", ("data", "seed"),
                     ignored=("data.demo.workers", "data.custom.workers", "data.dcase_dev")),
    "resample": Stage("resample", "scenesynth.data.resample", ("audio", "resample", "data.min_duration"),
                      ignored=("resample.workers",)),
    "mel": Stage("mel", "scenesynth.features.mel_shards", ("audio", "mel", "seed"), ignored=("mel.workers",)),
    "text": Stage("text", "scenesynth.text.cache", ("text", "seed", "pretrained")),
    # How many processes train does not change what is learnt (docs/cluster-training.md). generate, evaluate and
    # pretrained: its periodic evaluation (train.eval_every) makes and scores the dev set's clips as those stages do.
    "train": Stage("train", "scenesynth.training.loop", ("audio", "model", "loss", "seed", "train", "generate",
                                                         "evaluate", "pretrained"),
                   ignored=tuple(f"train.{key}" for key in TRAIN_PROCESS_KEYS)),
    "generate": Stage("generate", "scenesynth.inference.generate", ("generate", "pretrained")),
    "resynth_reference": Stage("resynth-reference", "scenesynth.evaluation.resynth_reference",
                               ("audio", "seed", "evaluate.conditioning", "evaluate.conditioning_resynth_clips",
                                "generate.vocoder", "generate.griffin_lim_iters", "generate.sample_rate")),
    "evaluate": Stage("evaluate", "scenesynth.evaluation.evaluate", ("evaluate", "generate", "pretrained", "audio")),
    "report_assets": Stage("report-assets", "scenesynth.report.pages", ("audio", "generate", "evaluate")),
}


def _lookup(params: dict, dotted: str):
    value = params
    for part in dotted.split("."):
        value = value[part]
    return value


def stage_settings(params: dict, rule: str) -> dict:
    """The values of the stage's settings (Snakemake's `params` rerun trigger): {dotted key: value},
    without its ignored keys."""
    stage = STAGES[rule]
    values = copy.deepcopy({key: _lookup(params, key) for key in stage.settings})
    for dotted in stage.ignored:
        owner = next(key for key in stage.settings if dotted.startswith(key + "."))
        head, _, leaf = dotted[len(owner) + 1:].rpartition(".")
        (_lookup(values[owner], head) if head else values[owner]).pop(leaf, None)
    return values


# ----------------------------------------------------------------------------- code dependencies

@functools.cache
def _module_files() -> dict[str, Path]:
    files = {}
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        files[name] = path
    return files


def imported_modules(module: str) -> set[str]:
    """The package modules ``module`` imports itself (at any depth of its code, lazy imports too)."""
    files = _module_files()
    tree = ast.parse(files[module].read_text(), str(files[module]))
    package = module if files[module].name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            while name and name not in files:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def import_closure(module: str) -> set[str]:
    """``module`` and every package module it imports, directly or through others."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(imported_modules(name) - seen)
    return seen


def code_paths(rule: str) -> list[str]:
    """The source folders (and top-level modules) a stage's code lives in, relative to the package:
    its import closure, one entry per sub-package. DVC lists them as deps; Snakemake hashes them."""
    entries = set()
    for name in import_closure(STAGES[rule].module):
        parts = name.split(".")[1:]
        if not parts:
            continue  # the package's own __init__
        is_package = (_module_files()[name].name == "__init__.py") or len(parts) > 1
        entries.add(parts[0] if is_package else f"{parts[0]}.py")
    return sorted(entries)


def code_fingerprint(entries: list[str]) -> str:
    """Hash of the files under the given package entries (folders or module files)."""
    digest = hashlib.sha256()
    for entry in sorted(entries):
        target = PACKAGE_ROOT / entry
        for path in sorted(target.rglob("*.py")) if target.is_dir() else [target]:
            digest.update(path.relative_to(PACKAGE_ROOT).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def stage_code(rule: str) -> str:
    """The fingerprint of the code a stage runs (Snakemake's `params` carry it: a code change reruns it)."""
    return code_fingerprint(code_paths(rule))
