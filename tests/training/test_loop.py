import json
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from conftest import REPO, TINY_OVERLAY, venv_env, with_overrides
from scenesynth.training import loop
from scenesynth.training.loop import TrainingDiverged, train


def generator_weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["generator"]


def test_training_writes_model_metrics_and_mlflow_run(tiny_model):
    summary, run = tiny_model["summary"], tiny_model["run"]
    assert summary["steps"] == 4 and summary["device"] == "cpu"
    assert summary["stand_in.text.encoder"] == "hash"
    saved = torch.load(run / "model.pt", map_location="cpu", weights_only=True)
    assert saved["step"] == 4 and saved["stand_ins"]["generate.vocoder"] == "griffin_lim"
    assert (run / "checkpoints" / "last.pt").is_file()
    assert json.loads((run / "mlflow_run.json").read_text())["run_id"] == summary["mlflow_run_id"]
    assert list((run / "samples").glob("*.wav"))
    assert all(torch.isfinite(torch.tensor(v)) for v in summary["last_losses"].values())


def test_resumed_run_matches_uninterrupted_run(tmp_path, tiny_model, tiny_data):
    """2 steps, stop, resume to 4 == 4 steps in one go (bit-identical on CPU); also shows determinism."""
    params = tiny_model["params"]
    train(params, tiny_data["mels"], tiny_data["text"], tmp_path, tmp_path / "m.json", max_steps=2)
    assert torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["step"] == 2
    summary = train(params, tiny_data["mels"], tiny_data["text"], tmp_path, tmp_path / "m.json")
    assert summary["steps_this_run"] == 2
    resumed, straight = generator_weights(tmp_path / "model.pt"), generator_weights(tiny_model["model"])
    assert resumed.keys() == straight.keys()
    for name in straight:
        assert torch.equal(resumed[name], straight[name]), name


def test_a_stop_at_max_steps_between_checkpoints_resumes_as_if_uninterrupted(tmp_path, tiny_model, tiny_data):
    """--max-steps 1 with checkpoint_every 2: the checkpoint is off schedule, so the resumed run draws the batch
    stream the uninterrupted run was in (not a fresh one from step 1): 1 step, stop, resume to 4 == 4 in one go."""
    params = tiny_model["params"]
    assert params["train"]["checkpoint_every"] == 2 and params["train"]["steps"] == 4
    train(params, tiny_data["mels"], tiny_data["text"], tmp_path, tmp_path / "m.json", max_steps=1)
    saved = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert saved["step"] == 1 and saved["stream_drawn"] == params["train"]["d_steps"]  # one batch per D update
    train(params, tiny_data["mels"], tiny_data["text"], tmp_path, tmp_path / "m.json")
    resumed, straight = generator_weights(tmp_path / "model.pt"), generator_weights(tiny_model["model"])
    for name in straight:
        assert torch.equal(resumed[name], straight[name]), name


def test_changed_settings_do_not_resume(tmp_path, tiny_model, tiny_data):
    params = tiny_model["params"]
    train(params, tiny_data["mels"], tiny_data["text"], tmp_path, tmp_path / "m.json", max_steps=2)
    other = with_overrides(params, train={"lr_g": 3e-4})
    summary = train(other, tiny_data["mels"], tiny_data["text"], tmp_path, tmp_path / "m.json", max_steps=2)
    assert summary["steps_this_run"] == 2  # started afresh, not from step 2


def test_non_finite_loss_stops_with_step_and_loss_named(tmp_path, tiny_model, tiny_data, monkeypatch):
    params = with_overrides(tiny_model["params"], train={"checkpoint_every": 1})
    train(params, tiny_data["mels"], tiny_data["text"], tmp_path, tmp_path / "m.json", max_steps=1)
    before = (tmp_path / "checkpoints" / "last.pt").read_bytes()
    real_objective = loop.discriminator_objective

    def poisoned(*args, **kwargs):
        loss, logs = real_objective(*args, **kwargs)
        return loss * float("nan"), {**logs, "d/total": float("nan")}

    monkeypatch.setattr(loop, "discriminator_objective", poisoned)
    with pytest.raises(TrainingDiverged, match=r"step 1: loss d/total = nan.*last good checkpoint is kept"):
        train(params, tiny_data["mels"], tiny_data["text"], tmp_path, tmp_path / "m.json", max_steps=3)
    assert (tmp_path / "checkpoints" / "last.pt").read_bytes() == before


@pytest.mark.slow
def test_killed_training_resumes_from_checkpoint(tmp_path, tiny_data, mlflow_uri):
    """SIGKILL a real `scenesynth train` process after a checkpoint, rerun it: it resumes."""
    overlay = yaml.safe_load(TINY_OVERLAY.read_text())
    overlay["train"].update(steps=400, checkpoint_every=2, sample_every=1000, eval_every=0)  # no dev set here
    overlay["mlflow"] = {"tracking_uri": mlflow_uri, "experiment": "kill-test"}
    (tmp_path / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    cmd = [sys.executable, "-m", "scenesynth.cli", "train", "--params", str(REPO / "params.yaml"),
           "--overlay", str(tmp_path / "overlay.yaml"), "--shards", str(tiny_data["mels"]),
           "--text", str(tiny_data["text"]), "--out", str(tmp_path / "run"), "--metrics", str(tmp_path / "m.json")]
    checkpoint = tmp_path / "run" / "checkpoints" / "last.pt"
    proc = subprocess.Popen(cmd, env=venv_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert checkpoint.exists(), "no checkpoint was written before the kill"
    killed_at = torch.load(checkpoint, weights_only=True)["step"]
    assert killed_at >= 2 and not (tmp_path / "run" / "model.pt").exists()
    done = subprocess.run(cmd + ["--max-steps", str(killed_at + 2)], env=venv_env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"at step {killed_at}" in done.stderr
    summary = json.loads((tmp_path / "m.json").read_text())
    timing = json.loads((tmp_path / "run" / "timing.json").read_text())
    assert summary["steps"] == killed_at + 2 and timing["steps_this_run"] == 2
    # The MLflow run continued, and each step's losses are there once, whatever the killed run had logged.
    from mlflow.tracking import MlflowClient

    run_id = json.loads((tmp_path / "run" / "mlflow_run.json").read_text())["run_id"]
    steps = [m.step for m in MlflowClient(tracking_uri=mlflow_uri).get_metric_history(run_id, "g_total")]
    assert sorted(steps) == list(range(1, killed_at + 3))
    # Resumed at its last step, a run trains nothing and keeps the losses it ended with.
    again = subprocess.run(cmd + ["--max-steps", str(killed_at + 2)], env=venv_env(), capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "timing.json").read_text())["steps_this_run"] == 0
    assert json.loads((tmp_path / "m.json").read_text())["last_losses"] == summary["last_losses"] != {}
