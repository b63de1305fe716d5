"""What `make demo` prints at the end: the `scenesynth synthesize` line it prints runs as printed."""

import shlex
import shutil
import subprocess

import soundfile as sf

from conftest import REPO, venv_env
from scenesynth.config import load_params
from scenesynth.report.summary import EXAMPLE_PROMPT, print_summary


def test_the_printed_synthesize_line_runs_as_printed(tiny_model, tmp_path, monkeypatch, capsys):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(REPO / "config", tmp_path / "config")
    (tmp_path / "runs/train").mkdir(parents=True)
    shutil.copy(tiny_model["model"], tmp_path / "runs/train/model.pt")
    monkeypatch.chdir(tmp_path)
    print_summary(load_params("params.yaml", "config/tiny.yaml"))  # as `make demo` runs it, from the project
    printed = {label.strip(): value for label, _, value in
               (line.partition(": ") for line in capsys.readouterr().out.splitlines())}
    line = printed["your own prompts"]
    assert shlex.split(line)[:3] == ["scenesynth", "synthesize", EXAMPLE_PROMPT]
    assert printed["in a browser"] == "scenesynth serve --model runs/train/model.pt --overlay config/tiny.yaml"
    done = subprocess.run(["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True, env=venv_env(),
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wav,) = [tmp_path / p for p in done.stdout.split()]
    assert wav.parent.parent == tmp_path / "outputs/synth" and sf.info(wav).frames > 0


def test_no_line_without_a_model(tmp_path, monkeypatch, capsys, tiny_params):
    monkeypatch.chdir(tmp_path)
    print_summary(tiny_params)
    assert "scenesynth synthesize" not in capsys.readouterr().out


def test_the_summary_names_each_kind_the_worst_kind_and_the_fad_floor(tmp_path, monkeypatch, capsys, tiny_params):
    import json

    monkeypatch.chdir(tmp_path)
    (tmp_path / "metrics").mkdir()
    fad = {"embedding": "logmel_stats", "stand_in": True, "fad_mean": 350.0, "fad_std": 0.0, "paper_fad": 42.075,
           "baseline_fad": 61.276, "real_floor": {"fd_mean": 100.0, "fd_std": 4.0, "n_clips": 60, "draws": 8},
           "fad_over_floor": 3.5}
    reading = {"fg_accuracy": 0.5, "fg_chance": 0.5, "bg_accuracy": 1.0, "bg_chance": 0.5, "n_z": 4,
               "fg_per_kind": {"clock": 0.0, "engine": 1.0}, "fg_worst_kind": "clock",
               "bg_per_kind": {"none": 1.0}, "bg_worst_kind": "none"}
    cond = {"generated": reading, "ceiling": {"fg_accuracy": 1.0, "bg_accuracy": 1.0}, "diversity": {"ratio": 0.2},
            "audio": {"skipped": "not Griffin-Lim"}}
    (tmp_path / "metrics/fad.json").write_text(json.dumps(fad))
    (tmp_path / "metrics/conditioning.json").write_text(json.dumps(cond))
    print_summary(tiny_params)
    out = capsys.readouterr().out
    assert ("  FD floor (real training clips vs the same reference, 60 clips x 8 draws): 100.000 +- 4.000; "
            "this run: 3.50 x its floor") in out
    assert ("  foreground per kind (mel): clock 0.00, engine 1.00; worst: clock (mel); "
            "background per kind (mel): none 1.00; worst: none (mel)") in out
