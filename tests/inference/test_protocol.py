"""The protocol of docs/paper.md section 5 with known scores: the best candidate and the best crop are kept.

Stand-ins with scores chosen by the test replace CLAP, the discriminator and the vocoder, so a
re-ranking that keeps the worst (argmin), the first, or a crop of another candidate fails here.
"""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from scenesynth.inference.protocol import best_candidate, pick_clip, random_crops, to_output_rate

RATE, OUT_RATE = 48000, 32000
CANDIDATE_SCORES = [0.10, 0.70, -0.30, 0.40]      # best: candidate 1
CROP_SCORES = [0.20, -0.50, 0.90, 0.10, 0.30]     # best: crop 2
GEN_CFG = {"crop_seconds": 0.05, "n_crops": len(CROP_SCORES), "sample_rate": OUT_RATE}


def candidate_mels(n: int) -> torch.Tensor:
    """[n, 1, 2, 8] mels whose values name their candidate."""
    return torch.arange(n, dtype=torch.float32)[:, None, None, None].expand(n, 1, 2, 8).clone()


def vocoder(mels: np.ndarray, seed: int) -> np.ndarray:
    """Candidate i -> level 0.1 (i + 1) plus a ramp, so every crop of every candidate differs."""
    ramp = np.linspace(0.0, 0.05, RATE // 5, dtype=np.float32)
    return np.stack([0.1 * (m[0, 0] + 1) + ramp for m in mels]).astype(np.float32)


class KnownScores:
    """CLAP's interface; returns the test's scores and remembers what it was asked to score."""

    def __init__(self):
        self.calls = []

    def scores(self, waves: np.ndarray, prompt: str) -> np.ndarray:
        self.calls.append(np.array(waves))
        return np.array(CANDIDATE_SCORES if len(self.calls) == 1 else CROP_SCORES, dtype=np.float32)


def discriminator_with_scores(scores: list[float]):
    """A discriminator whose G2S cosine similarity for candidate i is scores[i]."""
    s = torch.tensor(scores)
    audio = torch.stack([s, torch.sqrt(1 - s**2)], dim=1)

    def forward(mels, text):
        return SimpleNamespace(audio_embed=audio, text_embed=torch.tensor([[1.0, 0.0]]).expand(len(scores), 2))
    return forward


def test_clap_keeps_the_best_candidate_and_then_its_best_crop():
    reranker = KnownScores()
    mels = candidate_mels(len(CANDIDATE_SCORES))
    clip, choice = pick_clip(mels, "a dog barks", None, None, vocoder, reranker, GEN_CFG, RATE, 0,
                             np.random.default_rng(7))
    best, best_crop = int(np.argmax(CANDIDATE_SCORES)), int(np.argmax(CROP_SCORES))
    assert (choice["candidate"], choice["crop"]) == (best, best_crop)
    assert choice["score"] == pytest.approx(CANDIDATE_SCORES[best])
    assert choice["crop_score"] == pytest.approx(CROP_SCORES[best_crop])
    assert choice["scores"] == pytest.approx(CANDIDATE_SCORES) and choice["crop_scores"] == pytest.approx(CROP_SCORES)
    candidates, crops = reranker.calls
    assert len(candidates) == len(CANDIDATE_SCORES) and len(crops) == len(CROP_SCORES)
    # the crops are cut from the winning candidate's audio, and the clip is the winning crop at 32 kHz
    level = 0.1 * (best + 1)
    assert crops.min() >= level - 1e-6 and crops.max() <= level + 0.05 + 1e-6
    np.testing.assert_array_equal(clip, to_output_rate(crops[best_crop], RATE, OUT_RATE, GEN_CFG["crop_seconds"]))
    assert len({c.tobytes() for c in crops}) == len(crops)  # distinct crops: picking another one shows


def test_discriminator_keeps_the_best_candidate_and_vocodes_only_it():
    vocoded = []

    def recording_vocoder(mels, seed):
        vocoded.append(mels.copy())
        return vocoder(mels, seed)

    mels = candidate_mels(len(CANDIDATE_SCORES))
    wave, choice = best_candidate(mels, "a dog barks", None, discriminator_with_scores(CANDIDATE_SCORES),
                                  recording_vocoder, None, 0)
    best = int(np.argmax(CANDIDATE_SCORES))
    assert choice["candidate"] == best and choice["score"] == pytest.approx(CANDIDATE_SCORES[best])
    assert choice["scores"] == pytest.approx(CANDIDATE_SCORES)
    assert len(vocoded) == 1 and vocoded[0].shape[0] == 1 and np.all(vocoded[0] == best)
    np.testing.assert_array_equal(wave, vocoder(mels[best:best + 1, 0].numpy(), 0)[0])


def test_one_candidate_is_not_scored_and_one_random_crop_is_taken():
    def no_discriminator(mels, text):
        raise AssertionError("a single candidate needs no score")

    clip, choice = pick_clip(candidate_mels(1), "a dog barks", None, no_discriminator, vocoder, None, GEN_CFG, RATE,
                             0, np.random.default_rng(0))
    assert choice == {"candidate": 0, "score": None, "scores": None, "crop": 0, "crop_score": None,
                      "crop_scores": None}
    assert clip.shape == (round(GEN_CFG["crop_seconds"] * OUT_RATE),)


def test_crops_are_never_padded_and_come_out_at_the_exact_length():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="crops are never padded"):
        random_crops(np.ones(1000, np.float32), 48000, 0.5, 3, rng)  # a 0.5 s crop of a 0.02 s clip
    crops = random_crops(np.ones(24000, np.float32), 48000, 0.5, 3, rng)
    assert crops.shape == (3, 24000) and crops.min() == 1
    out = to_output_rate(crops[0], 48000, 32000, 0.5)
    assert out.shape == (16000,) and abs(out[100:-100].mean() - 1) < 0.05
    long = random_crops(rng.standard_normal(48000).astype(np.float32), 48000, 0.5, 10, rng)
    assert long.shape == (10, 24000) and len({c[:5].tobytes() for c in long}) > 1  # different offsets


