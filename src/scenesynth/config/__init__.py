"""Loading and validating params.yaml (plus an optional overlay).

params.yaml is the one source of every setting; Snakemake, DVC and the CLI all
read it through :func:`load_params`, so they can never disagree. Validation runs
before any job starts and names the offending key.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

_PACKAGE_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_FILES = ("pipeline.yaml", "model.yaml", "loss.yaml")


class ConfigError(ValueError):
    """params.yaml (or its overlay) is not valid: the message names file and key."""


def deep_merge(base: dict, overlay: dict) -> dict:
    """Return ``base`` with ``overlay`` merged in; nested dicts merge, everything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    folder = resources.files("scenesynth.config") / "schema"
    schemas = {name: yaml.safe_load((folder / name).read_text()) for name in SCHEMA_FILES}
    registry = Registry().with_resources(
        (name, Resource.from_contents(schema, default_specification=DRAFT202012))
        for name, schema in schemas.items()
    )
    # $ref "model.yaml" resolves against this base URI.
    root = dict(schemas["pipeline.yaml"], **{"$id": "pipeline.yaml"})
    return jsonschema.Draft202012Validator(root, registry=registry)


def _describe(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        prefix = "" if where == "<top level>" else where + "."
        return f"unknown key {', '.join(prefix + k for k in extra)!s} (allowed here: {', '.join(allowed)})"
    if error.validator == "required":
        return f"missing key in {where}: {error.message}"
    return f"key {where}: {error.message}"


def validate_params(params: dict, source: str = "params") -> None:
    """Raise :class:`ConfigError` listing every problem, each naming its key."""
    errors = sorted(_validator().iter_errors(params), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = "\n".join(f"  - {_describe(e)}" for e in errors)
        raise ConfigError(f"{source}: invalid configuration:\n{lines}")
    audio = params["audio"]
    if audio["fmax"] > audio["sample_rate"] / 2:
        raise ConfigError(f"{source}: key audio.fmax: {audio['fmax']} is above Nyquist ({audio['sample_rate'] / 2})")
    if audio["win_length"] > audio["n_fft"]:
        raise ConfigError(f"{source}: key audio.win_length: must not exceed audio.n_fft")


def load_params(path: str | Path = "params.yaml", overlay: str | Path | None = None) -> dict:
    """Read params.yaml, merge its overlay (argument wins over the file's `overlay` key), validate.

    The returned dict has ``overlay`` set to the overlay actually applied, so
    every output that records its params also records which overlay was used.
    """
    path = Path(path)
    params = _read_yaml(path)
    chosen = overlay if overlay not in (None, "", "null", "None") else params.get("overlay")
    source = str(path)
    if chosen:
        overlay_path = Path(chosen)
        if not overlay_path.is_absolute() and not overlay_path.exists():
            overlay_path = path.parent / overlay_path
        extra = _read_yaml(overlay_path)
        if "overlay" in extra:
            raise ConfigError(f"{overlay_path}: an overlay may not set `overlay` itself")
        _refuse_shadowed_changes(path, params, chosen, extra)
        params = deep_merge(params, extra)
        params["overlay"] = str(chosen)
        source = f"{path} + overlay {overlay_path}"
    validate_params(params, source)
    return params


def complete_params(params: dict, overlay: str | Path | None = None, source: str = "the params dict") -> dict:
    """A params dict built in code (the Python API), with ``overlay`` merged over it as load_params
    merges one over params.yaml, then validated: a partial dict or an ignored overlay would otherwise
    surface later as a bare KeyError or as settings the caller did not ask for."""
    if not isinstance(params, dict):
        raise ConfigError(f"{source}: expected a mapping of params.yaml's sections, got {type(params).__name__}")
    params = copy.deepcopy(params)
    if overlay not in (None, ""):
        extra = _read_yaml(Path(overlay))
        if "overlay" in extra:
            raise ConfigError(f"{overlay}: an overlay may not set `overlay` itself")
        params = deep_merge(params, extra)
        params["overlay"] = str(overlay)
        source = f"{source} + overlay {overlay}"
    missing = [key for key in _validator().schema.get("required", []) if key not in params]
    if missing:
        raise ConfigError(f"{source}: missing section(s) {', '.join(missing)}: pass a whole params dict "
                          f"(scenesynth.config.load_params) or the path of params.yaml")
    validate_params(params, source)
    return params


def flatten(values: dict, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists and scalars are leaves."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def committed_version(path: Path) -> dict | None:
    """The file as the last git commit has it (None outside a git checkout, or if it is not committed)."""
    try:
        shown = subprocess.run(["git", "show", f"HEAD:./{path.name}"], cwd=path.parent, capture_output=True,
                               text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if shown.returncode != 0:
        return None
    try:
        data = yaml.safe_load(shown.stdout)
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _refuse_shadowed_changes(path: Path, params: dict, overlay: str, extra: dict) -> None:
    """A key changed in params.yaml (against the last commit, e.g. by `dvc exp run -S`) that the overlay
    also sets would not run: the overlay wins. Say so instead of letting the experiment table show a
    value that never ran."""
    committed = committed_version(path)
    if committed is None:
        return
    now, before, overlay_values = flatten(params), flatten(committed), flatten(extra)
    shadowed = sorted(k for k in overlay_values if k in now and now[k] != before.get(k, now[k]))
    if shadowed:
        key = shadowed[0]
        raise ConfigError(
            f"{path}: {key} is {now[key]!r} here ({before[key]!r} in the last commit), but the overlay {overlay} "
            f"sets it to {overlay_values[key]!r} and wins, so that change would not run"
            + (f" (nor would {', '.join(shadowed[1:])})" if len(shadowed) > 1 else "")
            + f". Change it in the overlay instead, e.g. `dvc exp run --temp -S {overlay}:{key}=...`.")


def fingerprint(obj: Any) -> str:
    """A short stable hash of a JSON-able value (used to tie checkpoints and caches to settings)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


#: How many processes train (and whether its evaluations run in a process of their own) does not change
#: what is learnt or measured: neither a rerun trigger nor part of a checkpoint's fingerprint.
TRAIN_PROCESS_KEYS = ("processes_per_node", "nodes", "eval_background")


def source_fingerprint(*subpackages: str) -> str:
    """Hash of the package code a rule runs, so a code change reruns it (Snakemake's `code`
    trigger only sees the rule's own shell line)."""
    digest = hashlib.sha256()
    for name in sorted(subpackages):
        target = _PACKAGE_ROOT / name
        files = sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]
        for path in files:
            digest.update(path.relative_to(_PACKAGE_ROOT).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
