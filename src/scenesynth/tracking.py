"""MLflow logging: one run per training run, resumed with it, evaluated into it.

The run id is kept in the run folder, so a resumed training continues the same
MLflow run and the evaluate stage adds its metrics beside the training curves.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from scenesynth.utils.atomic import write_json

log = logging.getLogger(__name__)
RUN_FILE = "mlflow_run.json"


def flatten(params: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def stand_ins(params: dict) -> dict[str, str]:
    """Which parts are real and which are offline stand-ins: recorded on every run."""
    return {
        "data.source": params["data"]["source"],
        "text.encoder": params["text"]["encoder"],
        "generate.vocoder": params["generate"]["vocoder"],
        "evaluate.fad_embedding": params["evaluate"]["fad_embedding"],
        "overlay": str(params["overlay"]),
    }


class Tracker:
    """Thin wrapper so that the training code does not depend on MLflow's globals."""

    def __init__(self, params: dict, run_dir: str | Path, resume: bool, run_name: str = "train"):
        """Continue the run recorded in ``run_dir`` when ``resume`` (training resumed), else start one."""
        import mlflow

        self.mlflow = mlflow
        self.run_dir = Path(run_dir)
        mlflow.set_tracking_uri(params["mlflow"]["tracking_uri"])
        mlflow.set_experiment(params["mlflow"]["experiment"])
        run_id = read_run_id(self.run_dir) if resume else None
        self.run = mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name)
        if run_id is None:
            mlflow.log_params(flatten(params))
            mlflow.set_tags({f"scenesynth.{k}": v for k, v in stand_ins(params).items()})
            write_json(self.run_dir / RUN_FILE, {"run_id": self.run.info.run_id,
                                                 "tracking_uri": params["mlflow"]["tracking_uri"]})

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    def metrics(self, values: dict[str, float], step: int) -> None:
        clean = {k.replace("/", "_"): float(v) for k, v in values.items()}
        self.mlflow.log_metrics(clean, step=step)

    def figure(self, fig, name: str) -> None:
        self.mlflow.log_figure(fig, name)

    def artifact(self, path: str | Path, folder: str | None = None) -> None:
        self.mlflow.log_artifact(str(path), artifact_path=folder)

    def close(self, status: str = "FINISHED") -> None:
        self.mlflow.end_run(status=status)


def read_run_id(run_dir: str | Path) -> str | None:
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())["run_id"]


def log_to_run(params: dict, run_dir: str | Path, metrics: dict[str, float], artifacts: list[Path]) -> str | None:
    """Add evaluation metrics and files to the training run (or a new run if there is none)."""
    import mlflow

    mlflow.set_tracking_uri(params["mlflow"]["tracking_uri"])
    mlflow.set_experiment(params["mlflow"]["experiment"])
    run_id = read_run_id(run_dir)
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else "evaluate") as run:
        if run_id is None:
            mlflow.set_tags({f"scenesynth.{k}": v for k, v in stand_ins(params).items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(v)})
        for path in artifacts:
            mlflow.log_artifact(str(path))
        return run.info.run_id
