"""Scoring against the published reference embeddings (no audio): FAD from the same vectors, checks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import soundfile as sf

from conftest import REPO, with_overrides
from scenesynth.config import load_params
from scenesynth.data.dev_set import build_dev_set
from scenesynth.evaluation import evaluate as evaluate_module
from scenesynth.evaluation.reference import ReferenceMismatch

IDS = ["p1", "p2", "p3", "p4", "p5"]
CAPTIONS = ["A bell rings with water in the background", "A dog barks with water in the background",
            "A car passes with traffic in the background", "A door closes with traffic in the background",
            "Someone coughs"]
DIM = 8


class BandEnergies:
    """A tiny deterministic stand-in for PANNs: log energies of 8 FFT bands of the clip."""

    name = "panns_wavegram_logmel"  # what params name; the vectors live in the published folder below
    published_name = "fake-model"
    sample_rate = 32_000
    dim = DIM

    def identity(self) -> dict:
        return {"embedding": "band-energies"}

    def embed(self, wave: np.ndarray) -> np.ndarray:
        spectrum = np.abs(np.fft.rfft(wave)) ** 2
        return np.log(np.array([band.sum() for band in np.array_split(spectrum, DIM)]) + 1e-6)


def independent_fad(generated: np.ndarray, reference: np.ndarray) -> float:
    """FD straight from the formula: numpy statistics and scipy's sqrtm."""
    mu1, mu2 = generated.mean(axis=0), reference.mean(axis=0)
    cov1, cov2 = np.cov(generated, rowvar=False), np.cov(reference, rowvar=False)
    root = scipy.linalg.sqrtm(cov1 @ cov2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(root))


@pytest.fixture
def published(tmp_path, monkeypatch):
    """A dev set in the published layout (captions + embeddings/fake-model/<id>.npy) and 2 seeds of clips."""
    dcase = tmp_path / "dcase"
    (dcase / "download").mkdir(parents=True)
    (dcase / "download/captions.csv").write_text(
        "id,caption\n" + "".join(f"{i}.wav,{c}\n" for i, c in zip(IDS, CAPTIONS)))
    folder = dcase / "published/embeddings/fake-model"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for pid in IDS:
        np.save(folder / f"{pid}.npy", rng.normal(-3.0, 2.0, (1, DIM)).astype(np.float16))
    params = with_overrides(load_params(REPO / "params.yaml"), evaluate={"clap_score": False, "sqrtm_check": True})
    build_dev_set(params, tmp_path / "dev", dcase_dir=dcase)
    for seed in (0, 1):
        (tmp_path / f"gen/seed{seed}").mkdir(parents=True)
        for index, pid in enumerate(IDS):
            wave = np.random.default_rng([seed, index]).uniform(-0.3, 0.3, 128_000).astype(np.float32)
            sf.write(tmp_path / f"gen/seed{seed}/{pid}.wav", wave, 32_000, subtype="PCM_16")
    monkeypatch.setattr(evaluate_module, "get_embedding", lambda *args, **kwargs: BandEnergies())
    return params, tmp_path


def test_fad_equals_an_independent_computation_from_the_same_vectors(published):
    params, root = published
    result = evaluate_module.evaluate(params, root / "gen", root / "dev/manifest.parquet", root / "metrics",
                                      cache=root / "cache")
    fad = result["fad"]
    reference = np.concatenate([np.load(root / f"dcase/published/embeddings/fake-model/{i}.npy") for i in IDS])
    assert {np.load(p).dtype for p in (root / "cache").rglob("*.npy")} == {np.dtype(np.float16)}
    for seed in ("0", "1"):
        clips = [BandEnergies().embed(sf.read(root / f"gen/seed{seed}/{i}.wav", dtype="float32")[0]) for i in IDS]
        generated = np.stack(clips).astype(np.float32).astype(np.float16).astype(np.float64)
        assert fad["fad_per_seed"][seed] == pytest.approx(independent_fad(generated, reference.astype(np.float64)),
                                                          rel=1e-6)
        assert fad["fd_checks"][seed]["sqrtm_delta"] < 1e-3
    assert fad["reference"]["kind"] == "published_embeddings" and fad["reference"]["model"] == "fake-model"
    assert fad["reference"]["paired_with_prompts"] is True and fad["n_prompts"] == 5
    assert set(fad["fad_per_category"]) == {"water", "traffic"}  # "none" has one prompt: no covariance
    table = result["per_prompt"]
    own = np.load(root / "dcase/published/embeddings/fake-model/p3.npy").astype(np.float64)[0]
    p3 = [BandEnergies().embed(sf.read(root / f"gen/seed{s}/p3.wav", dtype="float32")[0])
          .astype(np.float32).astype(np.float16).astype(np.float64) for s in (0, 1)]
    row = table.set_index("prompt_id").loc["p3"]
    assert row["own_reference_distance"] == pytest.approx(np.mean([np.linalg.norm(v - own) for v in p3]))
    assert list(table["rank"]) == [1, 2, 3, 4, 5]
    assert table["own_reference_distance"].is_monotonic_decreasing  # worst first


def test_the_wrong_embedding_or_a_changed_published_file_is_refused(published, monkeypatch):
    params, root = published
    logmel = with_overrides(params, evaluate={"fad_embedding": "logmel_stats"})
    monkeypatch.undo()
    with pytest.raises(ReferenceMismatch, match=r"reference\.json: the FAD reference is the published embeddings of "
                                                r"\['fake-model'\].*'logmel_stats' is not among them"):
        evaluate_module.evaluate(logmel, root / "gen", root / "dev/manifest.parquet", root / "m", cache=root / "c")
    monkeypatch.setattr(evaluate_module, "get_embedding", lambda *args, **kwargs: BandEnergies())
    np.save(root / "dcase/published/embeddings/fake-model/p2.npy", np.zeros((1, DIM), np.float16))
    with pytest.raises(ReferenceMismatch, match=r"p2\.npy: missing or changed since the dev-set stage recorded it"):
        evaluate_module.evaluate(params, root / "gen", root / "dev/manifest.parquet", root / "m", cache=root / "c")
