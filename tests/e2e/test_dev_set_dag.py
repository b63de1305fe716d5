"""The paper's dev set through the DAG against a local Zenodo, then `scenesynth evaluate` on a folder of
WAVs made outside the pipeline: FAD against the published embeddings, equal to an independent computation."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import yaml

from remote_sources import DEV_PROMPTS, build_remote, install_fake_yt_dlp, source_overlay
from scenesynth.evaluation.panns import WavegramLogmelCnn14
from scenesynth.pretrained.models import CHECKPOINTS
from test_workflow import project_copy, run
from tiny_clap import write_tiny_clap_folder

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
PANNS_FILE = "Wavegram_Logmel_Cnn14_mAP=0.439.pth"


def serve_models(root, base_url) -> None:
    """Zenodo record 3987831 with a random-weight PANNs 16x narrower than the public one (same keys, real
    format; its 2048-d embedding matches the published vectors' size) and a tiny CLAP as clap_rerank."""
    torch.manual_seed(0)
    panns = root / "files" / PANNS_FILE
    panns.parent.mkdir(parents=True)
    torch.save({"model": WavegramLogmelCnn14(width_divisor=16).state_dict()}, panns)
    record = {"files": [{"key": PANNS_FILE, "size": panns.stat().st_size,
                         "checksum": "md5:" + hashlib.md5(panns.read_bytes()).hexdigest(),
                         "links": {"self": f"{base_url}/files/{PANNS_FILE}"}}]}
    (root / "api/records/3987831").write_text(json.dumps(record))
    rerank = CHECKPOINTS["clap_rerank"]
    write_tiny_clap_folder(root / rerank.repo / "resolve" / rerank.revision)


def outside_clips(folder) -> None:
    """Another system's outputs: 48 kHz stereo float WAVs of 4 s named after the prompt ids."""
    folder.mkdir()
    for index, (pid, _) in enumerate(DEV_PROMPTS):
        rng = np.random.default_rng(index)
        stereo = rng.uniform(-0.3, 0.3, (192_000, 2)) * np.array([1.0, 0.5 + 0.2 * index])
        sf.write(folder / f"{pid}.wav", stereo.astype(np.float32), 48_000, subtype="FLOAT")


def independent_fad(generated: np.ndarray, reference: np.ndarray) -> float:
    """FD from the vectors alone: Tr((C1 C2)^1/2) is the nuclear norm of A1 A2^T / sqrt((n1-1)(n2-1))."""
    a1, a2 = generated - generated.mean(axis=0), reference - reference.mean(axis=0)
    n1, n2 = len(generated), len(reference)
    nuclear = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1))
    return float(np.sum((generated.mean(axis=0) - reference.mean(axis=0)) ** 2)
                 + np.sum(a1 ** 2) / (n1 - 1) + np.sum(a2 ** 2) / (n2 - 1) - 2 * nuclear)


def test_the_published_dev_set_is_fetched_by_the_dag_and_scores_an_outside_folder(tmp_path, static_server):
    project = project_copy(tmp_path)
    (tmp_path / "remote").mkdir()
    base_url = static_server(tmp_path / "remote")
    build_remote(tmp_path / "remote", base_url)
    serve_models(tmp_path / "remote", base_url)
    overlay = source_overlay(base_url, install_fake_yt_dlp(tmp_path / "bin"))
    overlay["pretrained"] = {"zenodo_api": f"{base_url}/api", "hf_endpoint": base_url}
    overlay["evaluate"] = {"sqrtm_check": False}  # scipy's sqrtm of a 2048 x 2048 product: minutes on 2 cores
    (project / "config/local.yaml").write_text(yaml.safe_dump(overlay))
    config = ["--config", "overlay=config/local.yaml"]
    targets = ["data/dev/manifest.parquet", "data/pretrained/panns/source.json",
               "data/pretrained/clap_rerank/source.json"]
    run(["snakemake", "--cores", "2", *targets, *config], project, timeout=300)

    reference = json.loads((project / "data/dev/reference.json").read_text())
    assert reference["kind"] == "published_embeddings" and reference["n_prompts"] == 3
    dev = pd.read_parquet(project / "data/dev/manifest.parquet")
    assert list(dev["key"]) == ["001", "002", "003"] and set(dev["path"]) == {""}

    outside = tmp_path / "other_system"
    outside_clips(outside)
    cli = ["scenesynth", "evaluate", "--params", "params.yaml", "--overlay", "config/local.yaml",
           "--generated", str(outside)]
    first = run(cli, project, timeout=300)
    printed = first.stdout.splitlines()
    assert "embeddings: 3 computed" in first.stderr
    assert printed[0].startswith("FAD (panns_wavegram_logmel, NOT comparable with the paper): ")
    assert "against Zenodo record 10869644" in printed[0]
    assert printed[1].startswith("CLAP score (clap_rerank): ") and printed[2].startswith("per-prompt scores: ")

    fad = json.loads((project / "metrics/fad.json").read_text())
    assert fad["width_divisor"] == 16 and fad["comparable_to_paper"] is False  # the narrow stand-in says so
    assert list(fad["fad_per_seed"]) == ["all"]
    published = np.concatenate([np.load(project / "data/downloads/dcase_dev/published/embeddings/panns-wavegram-logmel"
                                        / f"{pid}.npy") for pid, _ in DEV_PROMPTS]).astype(np.float64)
    cache = {p.stem: p for p in (project / "data/cache/embeddings").rglob("*.npy")}
    digests = [hashlib.sha256((outside / f"{pid}.wav").read_bytes()).hexdigest() for pid, _ in DEV_PROMPTS]
    generated = np.concatenate([np.load(cache[d]) for d in digests]).astype(np.float64)
    assert fad["fad_per_seed"]["all"] == pytest.approx(independent_fad(generated, published), rel=1e-6)
    clap = json.loads((project / "metrics/clap_score.json").read_text())
    table = pd.read_csv(project / "metrics/per_prompt.csv", dtype={"prompt_id": str})
    assert clap["computed"] and table["clap_score"].mean() == pytest.approx(clap["clap_score_mean"])
    assert sorted(table["prompt_id"]) == ["001", "002", "003"] and table["own_reference_distance"].notna().all()

    written = (project / "metrics/fad.json").read_bytes()
    again = run(cli, project, timeout=300)
    assert "embeddings: 0 computed" in again.stderr and again.stdout.splitlines()[0] == printed[0]
    assert (project / "metrics/fad.json").read_bytes() == written
