"""MLflow logging: one run per training run, resumed with it, evaluated into it.

The run id is kept in the run folder, so a resumed training continues the same MLflow run (without
logging again the steps it had logged before it was stopped) and the evaluate stage adds its
metrics beside the training curves.

Every run says what made it: the git commit and whether the tree had uncommitted changes, the hash
of the training data (the shard hashes and text cache the checkpoint fingerprint is made of), the
sha256 of dvc.lock, the DVC experiment it belongs to, and which parts were offline stand-ins. Its
name says what differs: the overlay and the settings changed against the last commit.

Where things are: a relative `sqlite:///mlflow.db` is the project's own database, also for an
experiment DVC runs in a temporary copy of the project (paths.project_root), and the experiment
keeps its artifacts beside the database, in the project's `mlartifacts/`. MLflow stores that
location as an absolute path; a database copied or moved with its checkout would keep writing
into the old tree, so such an experiment is renamed aside (its runs stay) and a new one is made.
A tracking server (http://...) decides where its artifacts go.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
from pathlib import Path

import numpy as np

from scenesynth import paths
from scenesynth.config import committed_version, flatten
from scenesynth.utils.atomic import write_json

log = logging.getLogger(__name__)
RUN_FILE = "mlflow_run.json"
ARTIFACTS = "mlartifacts"
LOCAL_SQLITE = "sqlite:///"
# MLflow 3 opens an experiment without this tag in its GenAI view ("Traces"); this one is model training.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
CURVE_KEY = "g_total"  # logged at every logging step: tells how far a resumed run had logged


def stand_ins(params: dict) -> dict[str, str]:
    """Which parts are real and which are offline stand-ins: recorded on every run."""
    return {
        "data.source": params["data"]["source"],
        "text.encoder": params["text"]["encoder"],
        "generate.vocoder": params["generate"]["vocoder"],
        "evaluate.fad_embedding": params["evaluate"]["fad_embedding"],
        "overlay": str(params["overlay"]),
    }


def tracking_uri(params: dict) -> str:
    """params' tracking URI, a relative SQLite file made absolute in the project's root."""
    uri = params["mlflow"]["tracking_uri"]
    if uri.startswith(LOCAL_SQLITE) and not uri.startswith(LOCAL_SQLITE + "/"):
        return LOCAL_SQLITE + str(paths.project_root().resolve() / uri[len(LOCAL_SQLITE):])
    return uri


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def provenance(data_hash: str | None = None) -> dict[str, str]:
    """Tags that say which code, data and pipeline state made a run."""
    tags = {"scenesynth.git_commit": _git("rev-parse", "HEAD") or "unknown"}
    status = _git("status", "--porcelain", "--untracked-files=no")
    tags["scenesynth.git_dirty"] = "unknown" if status is None else str(bool(status)).lower()
    lock = Path("dvc.lock")
    tags["scenesynth.dvc_lock_sha256"] = hashlib.sha256(lock.read_bytes()).hexdigest() if lock.is_file() else "none"
    for env, tag in (("DVC_EXP_NAME", "dvc_experiment"), ("DVC_EXP_BASELINE_REV", "dvc_baseline_rev")):
        if os.environ.get(env):
            tags[f"scenesynth.{tag}"] = os.environ[env]
    if data_hash:
        tags["scenesynth.data_hash"] = data_hash
    return tags


def run_name(params: dict, params_path: str | Path = "params.yaml") -> str:
    """What differs: the DVC experiment's name, the overlay, and the settings changed against the last
    commit (e.g. by `dvc exp run -S train.lr_g=2e-4`)."""
    label = [Path(str(params["overlay"])).stem if params["overlay"] else "paper"]
    path = Path(params_path)
    committed = committed_version(path) if path.is_file() else None
    if committed is not None:
        import yaml

        now, before = flatten(yaml.safe_load(path.read_text()) or {}), flatten(committed)
        label += [f"{key}={now[key]}" for key in sorted(now) if key != "overlay" and now[key] != before.get(key)]
    name = " ".join(label)
    return f"{os.environ['DVC_EXP_NAME']}: {name}" if os.environ.get("DVC_EXP_NAME") else name


def open_experiment(mlflow, params: dict) -> str:
    """The experiment's id, made if needed with its artifacts in the project and the training view."""
    from mlflow.tracking import MlflowClient

    name, client = params["mlflow"]["experiment"], MlflowClient()
    uri = tracking_uri(params)
    artifacts = Path(uri[len(LOCAL_SQLITE):]).parent / ARTIFACTS if uri.startswith(LOCAL_SQLITE) else None
    experiment = client.get_experiment_by_name(name)
    if experiment is not None and artifacts is not None and _elsewhere(experiment.artifact_location, artifacts):
        moved = f"{name} (from {Path(experiment.artifact_location).parent})"
        log.warning("MLflow experiment %r keeps its artifacts in %s, outside this project (the database was "
                    "copied or moved): renamed it %r; its runs stay there", name, experiment.artifact_location, moved)
        client.rename_experiment(experiment.experiment_id, moved)
        experiment = None
    if experiment is None:
        experiment_id = client.create_experiment(name, artifact_location=str(artifacts) if artifacts else None,
                                                 tags=EXPERIMENT_KIND)
    else:
        experiment_id = experiment.experiment_id
        if experiment.tags.get("mlflow.experimentKind") is None:
            client.set_experiment_tag(experiment_id, *next(iter(EXPERIMENT_KIND.items())))
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def _elsewhere(location: str, artifacts: Path) -> bool:
    """True for a local artifact folder that is not this project's."""
    if "://" in location and not location.startswith("file://"):
        return False
    return Path(location.removeprefix("file://")).resolve() != artifacts


class Tracker:
    """Thin wrapper so that the training code does not depend on MLflow's globals."""

    def __init__(self, params: dict, run_dir: str | Path, resume: bool, data_hash: str | None = None):
        """Continue the run recorded in ``run_dir`` when ``resume`` (training resumed), else start one."""
        import mlflow

        self.mlflow = mlflow
        self.run_dir = Path(run_dir)
        mlflow.set_tracking_uri(tracking_uri(params))
        open_experiment(mlflow, params)
        run_id = read_run_id(self.run_dir) if resume else None
        self.run = mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name(params))
        self.logged_up_to = self._last_logged_step() if run_id else -1
        if run_id is None:
            mlflow.log_params(flatten(params))
            mlflow.set_tags({**{f"scenesynth.{k}": v for k, v in stand_ins(params).items()}, **provenance(data_hash)})
            write_json(self.run_dir / RUN_FILE, {"run_id": self.run.info.run_id,
                                                 "tracking_uri": params["mlflow"]["tracking_uri"]})

    def _last_logged_step(self) -> int:
        history = self.mlflow.tracking.MlflowClient().get_metric_history(self.run_id, CURVE_KEY)
        return max((m.step for m in history), default=-1)

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    def metrics(self, values: dict[str, float], step: int) -> None:
        """Log the loss curves at ``step``; a resumed run skips the steps it had logged before it stopped."""
        if step <= self.logged_up_to:
            return
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

    mlflow.set_tracking_uri(tracking_uri(params))
    open_experiment(mlflow, params)
    run_id = read_run_id(run_dir)
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else f"evaluate {run_name(params)}") as run:
        if run_id is None:
            mlflow.set_tags({**{f"scenesynth.{k}": v for k, v in stand_ins(params).items()}, **provenance()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(v)})
        for path in artifacts:
            mlflow.log_artifact(str(path))
        return run.info.run_id
