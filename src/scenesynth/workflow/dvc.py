"""dvc.yaml, derived from the stage table: `python -m scenesynth.workflow.dvc > dvc.yaml`.

DVC drives the same DAG as Snakemake, one DVC stage per rule (plus the local fetch rules that
write inside its output): DVC decides *whether* a stage is stale (content hashes of its deps, the
params keys of its rules, the overlay files in config/), Snakemake *runs* it (`--allowed-rules`
keeps it to those rules; the workflow profile ignores timestamps). tests/test_workflow_wiring.py
checks that the committed dvc.yaml is what this module writes.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from scenesynth import paths
from scenesynth.workflow.stages import SOURCE_PREFIX, STAGES, code_paths

REPO = Path(__file__).resolve().parents[3]
FETCH_RULES = ("fetch_audiocaps_csv", "fetch_audiocaps_audio", "fetch_wavcaps")


@dataclass(frozen=True)
class DvcStage:
    rules: tuple[str, ...]         # the Snakemake rules it may run; the first is its own
    targets: tuple[str, ...]       # what it asks Snakemake for
    rule_files: tuple[str, ...]    # workflow/rules/*.smk holding those rules
    deps: tuple[str, ...] = ()     # upstream artifacts
    outs: dict = field(default_factory=dict)     # path -> DVC options ({} for none)
    metrics: tuple[str, ...] = ()
    comment: str = ""


DVC_STAGES: dict[str, DvcStage] = {
    "acquire": DvcStage(
        ("acquire", *FETCH_RULES), (f"{paths.RAW}/manifest.parquet",), ("acquire.smk",),
        outs={paths.RAW: {}},
        comment="data/raw: the merged manifest (and the demo's synthesised clips). The paper's data is fetched\n"
                "by the rules of acquire.smk into data/downloads, which is no DVC output: no DVC command deletes it."),
    "resample": DvcStage(("resample",), (f"{paths.AUDIO_48K}/manifest.parquet",), ("data.smk",),
                         deps=(paths.RAW,), outs={paths.AUDIO_48K: {}}),
    "mel": DvcStage(("mel",), (f"{paths.MELS}/index.json",), ("data.smk",), deps=(paths.AUDIO_48K,),
                    outs={paths.MELS: {}}),
    "text": DvcStage(("text", "fetch_pretrained"), (f"{paths.TEXT}/info.json",), ("data.smk", "pretrained.smk"),
                     deps=(f"{paths.RAW}/manifest.parquet",), outs={paths.TEXT: {}}),
    "train": DvcStage(("train", "fetch_pretrained"), (f"{paths.RUN}/model.pt",), ("train.smk", "pretrained.smk"),
                      deps=(paths.MELS, paths.TEXT, paths.DEV, f"{paths.RAW}/manifest.parquet"),
                      outs={f"{paths.RUN}/model.pt": {}, f"{paths.METRICS}/train.json": {"cache": False}},
                      comment="data/dev and data/raw: the periodic evaluation (train.eval_every) scores the dev set."),
    "dev_set": DvcStage(
        ("dev_set", "fetch_dcase_dev"), (f"{paths.DEV}/manifest.parquet",), ("evaluate.smk",),
        deps=(f"{paths.RAW}/manifest.parquet",), outs={paths.DEV: {}},
        comment="The evaluation prompts and FAD reference (the DCASE download in data/downloads, or the demo's dev\n"
                "rows). Training depends on it for its periodic evaluation (train.eval_every; 0 turns it off)."),
    "generate": DvcStage(("generate", "fetch_pretrained"), (f"{paths.GENERATED}/generation.json",),
                         ("evaluate.smk", "pretrained.smk"),
                         deps=(f"{paths.RUN}/model.pt", f"{paths.DEV}/manifest.parquet"),
                         outs={paths.GENERATED: {}}),
    "resynth_reference": DvcStage(
        ("resynth_reference",), (f"{paths.RESYNTH}/{paths.RESYNTH_FILE}",), ("evaluate.smk",),
        deps=(f"{paths.DEV}/manifest.parquet", paths.RAW, paths.MELS), outs={paths.RESYNTH: {}},
        comment="The audio reading's real clips, resynthesised (data/mels: the rule runs after the shards, for\n"
                "the order of the jobs alone)."),
    "evaluate": DvcStage(("evaluate", "fetch_pretrained"),
                         (f"{paths.METRICS}/fad.json", f"{paths.METRICS}/clap_score.json",
                          f"{paths.METRICS}/per_prompt.csv", f"{paths.METRICS}/conditioning.json",
                          f"{paths.METRICS}/headline.json"),
                         ("evaluate.smk", "pretrained.smk"),
                         deps=(paths.GENERATED, paths.DEV, paths.RAW, paths.RESYNTH, f"{paths.METRICS}/train.json"),
                         outs={f"{paths.METRICS}/{name}": {"cache": False}
                               for name in ("fad.json", "clap_score.json", "per_prompt.csv", "conditioning.json")},
                         metrics=(f"{paths.METRICS}/headline.json",),
                         comment="headline.json is the one DVC metric: what `dvc exp show` compares (README, Experiments)."),
    "report_assets": DvcStage(("report_assets",), (f"{paths.REPORT}/metrics.html",), ("report.smk",),
                              deps=(paths.GENERATED, paths.DEV, f"{paths.METRICS}/fad.json",
                                    f"{paths.METRICS}/clap_score.json", f"{paths.METRICS}/per_prompt.csv",
                                    f"{paths.METRICS}/conditioning.json", f"{paths.METRICS}/train.json",
                                    "workflow/report"),
                              outs={paths.REPORT: {}},
                              comment="The listening report's pages; `snakemake --report report.html` then embeds them."),
}

HEADER = """\
# Written by `python -m scenesynth.workflow.dvc > dvc.yaml` from the stage table
# (src/scenesynth/workflow/stages.py): edit that, not this file.
# DVC drives the same DAG as Snakemake, one stage per rule: DVC decides *whether* a
# stage is stale (content hashes of deps, params.yaml keys, the overlay files in
# config/), Snakemake *runs* it (`--allowed-rules` keeps it to those rules, and
# the workflow profile ignores timestamps). See docs/design.md, "Snakemake and DVC".
"""


def _params_keys(rules: tuple[str, ...], defaults: dict) -> list[str]:
    """The params keys of the rules, minus those a broader key already covers, with each ignored
    key left out by listing its siblings instead of its parent."""
    ignored = {key for rule in rules for key in STAGES[rule].ignored}
    keys: list[str] = []

    def expand(key: str, value) -> None:
        if key in ignored:
            return
        if isinstance(value, dict) and any(i.startswith(key + ".") for i in ignored):
            for child, child_value in value.items():
                expand(f"{key}.{child}", child_value)
        else:
            keys.append(key)

    wanted = sorted({key for rule in rules for key in STAGES[rule].settings})
    for key in wanted:
        if any(key.startswith(other + ".") for other in wanted):
            continue
        value = defaults
        for part in key.split("."):
            value = value[part]
        expand(key, value)
    return ["overlay", *keys]


def overlay_files(repo: Path = REPO) -> list[str]:
    """The overlays in config/: DVC tracks every key of each as a parameter, so that a value an
    experiment sets in an overlay (`dvc exp run -S config/demo.yaml:train.steps=600`) shows in
    `dvc exp show` like one set in params.yaml."""
    return sorted(p.relative_to(repo).as_posix() for p in (repo / "config").glob("*.yaml"))


def dvc_stage(name: str, defaults: dict, overlays: list[str]) -> dict:
    spec = DVC_STAGES[name]
    code = sorted({entry for rule in spec.rules for entry in code_paths(rule)})
    stage: dict = {
        "cmd": f"snakemake --cores all --allowed-rules {' '.join(spec.rules)} -- {' '.join(spec.targets)}",
        "deps": [*spec.deps, *(f"workflow/rules/{f}" for f in spec.rule_files), "config",
                 *(f"{SOURCE_PREFIX}/{entry}" for entry in code)],
        "params": [*_params_keys(spec.rules, defaults), *({overlay: None} for overlay in overlays)],
    }
    if spec.outs:
        stage["outs"] = [{path: options} if options else path for path, options in spec.outs.items()]
    if spec.metrics:
        stage["metrics"] = [{path: {"cache": False}} for path in spec.metrics]
    return stage


def dvc_yaml(params_path: str | Path = REPO / "params.yaml") -> str:
    """The text of dvc.yaml."""
    defaults = yaml.safe_load(Path(params_path).read_text())
    overlays = overlay_files(Path(params_path).resolve().parent)
    lines = [HEADER.rstrip(), "stages:"]
    for name, spec in DVC_STAGES.items():
        body = yaml.safe_dump({name: dvc_stage(name, defaults, overlays)}, sort_keys=False, width=200)
        comment = "".join(f"    # {line}\n" for line in spec.comment.splitlines())
        first, rest = body.split("\n", 1)
        lines.append("  " + first + "\n" + comment + "".join(f"  {line}\n" for line in rest.splitlines()).rstrip())
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(dvc_yaml(sys.argv[1] if len(sys.argv) > 1 else REPO / "params.yaml"))
