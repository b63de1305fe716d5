"""The paper's acquisition rules through Snakemake, against a local copy of GitHub + Hugging Face."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from remote_sources import EXPECTED, build_remote, install_fake_yt_dlp, source_overlay
from test_workflow import project_copy, run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_default_params_plan_the_real_acquisition_jobs(tmp_path):
    project = project_copy(tmp_path)
    out = run(["snakemake", "--cores", "all", "-n"], project)
    jobs = out.stdout + out.stderr
    for rule in ("fetch_audiocaps_csv", "fetch_audiocaps_audio", "fetch_wavcaps", "fetch_dcase_dev", "dev_set", "acquire",
                 "resample", "mel", "text", "train", "generate", "evaluate"):
        assert f"rule {rule}:" in jobs, rule
    assert "scenesynth fetch-wavcaps" in jobs and "--audiocaps data/downloads/audiocaps/manifest.parquet" in jobs


def test_snakemake_acquires_both_sources_then_resamples_even_when_the_dev_set_fails(tmp_path, static_server):
    project = project_copy(tmp_path)
    (tmp_path / "remote").mkdir()
    base_url = static_server(tmp_path / "remote")
    build_remote(tmp_path / "remote", base_url)
    (tmp_path / "remote/zenodo-files/embeddings.tar.xz").unlink()  # the dev set's download fails (HTTP 404)
    overlay = source_overlay(base_url, install_fake_yt_dlp(tmp_path / "bin"))
    (project / "config/sources_local.yaml").write_text(yaml.safe_dump(overlay))
    targets = ["data/raw/manifest.parquet", "data/audio48k/manifest.parquet"]
    config = ["--config", "overlay=config/sources_local.yaml"]
    failed = run(["snakemake", "--cores", "2", *targets, "data/dev/manifest.parquet", *config], project,
                 timeout=300, ok=False)
    assert failed.returncode != 0 and "embeddings.tar.xz" in (project / "logs/fetch_dcase_dev.log").read_text()
    assert not (project / "data/dev/manifest.parquet").exists()  # ... and the training data went on regardless:

    merged = pd.read_parquet(project / "data/raw/manifest.parquet")
    assert set(merged["key"]) == EXPECTED["merged_keys"]
    resampled = pd.read_parquet(project / "data/audio48k/manifest.parquet")
    assert set(resampled["key"]) == set(merged["key"]) and set(resampled["sample_rate"]) == {48000}
    coverage = json.loads((project / "data/downloads/audiocaps/coverage.json").read_text())
    assert coverage["splits"]["train"]["downloaded"] == 3
    assert (project / "logs/fetch_wavcaps.log").read_text().strip()

    # A second run has nothing to do: verified downloads, unchanged settings and code.
    again = run(["snakemake", "--cores", "2", *targets, *config], project)
    assert "Nothing to be done" in again.stdout + again.stderr
