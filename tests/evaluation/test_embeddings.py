"""The offline FAD embedding stand-in and the embedding registry."""

import librosa
import numpy as np
import pytest
import scipy.signal

from signals import relative_distance, tone, white_noise
from scenesynth.pretrained.models import MissingPretrained
from scenesynth.evaluation.embeddings import (
    LogMelStatsEmbedding,
    embed_clips,
    get_embedding,
    known_embeddings,
)

RATE = 32_000


pytestmark = pytest.mark.usefixtures("single_thread")

@pytest.fixture(scope="module")
def embedding() -> LogMelStatsEmbedding:
    return get_embedding("logmel_stats")


def test_shape_dtype_and_rate(embedding):
    vector = embedding.embed(white_noise(2.0, seed=0))
    assert embedding.name == "logmel_stats"
    assert embedding.sample_rate == 32_000
    assert vector.shape == (256,) == (embedding.dim,)
    assert vector.dtype == np.float32
    assert np.all(np.isfinite(vector))


def test_front_end_matches_a_numpy_reference(embedding):
    """PANNs' front end (torchlibrosa = librosa semantics), rebuilt with numpy's FFT as a cross-check.

    Centred STFT: reflect-pad n_fft // 2 each side, periodic Hann, power spectrum, Slaney mel, dB.
    (librosa.feature.melspectrogram would do too, but its first call JIT-compiles for ~15 s.)
    """
    wave = (white_noise(1.0, seed=1) + tone(1000.0, 1.0)).astype(np.float64)
    n_fft, hop = 1024, 320
    padded = np.pad(wave, n_fft // 2, mode="reflect")
    n_frames = 1 + (padded.shape[0] - n_fft) // hop
    frames = np.stack([padded[i * hop : i * hop + n_fft] for i in range(n_frames)])
    window = scipy.signal.get_window("hann", n_fft, fftbins=True)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2  # [frames, 513]
    mel = librosa.filters.mel(sr=RATE, n_fft=n_fft, n_mels=64, fmin=50, fmax=14000) @ power.T
    reference_db = 10 * np.log10(np.maximum(mel, 1e-10))
    ours = embedding.log_mel(wave)
    assert ours.shape == reference_db.shape == (64, 1 + RATE // hop)
    np.testing.assert_allclose(ours, reference_db, atol=1e-6)


def test_deterministic_across_calls_and_instances(embedding):
    wave = white_noise(1.5, seed=2)
    first = embedding.embed(wave)
    np.testing.assert_array_equal(first, embedding.embed(wave))
    np.testing.assert_array_equal(first, LogMelStatsEmbedding().embed(wave))


def test_length_independent_for_stationary_signals(embedding):
    # Measured: 0.038 relative difference for noise, 0.020 for a tone; different sounds differ by > 0.4.
    noise_short = embedding.embed(white_noise(3.0, seed=3))
    noise_long = embedding.embed(white_noise(5.0, seed=4))
    tone_short = embedding.embed(tone(440.0, 3.0))
    tone_long = embedding.embed(tone(440.0, 5.0))
    assert relative_distance(noise_short, noise_long) < 0.08
    assert relative_distance(tone_short, tone_long) < 0.05


def test_different_sounds_give_different_embeddings(embedding):
    low = embedding.embed(tone(440.0, 2.0))
    high = embedding.embed(tone(2000.0, 2.0))
    noise = embedding.embed(white_noise(2.0, seed=5))
    assert relative_distance(low, high) > 0.3
    assert relative_distance(low, noise) > 0.3
    assert relative_distance(high, noise) > 0.3


def test_short_and_silent_clips_stay_finite(embedding):
    assert np.all(np.isfinite(embedding.embed(white_noise(0.003, seed=6))))  # 96 samples < n_fft
    assert np.all(np.isfinite(embedding.embed(np.zeros(RATE, dtype=np.float32))))


def test_rejects_bad_waveforms(embedding):
    with pytest.raises(ValueError, match="mono"):
        embedding.embed(np.zeros((2, RATE), dtype=np.float32))
    with pytest.raises(ValueError, match="empty"):
        embedding.embed(np.zeros(0, dtype=np.float32))


def test_embed_clips_resamples_to_the_embedding_rate(embedding):
    at_16k = tone(440.0, 2.0, rate=16_000)
    at_32k = tone(440.0, 2.0, rate=RATE)
    matrix = embed_clips(embedding, [at_16k, at_16k], sample_rate=16_000)
    assert matrix.shape == (2, 256) and matrix.dtype == np.float32
    # Measured 0.0018: resampling by soxr changes the embedding only at rounding level.
    assert relative_distance(matrix[0], embedding.embed(at_32k)) < 0.01


def test_panns_without_its_checkpoint_is_unavailable(tmp_path, monkeypatch):
    """The default checkpoint path is relative to the working directory; nothing is there in tmp_path."""
    monkeypatch.chdir(tmp_path)
    assert "panns_wavegram_logmel" in known_embeddings()
    with pytest.raises(MissingPretrained) as caught:
        get_embedding("panns_wavegram_logmel")
    message = str(caught.value)
    assert isinstance(caught.value, RuntimeError)
    assert "data/pretrained/panns/Wavegram_Logmel_Cnn14_mAP=0.439.pth" in message
    assert "3987831" in message
    assert "scenesynth fetch-pretrained --name panns" in message
    assert "evaluate.fad_embedding: logmel_stats" in message


def test_logmel_stats_ignores_checkpoint_and_device(tmp_path):
    built = get_embedding("logmel_stats", checkpoint=tmp_path / "unused.pth", device="cpu")
    assert isinstance(built, LogMelStatsEmbedding)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="logmel_stats") as caught:
        get_embedding("vggish")
    assert "panns_wavegram_logmel" in str(caught.value)
