"""Helpers for the Snakemake workflow (workflow/rules/common.smk), kept here so tests can reach them."""

from __future__ import annotations

from pathlib import Path

import yaml

from scenesynth.config import TRAIN_PROCESS_KEYS, ConfigError, load_params


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


def section(params: dict, *names: str) -> dict:
    """The settings a rule depends on, for Snakemake's `params` rerun trigger."""
    return {name: params[name] for name in names}


def acquire_inputs(params: dict) -> dict[str, str]:
    """The per-dataset manifests the acquire rule merges: none for the demo; otherwise both training
    sources and the DCASE dev set."""
    from scenesynth import paths

    if params["data"]["source"] == "demo":
        return {}
    return {"audiocaps": f"{paths.AUDIOCAPS}/manifest.parquet", "wavcaps": f"{paths.WAVCAPS}/manifest.parquet",
            "dev": f"{paths.DCASE_DEV}/manifest.parquet"}


def pretrained_inputs(params: dict, stage: str) -> list[str]:
    """The pretrained folders (their source.json) a stage needs: none when params choose the stand-ins."""
    from scenesynth import paths
    from scenesynth.pretrained import needed_models

    return [f"{paths.PRETRAINED}/{name}/source.json" for name in needed_models(params)[stage]]


def train_settings(params: dict) -> dict:
    """The settings the train rule reruns on: everything that shapes the weights."""
    return {**section(params, "audio", "model", "loss", "seed"),
            "train": {k: v for k, v in params["train"].items() if k not in TRAIN_PROCESS_KEYS}}


def train_threads(params: dict) -> int:
    """Cores the train job uses: per process, the main loop and its DataLoader workers."""
    train = params["train"]
    return train.get("processes_per_node", 1) * (train["num_workers"] + 1)
