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
