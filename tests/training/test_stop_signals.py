"""SIGTERM / SIGUSR1 stop `scenesynth train` with a checkpoint at the step it is at, and the same
command then resumes to the very model file an uninterrupted run writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from conftest import REPO, TINY_OVERLAY, venv_env
from scenesynth.training.stop_signals import RESUMABLE_EXIT

STEPS = 24  # checkpoints only at the end: a signal always lands between scheduled checkpoints


@pytest.fixture(scope="module")
def overlay(tmp_path_factory, mlflow_uri):
    """One overlay file for every run (the model file records its path)."""
    settings = yaml.safe_load(TINY_OVERLAY.read_text())
    settings["train"].update(steps=STEPS, checkpoint_every=1000, sample_every=1000, log_every=1, cpu_threads=1,
                             eval_every=0)
    settings["mlflow"] = {"tracking_uri": mlflow_uri, "experiment": "stop-test"}
    path = tmp_path_factory.mktemp("stop_overlay") / "overlay.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def train_command(out, tiny_data, overlay) -> list[str]:
    return [sys.executable, "-m", "scenesynth.cli", "train", "--params", str(REPO / "params.yaml"),
            "--overlay", str(overlay), "--shards", str(tiny_data["mels"]), "--text", str(tiny_data["text"]),
            "--out", str(out / "run"), "--metrics", str(out / "train.json")]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_data, overlay):
    out = tmp_path_factory.mktemp("straight")
    done = subprocess.run(train_command(out, tiny_data, overlay), env=venv_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return (out / "run" / "model.pt").read_bytes()


def stop_midway(cmd: list[str], signum: int, after_step: int = 5) -> tuple[subprocess.CompletedProcess, float]:
    """Start the command, send `signum` once it has logged `after_step`; (its result, seconds to exit)."""
    proc = subprocess.Popen(cmd, env=venv_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if f"step {after_step}:" in line:
            break
    sent = time.perf_counter()
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(cmd, proc.returncode, "".join(lines) + out, ""), time.perf_counter() - sent


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_signal_stops_with_a_checkpoint_and_the_rerun_ends_with_the_same_model_bytes(
        tmp_path, tiny_data, overlay, uninterrupted, signum):
    cmd = train_command(tmp_path, tiny_data, overlay)
    stopped, seconds = stop_midway(cmd, signum)
    assert stopped.returncode == RESUMABLE_EXIT, stopped.stdout[-2000:]
    assert seconds < 60
    name = signal.Signals(signum).name
    assert f"stopped early by {name} at step" in stopped.stdout and "resumable" in stopped.stdout
    run = tmp_path / "run"
    saved = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert 5 <= saved["step"] < STEPS and not (run / "model.pt").exists()
    assert saved["stream_drawn"] > 0  # written between scheduled checkpoints: the fast-forward is exercised

    resumed = subprocess.run(cmd, env=venv_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"at step {saved['step']}" in resumed.stderr
    assert (run / "model.pt").read_bytes() == uninterrupted


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_a_signal_to_the_whole_process_group_with_loader_workers_still_stops_with_a_checkpoint(
        tmp_path, tiny_data, overlay, signum):
    """SLURM signals every process of the job step: the DataLoader workers too. They ignore it; the
    training stops as above instead of failing on a killed worker."""
    settings = yaml.safe_load(overlay.read_text())
    settings["train"]["num_workers"] = 2
    with_workers = tmp_path / "workers.yaml"
    with_workers.write_text(yaml.safe_dump(settings))
    proc = subprocess.Popen(train_command(tmp_path, tiny_data, with_workers), env=venv_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "step 3:" in line:
            break
    os.killpg(proc.pid, signum)
    out, _ = proc.communicate(timeout=120)
    log = "".join(lines) + out
    assert proc.returncode == RESUMABLE_EXIT, log[-3000:]
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert 3 <= saved["step"] < STEPS and saved["stream_drawn"] > 0
