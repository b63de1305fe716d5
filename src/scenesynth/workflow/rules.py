"""What the Snakemake rules call besides the stage table (workflow/rules/common.smk), kept here so tests can
reach them: the overlay, the inputs that depend on params, thread counts, the report's labels."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import yaml

from scenesynth import paths
from scenesynth.config import ConfigError, load_params
from scenesynth.pretrained.models import needed_models


def overlay_from(config: dict, params_path: str | Path) -> str:
    """The overlay to use: `--config overlay=...` or params.yaml's own key.

    Any other `--config` override is refused: params.yaml (or an overlay) is the
    one source of settings, so that the CLI, DVC and Snakemake all see the same.
    """
    file_values = yaml.safe_load(Path(params_path).read_text()) or {}
    changed = sorted(k for k in config if k != "overlay" and config.get(k) != file_values.get(k))
    if changed:
        raise ConfigError(f"--config may only set `overlay`; put {', '.join(changed)} in params.yaml or an overlay")
    return config.get("overlay") or ""


def resolve_params(params_path: str | Path, overlay: str) -> dict:
    return load_params(params_path, overlay or None)


def acquire_inputs(params: dict) -> dict[str, str]:
    """The per-dataset manifests the acquire rule merges: none for the demo and a custom folder;
    otherwise both training sources. Never the dev set: training must not wait on (or fail with) the
    dev-set download."""
    if params["data"]["source"] in ("demo", "custom"):
        return {}
    return {"audiocaps": f"{paths.AUDIOCAPS}/manifest.parquet", "wavcaps": f"{paths.WAVCAPS}/manifest.parquet"}


def dev_set_inputs(params: dict) -> dict[str, str]:
    """Where the dev-set rule takes its prompts: the DCASE download for the paper's source, acquire's
    manifest (its dev rows) for the demo and any other source. Keys are the `scenesynth dev-set` options."""
    if params["data"]["source"] == "audiocaps_wavcaps":
        return {"dcase": f"{paths.DCASE_DEV}/report.json"}
    return {"manifest": f"{paths.RAW}/manifest.parquet"}


def dev_set_options(inputs: dict[str, str]) -> str:
    """`--dcase FOLDER` (the folder of the fetch's report) or `--manifest FILE`, shell-quoted."""
    return " ".join(f"--{name} {shlex.quote(str(Path(path).parent) if name == 'dcase' else path)}"
                    for name, path in inputs.items())


def acquire_inventory(params: dict) -> str:
    """What the acquire rule reads from outside the DAG, as a fingerprint for its rerun trigger: the
    custom source's caption file and folder listing (data/custom.py); nothing for the other sources."""
    if params["data"]["source"] != "custom":
        return ""
    from scenesynth.data.custom import inventory

    return inventory(params["data"]["custom"])


def pretrained_inputs(params: dict, stage: str) -> list[str]:
    """The pretrained folders (their source.json) a stage needs: none when params choose the stand-ins."""
    return [f"{paths.PRETRAINED}/{name}/source.json" for name in needed_models(params)[stage]]


def train_eval_inputs(params: dict) -> dict[str, str | list[str]]:
    """What training's periodic evaluation reads (train.eval_every > 0): the dev set, acquire's manifest
    (the conditioning score's labels) and the pre-trained models of generate and evaluate; nothing when off."""
    if not params["train"]["eval_every"]:
        return {}
    models = sorted(set(needed_models(params)["generate"]) | set(needed_models(params)["evaluate"]))
    return {"dev_manifest": f"{paths.DEV}/manifest.parquet", "reference": f"{paths.DEV}/reference.json",
            "train_manifest": f"{paths.RAW}/manifest.parquet",
            "eval_models": [f"{paths.PRETRAINED}/{name}/source.json" for name in models]}


def resynth_reference_inputs(params: dict) -> dict[str, str]:
    """The resynth_reference stage's file where evaluate has an audio reading to feed it to (the conditioning
    score, Griffin-Lim clips); nothing otherwise, so a DAG without that reading has no such job."""
    reading = params["evaluate"]["conditioning"] and params["generate"]["vocoder"] == "griffin_lim"
    return {"resynth_reference": f"{paths.RESYNTH}/{paths.RESYNTH_FILE}"} if reading else {}


def option_of(inputs: dict[str, str], name: str) -> str:
    """`--<name> PATH` (shell-quoted) of an optional input, or nothing where the rule has none."""
    return f"--{name.replace('_', '-')} {shlex.quote(str(inputs[name]))}" if name in inputs else ""


def train_threads(params: dict) -> int:
    """Cores the train job uses: per process, the main loop and its DataLoader workers."""
    train = params["train"]
    return train.get("processes_per_node", 1) * (train["num_workers"] + 1)


LABEL_CHARS = 90  # a listening-report entry's caption label


def prompt_labels(captions_path: str | Path, key: str) -> dict[str, str]:
    """The report's labels of one prompt page: its rank (1 = worst, from ranks.json beside the captions,
    zero-padded so that the report sorts worst first), id and caption. Braces become parentheses:
    Snakemake reads `{name}` in a label as a wildcard."""
    captions = json.loads(Path(captions_path).read_text())
    caption = captions.get(key, "")
    if len(caption) > LABEL_CHARS:
        caption = caption[: LABEL_CHARS - 1] + "\u2026"
    ranks_path = Path(captions_path).with_name("ranks.json")
    ranks = json.loads(ranks_path.read_text()) if ranks_path.is_file() else {}
    rank = {"rank": f"{ranks[key]:03d}"} if key in ranks else {}
    return {**rank, "prompt": key, "caption": caption.replace("{", "(").replace("}", ")")}
