import json
import shutil

import numpy as np
import pytest
import torch

from scenesynth.pretrained.models import MissingPretrained
from scenesynth.inference.rerank import ClapReranker, prepare_waves
from scenesynth.pretrained.fetch import fetch_pretrained
from scenesynth.pretrained.models import CHECKPOINTS
from tiny_clap import write_tiny_clap_folder

pytestmark = pytest.mark.usefixtures("single_thread")
RATE = 48_000
PROMPT = "a dog barks with traffic in the background"


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return write_tiny_clap_folder(tmp_path_factory.mktemp("clap") / "tiny", seed=3)


def int16_grid_waves(n: int, seconds: float, seed: int) -> np.ndarray:
    """Distinct waves (noise, quieter noise, tones) already on the 16-bit grid, so the re-ranker's
    quantisation leaves them as they are and their scores differ clearly."""
    rng = np.random.default_rng(seed)
    samples = int(seconds * RATE)
    levels = rng.integers(-12000, 12000, size=(n, samples)).astype(np.float64)
    for row in range(n):
        if row % 3 == 1:
            levels[row] = np.round(levels[row] * 0.1)
        elif row % 3 == 2:
            levels[row] = np.round(9000 * np.sin(np.arange(samples) * 0.05 * row))
    return (levels / 32767.0).astype(np.float32)


def independent_scores(folder, waves: np.ndarray, prompt: str) -> np.ndarray:
    """CLAP similarity through transformers' public API only."""
    from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel

    model = ClapModel.from_pretrained(str(folder)).eval()
    features = ClapFeatureExtractor.from_pretrained(str(folder))(list(waves), sampling_rate=RATE, return_tensors="pt")
    tokens = AutoTokenizer.from_pretrained(str(folder))([prompt], return_tensors="pt")
    with torch.inference_mode():
        audio = model.get_audio_features(input_features=features["input_features"].float(),
                                         is_longer=features["is_longer"]).pooler_output
        text = model.get_text_features(**tokens).pooler_output
    return (audio @ text.T)[:, 0].numpy()


def test_fetch_pretrained_then_scores_match_transformers(tiny_folder, tmp_path, static_server):
    ckpt = CHECKPOINTS["clap_rerank"]
    shutil.copytree(tiny_folder, tmp_path / "hub" / ckpt.repo / "resolve" / ckpt.revision)
    folder = fetch_pretrained("clap_rerank", tmp_path / "pretrained", endpoint=static_server(tmp_path / "hub"))
    assert folder == tmp_path / "pretrained" / "clap_rerank"
    reranker = ClapReranker(folder, batch_size=2)
    assert reranker.checkpoint["repo"] == ckpt.repo
    assert reranker.checkpoint["weights_sha256"] == json.loads((folder / "checksums.json").read_text())[
        "pytorch_model.bin"]["sha256"]
    waves = int16_grid_waves(3, 4.0, seed=0)  # the 4 s crops: repeat-padded to 10 s by the extractor
    scores = reranker.scores(waves, PROMPT)
    expected = independent_scores(folder, waves, PROMPT)
    assert scores.shape == (3,) and np.all(np.abs(scores) <= 1.0 + 1e-6)
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    assert np.array_equal(np.argsort(scores), np.argsort(expected))
    np.testing.assert_allclose(ClapReranker(folder, batch_size=8).scores(waves, PROMPT), scores, atol=1e-5)


def test_long_candidates_are_centre_cropped_deterministically(tiny_folder):
    reranker = ClapReranker(tiny_folder)
    waves = int16_grid_waves(2, 10.24, seed=1)  # the 10.24 s candidates
    start = (waves.shape[1] - 480_000) // 2
    first = reranker.scores(waves, PROMPT)
    np.testing.assert_allclose(first, independent_scores(tiny_folder, waves[:, start: start + 480_000], PROMPT),
                               atol=1e-5)
    assert np.array_equal(first, reranker.scores(waves, PROMPT))


def test_prepare_waves_and_errors(tiny_folder, tmp_path):
    out = prepare_waves(np.array([[2.0, -0.5, 0.25, 0.0, 0.1]]), max_samples=3)
    assert out.shape == (1, 3) and out[0, 0] == pytest.approx(-16384 / 32767) and out.max() <= 1.0
    with pytest.raises(ValueError, match=r"\[N, samples\]"):
        prepare_waves(np.zeros(10), 4)
    with pytest.raises(MissingPretrained, match="fetch-pretrained --name clap_rerank") as error:
        ClapReranker(tmp_path / "absent")
    assert str(tmp_path / "absent") in str(error.value)
    partial = tmp_path / "partial"
    shutil.copytree(tiny_folder, partial)
    (partial / "preprocessor_config.json").unlink()
    with pytest.raises(MissingPretrained, match="preprocessor_config.json"):
        ClapReranker(partial)
