"""Helpers for the Snakemake workflow (workflow/rules/common.smk), kept here so tests can reach them."""

from __future__ import annotations

from pathlib import Path

import yaml

from scenesynth.config import ConfigError, load_params


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
