"""The real DAG, end to end, on the tiny demo config: Snakemake, then DVC experiments."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, venv_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
PROJECT_FILES = ("Snakefile", "workflow", "profiles", "config", "params.yaml", "dvc.yaml", "src", ".gitignore",
                 ".dvcignore", ".dvc/config", ".dvc/.gitignore")
TINY = ["--config", "overlay=config/tiny.yaml"]


def project_copy(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, project / name)
    return project


def run(cmd: list[str], cwd: Path, timeout: int = 600, ok: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=venv_env(), capture_output=True, text=True, timeout=timeout)
    if ok:
        assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def planned_rules(project: Path, config: list[str] = TINY) -> set[str]:
    """Rules a dry run would execute (from Snakemake's job-stats table)."""
    out = run(["snakemake", "--cores", "2", "-n", *config], project)
    text = out.stdout + out.stderr
    if "Nothing to be done" in text:
        return set()
    rules, in_table = set(), False
    for line in text.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
            continue
        if in_table:
            if len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
                rules.add(parts[0])
            elif parts and parts[0] == "total":
                break
    return rules


def test_invalid_params_stop_before_any_job(tmp_path):
    project = project_copy(tmp_path)
    overlay = yaml.safe_load((project / "config/tiny.yaml").read_text())
    overlay["train"]["bogus_rate"] = 1
    (project / "config/tiny.yaml").write_text(yaml.safe_dump(overlay))
    done = run(["snakemake", "--cores", "2", *TINY], project, ok=False)
    assert done.returncode != 0
    assert "unknown key train.bogus_rate" in done.stdout + done.stderr
    assert not (project / "logs").exists()


def test_snakemake_runs_the_whole_dag_and_reruns_only_what_changed(tmp_path):
    project = project_copy(tmp_path)
    run(["snakemake", "--cores", "2", "data/raw/manifest.parquet", *TINY], project)
    manifest = pd.read_parquet(project / "data/raw/manifest.parquet")
    train_keys = sorted(manifest.query("split == 'train'")["key"])
    (project / "data/raw" / f"audio/{train_keys[0]}.wav").write_bytes(b"RIFF\x00\x00garbage")
    (project / "data/raw" / f"audio/{train_keys[1]}.wav").write_bytes(b"")

    started = time.perf_counter()
    run(["snakemake", "--cores", "2", *TINY], project, timeout=900)
    print(f"tiny DAG: {time.perf_counter() - started:.1f} s")

    rejects = pd.read_csv(project / "data/audio48k/rejects.csv")
    assert dict(zip(rejects["key"], rejects["reason"])) == {
        train_keys[0]: rejects["reason"].iloc[0], train_keys[1]: "empty file (0 bytes)"}
    assert rejects["reason"].iloc[0].startswith("unreadable audio")
    index = json.loads((project / "data/mels/index.json").read_text())
    assert index["n_samples"] == len(train_keys) - 2
    n_dev = int((manifest["split"] == "dev").sum())
    assert len(list((project / "outputs/dev").glob("seed*/*.wav"))) == 2 * n_dev
    fad = json.loads((project / "metrics/fad.json").read_text())
    assert fad["embedding"] == "logmel_stats" and fad["stand_in"] and fad["n_prompts"] == n_dev
    train = json.loads((project / "metrics/train.json").read_text())  # train.eval_every 2 of config/tiny.yaml
    assert [e["step"] for e in train["eval_history"]] == [2, 4] and train["best_step"] in (2, 4)
    assert (project / "runs/train/checkpoints/best.pt").is_file()
    assert 'id="curves"' in (project / "outputs/report/metrics.html").read_text()
    headline = json.loads((project / "metrics/headline.json").read_text())
    assert headline["fad_ci_low"] <= headline["fad_mean"] <= headline["fad_ci_high"]
    for rule in ("acquire", "resample", "mel", "text", "train", "resynth_reference", "generate", "evaluate"):
        assert (project / "logs" / f"{rule}.log").is_file()
    for rule in ("resample", "mel", "train", "resynth_reference", "generate", "evaluate"):
        assert (project / "logs/benchmarks" / f"{rule}.tsv").is_file()
    evaluate_log = (project / "logs/evaluate.log").read_text()  # the audio reading's real clips: made beside training
    assert "'train' clips read, already resynthesised" in evaluate_log and "again here" not in evaluate_log
    assert (project / "mlflow.db").is_file()

    # Timestamps do not matter (a DVC checkout rewrites them) ...
    assert planned_rules(project) == set()
    later = time.time() + 60
    for path in (project / "data").rglob("*"):
        os.utime(path, (later, later))
    assert planned_rules(project) == set()
    # ... settings do: a training setting reruns training and what follows it, nothing upstream.
    overlay = yaml.safe_load((project / "config/tiny.yaml").read_text())
    overlay["train"]["lr_d"] = 2e-4
    (project / "config/tiny.yaml").write_text(yaml.safe_dump(overlay))
    assert planned_rules(project) == {"train", "generate", "evaluate", "report_assets", "all"}
