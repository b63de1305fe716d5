"""Nothing lost, nothing unexplained, end to end on a small real DAG run:

- two fresh copies of the project run the same DAG, one of them killed (SIGKILL) during resample, mel
  and train and rerun as the README says: every artifact is byte-identical, leftovers included
  (only the files whose job is to hold timings, run ids and logs differ, and they are named here);
- then the README's own experiment commands run on the finished copy: downloads and fetched models
  (sentinel files) and the workspace's outputs survive, params.yaml is unchanged byte for byte, a
  varied key changes what ran, and the documented comparison command shows the headline metrics
  and the varied parameter in one table.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, venv_env
from test_workflow import project_copy, run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
OVERLAY = "config/repro.yaml"
RUN = ["snakemake", "--cores", "2", "--config", f"overlay={OVERLAY}"]
ARTIFACTS = ("data", "runs", "outputs", "metrics")
# Files whose job is to differ between identical runs: wall-clock timings, the MLflow run id and its
# database, logs. Everything else a run writes must be identical.
NOT_COMPARED = re.compile(r"(^|/)timing\.json$|^runs/train/mlflow_run\.json$|^mlflow\.db$|^mlartifacts/|^logs/"
                          r"|^\.snakemake/|^data/downloads/|^data/pretrained/")


def repro_overlay(project: Path) -> None:
    """The tiny config with enough clips and steps that a kill lands inside each stage."""
    overlay = yaml.safe_load((project / "config/tiny.yaml").read_text())
    overlay["data"]["demo"].update(n_train=160, n_dev=6)
    overlay["mel"]["shard_size"] = 16
    overlay["train"].update(steps=24, checkpoint_every=4, sample_every=24, log_every=2, eval_every=8)
    overlay["generate"]["seeds"] = [0]
    (project / OVERLAY).write_text(yaml.safe_dump(overlay))


def digests(project: Path) -> dict[str, str]:
    out = {}
    for top in ARTIFACTS:
        for path in sorted((project / top).rglob("*")):
            name = path.relative_to(project).as_posix()
            if path.is_file() and not NOT_COMPARED.search(name):
                out[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def run_until_killed(project: Path, ready) -> None:
    """Start the DAG (as the README says after a kill: unlock first), SIGKILL Snakemake and its jobs
    once ``ready()`` holds, leave the rest as it is."""
    run(["snakemake", "--unlock", "--config", f"overlay={OVERLAY}"], project)
    proc = subprocess.Popen(RUN, cwd=project, env=venv_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while not ready() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the DAG ended before the kill"
    assert ready(), "the stage to kill never started"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def rerun_as_the_readme_says(project: Path) -> None:
    run(["snakemake", "--unlock", "--config", f"overlay={OVERLAY}"], project)
    run(RUN, project, timeout=1200)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> dict:
    """Copy A runs straight through; copy B is killed in resample, mel and train and rerun each time."""
    a, b = (project_copy(tmp_path_factory.mktemp(name)) for name in ("a", "b"))
    for project in (a, b):
        repro_overlay(project)
    run(RUN, a, timeout=1200)

    resampled = lambda: len(list((b / "data/audio48k/audio").glob("*.wav"))) >= 20  # noqa: E731
    run_until_killed(b, resampled)
    assert not (b / "data/audio48k/manifest.parquet").exists(), "killed too late: resample had finished"
    rerun_dir = b / "data/mels"
    run_until_killed(b, lambda: rerun_dir.is_dir() and len(list(rerun_dir.glob("*.tar"))) >= 2)
    assert not (rerun_dir / "index.json").exists(), "killed too late: mel had finished"
    checkpoint = b / "runs/train/checkpoints/last.pt"
    run_until_killed(b, checkpoint.exists)
    assert not (b / "runs/train/model.pt").exists(), "killed too late: training had finished"
    rerun_as_the_readme_says(b)
    return {"a": a, "b": b}


def test_a_killed_and_resumed_run_equals_an_uninterrupted_one_byte_for_byte(finished):
    a, b = digests(finished["a"]), digests(finished["b"])
    assert len(a) > 100 and "runs/train/model.pt" in a and "runs/train/checkpoints/last.pt" in a
    assert sorted(a) == sorted(b), f"only in one copy: {sorted(set(a) ^ set(b))[:10]}"  # no leftovers either
    assert [n for n in a if a[n] != b[n]] == []
    for project in finished.values():
        assert (project / "runs/train/timing.json").is_file() and (project / "outputs/dev/timing.json").is_file()


def readme_experiment_commands() -> list[list[str]]:
    """The command block of the README's "Experiments" section, for the test's overlay."""
    section = (REPO / "README.md").read_text().split("## Experiments", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.splitlines()]
    return [shlex.split(c.replace("config/demo.yaml", OVERLAY)) for c in commands
            if c and not c.startswith(". ")]


def test_readme_experiments_keep_downloads_workspace_and_params_and_compare_what_ran(finished):
    project = finished["a"]
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.invalid", "commit", "-qm", "project"]):
        run(cmd, project)
    sentinels = [project / "data/downloads/audiocaps/audio/SENTINEL.flac", project / "data/pretrained/panns/SENTINEL"]
    for path in sentinels:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"days of downloading")
    workspace, params = digests(project), (project / "params.yaml").read_bytes()

    commands = readme_experiment_commands()
    assert [c[:3] for c in commands[:-1]] == [["dvc", "exp", "run"]] * (len(commands) - 1)
    shown = None
    for cmd in commands:
        shown = run(cmd, project, timeout=1200).stdout

    assert all(path.read_bytes() == b"days of downloading" for path in sentinels)
    assert (project / "params.yaml").read_bytes() == params
    after = digests(project)
    # The embedding cache is shared like the downloads (content-addressed, append-only): experiments
    # add entries for their clips; nothing that was there changes or goes.
    cached = {name for name in after if name.startswith("data/cache/")}
    assert {k: v for k, v in after.items() if k not in cached} == {k: v for k, v in workspace.items()
                                                                   if not k.startswith("data/cache/")}
    assert all(after.get(name) == digest for name, digest in workspace.items() if name.startswith("data/cache/"))
    varied = next(arg.split("=")[0] for cmd in commands for arg in cmd
                  if "=" in arg and not arg.startswith(("overlay=", "-")))
    header = next(line for line in shown.splitlines() if "Experiment" in line)
    assert "fad_mean" in header and varied in header  # --only-changed: what differs between the runs
    assert "src/" not in shown and "data/" not in header  # code and data hashes stay out of the headline
    table = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    runs = {rev["name"]: rev["data"] for commit in table for exp in commit.get("experiments") or []
            for rev in exp["revs"]}

    def setting(data: dict):
        node = data["params"]["params.yaml"]["data"]
        for part in varied.split("."):
            node = node[part]
        return node

    values = {name: (setting(data), data["metrics"]["metrics/headline.json"]["data"]) for name, data in runs.items()}
    assert len(values) == len(commands) - 1
    (set_1, head_1), (set_2, head_2) = values.values()
    assert set_1 != set_2 and head_1["fad_mean"] != head_2["fad_mean"]
    assert {"cond_fg_accuracy", "cond_fg_chance", "fad_std"} <= set(head_1)
    assert head_1["ran_with"]["overlay"] == OVERLAY