def test_a_model_trained_without_g2s_is_ranked_by_its_discriminator_logit_not_its_untrained_g2s_heads(
        tmp_path, tiny_model, tiny_data):
    """loss.g2s 0 (hinge alone, the demo): the offline re-ranker reads D's logit; with G2S trained, or in a model
    file from before the loss weights were recorded, the G2S similarity as before."""
    from scenesynth.inference.protocol import discriminator_scores, load_model
    from scenesynth.text.cache import TextCache

    saved = torch.load(tiny_model["model"], map_location="cpu", weights_only=True)
    assert saved["loss"]["g2s"] > 0
    for name, record in (("hinge.pt", {**saved, "loss": {**saved["loss"], "g2s": 0.0}}),
                         ("old.pt", {k: v for k, v in saved.items() if k != "loss"})):
        torch.save(record, tmp_path / name)
    _, hinge_d, _ = load_model(tmp_path / "hinge.pt", torch.device("cpu"))
    _, old_d, _ = load_model(tmp_path / "old.pt", torch.device("cpu"))
    _, paper_d, _ = load_model(tiny_model["model"], torch.device("cpu"))
    assert not hinge_d.g2s_trained and old_d.g2s_trained and paper_d.g2s_trained
    cache = TextCache(tiny_data["text"])
    text = cache.batch(cache.captions[:2])
    mels = torch.randn(2, 1, saved["audio"]["n_mels"], saved["audio"]["n_frames"]) - 4.0
    with torch.no_grad():
        out = hinge_d(mels, text)
        torch.testing.assert_close(discriminator_scores(hinge_d, mels, text), out.logit)
        torch.testing.assert_close(discriminator_scores(paper_d, mels, text),
                                   torch.nn.functional.cosine_similarity(out.audio_embed, out.text_embed, dim=-1))
