"""The front end must match the vocoder's training front end (docs/paper.md section 1).

The reference below is written independently of the module (numpy/scipy framing,
FFT and window; only the filterbank call is shared, since "librosa's default
filterbank" is the specification itself).
"""

from __future__ import annotations

import math
import warnings

import librosa
import numpy as np
import pytest
import scipy.signal
import torch
from numpy.lib.stride_tricks import sliding_window_view

from conftest import REPO
from scenesynth.config import load_params
from scenesynth.features.mel import MelFrontEnd, MelSettings

SR = 48000
CLIP_SAMPLES = 491520  # 10.24 s
LOG_FLOOR = math.log(1e-5)


pytestmark = pytest.mark.usefixtures("single_thread")

@pytest.fixture(scope="module")
def front_end() -> MelFrontEnd:
    return MelFrontEnd.from_params(
        dict(sample_rate=48000, n_fft=2048, win_length=2048, hop_length=480, n_mels=256,
             fmin=20, fmax=24000, log_clamp=1e-5, n_frames=1024)
    )


def reference_logmel(wav: np.ndarray) -> np.ndarray:
    """Vocoder front end in float64 numpy: explicit reflect pad, framing, rfft."""
    padded = np.pad(np.asarray(wav, dtype=np.float64), 784, mode="reflect")
    frames = sliding_window_view(padded, 2048)[::480]
    window = scipy.signal.get_window("hann", 2048, fftbins=True)
    magnitude = np.abs(np.fft.rfft(frames * window, axis=1)).T
    basis = librosa.filters.mel(sr=48000, n_fft=2048, n_mels=256, fmin=20, fmax=24000).astype(np.float64)
    return np.log(np.maximum(basis @ magnitude, 1e-5))


def chirp_plus_noise(n_samples: int, seed: int = 0) -> np.ndarray:
    t = np.arange(n_samples) / SR
    rng = np.random.default_rng(seed)
    chirp = scipy.signal.chirp(t, f0=50, t1=t[-1], f1=20000, method="logarithmic")
    return 0.4 * chirp + 0.05 * rng.standard_normal(n_samples) + 0.1  # DC offset: normalize must remove it


def test_frame_count_arithmetic(front_end: MelFrontEnd) -> None:
    pad = (2048 - 480) // 2
    assert pad == 784 == front_end.settings.pad
    assert (CLIP_SAMPLES + 2 * pad - 2048) % 480 == 0
    assert (CLIP_SAMPLES + 2 * pad - 2048) // 480 + 1 == 1024
    assert front_end.settings.clip_samples == CLIP_SAMPLES
    assert front_end.settings.frames_for(CLIP_SAMPLES) == 1024
    assert front_end.logmel(torch.zeros(CLIP_SAMPLES)).shape == (256, 1024)


def test_matches_independent_reference(front_end: MelFrontEnd) -> None:
    """float64: agrees to rounding (~1e-13). float32 (the vocoder's own dtype) is
    looser: about 1.2e-4 measured on this signal, from float32 FFT rounding in
    low-energy bins, so it gets a 1e-3 bound."""
    wav = front_end.normalize_wav(chirp_plus_noise(72_000 + 123))  # not a multiple of the hop
    expected = reference_logmel(wav)
    got64 = front_end.logmel(torch.from_numpy(wav).double()).numpy()
    got32 = front_end.logmel(torch.from_numpy(wav)).numpy()
    assert got64.shape == expected.shape == (256, front_end.settings.frames_for(len(wav)))
    assert got32.dtype == np.float32
    assert np.abs(got64 - expected).max() < 1e-4
    assert np.abs(got32 - expected).max() < 1e-3
    assert expected.max() - expected.min() > 5  # a signal with real dynamic range, not all floor


def test_filterbank_is_librosa_slaney_default(front_end: MelFrontEnd) -> None:
    explicit = librosa.filters.mel(sr=SR, n_fft=2048, n_mels=256, fmin=20, fmax=24000, htk=False, norm="slaney")
    np.testing.assert_array_equal(front_end.mel_basis().numpy(), explicit)
    assert front_end.mel_basis() is front_end.mel_basis()  # built once, cached


def test_batched_equals_single(front_end: MelFrontEnd) -> None:
    batch = torch.from_numpy(np.stack([chirp_plus_noise(24_000, seed) for seed in (1, 2)])).double()
    together = front_end.logmel(batch)
    assert together.shape == (2, 256, 50)
    for item in range(2):
        torch.testing.assert_close(together[item], front_end.logmel(batch[item]), rtol=0, atol=1e-10)


def test_normalize_wav_removes_mean_and_sets_peak() -> None:
    wav = MelFrontEnd.normalize_wav(chirp_plus_noise(10_000))
    assert wav.dtype == np.float32
    assert abs(float(wav.mean())) < 1e-6
    assert np.abs(wav).max() == pytest.approx(0.5, abs=1e-6)


def test_silence_does_not_divide_by_zero(front_end: MelFrontEnd) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a 0/0 would warn (RuntimeWarning) and give NaN
        silent = MelFrontEnd.normalize_wav(np.zeros(4800))
        empty = MelFrontEnd.normalize_wav(np.zeros(0))
        mel, true_frames = front_end.clip_to_mel(np.zeros(SR))
    assert np.all(silent == 0) and empty.size == 0
    assert true_frames == 100
    assert np.all(mel == np.float16(LOG_FLOOR))


def test_full_clip_is_float16_256_by_1024(front_end: MelFrontEnd) -> None:
    mel, true_frames = front_end.clip_to_mel(chirp_plus_noise(CLIP_SAMPLES))
    assert mel.dtype == np.float16 and mel.shape == (256, 1024)
    assert true_frames == 1024
    assert np.isfinite(mel).all()


def test_long_clip_is_cropped_and_normalised_after_cropping(front_end: MelFrontEnd) -> None:
    long = chirp_plus_noise(CLIP_SAMPLES + 5 * SR)
    long[CLIP_SAMPLES + SR] = 50.0  # a spike beyond the crop must not set the scale
    clip, true_frames = front_end.prepare_clip(long)
    assert len(clip) == CLIP_SAMPLES and true_frames == 1024
    assert np.abs(clip).max() == pytest.approx(0.5, abs=1e-6)


def test_short_clip_is_zero_padded_and_true_length_kept(front_end: MelFrontEnd) -> None:
    n_samples = 250 * 480 + 100  # 2.5 s and a bit: ceil gives 251 frames
    wav = chirp_plus_noise(n_samples)
    mel, true_frames = front_end.clip_to_mel(wav)
    clip, _ = front_end.prepare_clip(wav)
    assert mel.shape == (256, 1024)
    assert true_frames == 251
    np.testing.assert_array_equal(clip[:n_samples], MelFrontEnd.normalize_wav(wav))
    assert np.all(clip[n_samples:] == 0)
    # Frame j sees original samples [480 j - 784, 480 j + 1264): from j = true_frames + 2
    # on, frames hold only padding, which is exactly the log floor.
    assert np.all(mel[:, true_frames + 2 :] == np.float16(LOG_FLOOR))
    assert np.all(mel[:, : true_frames - 2].max(axis=0) > LOG_FLOOR + 1)


def test_float16_storage_error_is_small(front_end: MelFrontEnd) -> None:
    """float16 holds log-mels in [-11.6, 8] to within half a step (<= 0.004)."""
    wav = chirp_plus_noise(CLIP_SAMPLES)
    mel16, _ = front_end.clip_to_mel(wav)
    clip, _ = front_end.prepare_clip(wav)
    mel32 = front_end.logmel(torch.from_numpy(clip)).numpy()
    assert np.abs(mel16.astype(np.float32) - mel32).max() <= 0.004


def test_config_validation() -> None:
    paper = load_params(REPO / "params.yaml")["audio"]
    assert MelFrontEnd.from_params(paper).settings == MelSettings()  # the vocoder's front end
    with pytest.raises(ValueError, match="unknown \\['hop_len'\\]"):
        MelFrontEnd.from_params({**paper, "hop_len": 480})
    with pytest.raises(ValueError, match="missing \\['hop_length'\\]"):
        MelFrontEnd.from_params({k: v for k, v in paper.items() if k != "hop_length"})
    with pytest.raises(ValueError):
        MelSettings(n_fft=2048, hop_length=481)  # odd (n_fft - hop): no symmetric pad
    assert MelFrontEnd.from_params(MelFrontEnd().to_config()).settings == MelSettings()


def test_rejects_bad_shapes(front_end: MelFrontEnd) -> None:
    with pytest.raises(ValueError):
        front_end.logmel(torch.zeros(2, 2, 4800))
    with pytest.raises(ValueError):
        front_end.logmel(torch.zeros(700))  # shorter than the reflect pad
    with pytest.raises(ValueError):
        front_end.clip_to_mel(np.zeros((2, 4800)))
    with pytest.raises(ValueError, match="NaN"):
        front_end.clip_to_mel(np.full(4800, np.nan))


def dense_logmel(front_end: MelFrontEnd, wav: torch.Tensor) -> torch.Tensor:
    """The plain formula: complex abs of the STFT, one dense filterbank product."""
    s = front_end.settings
    padded = torch.nn.functional.pad(wav[None, None], (s.pad, s.pad), mode="reflect")[0, 0]
    spec = torch.stft(padded, s.n_fft, s.hop_length, s.n_fft, window=front_end.window(wav.dtype),
                      center=False, return_complex=True).abs()
    return torch.log(torch.clamp(front_end.mel_basis(wav.dtype) @ spec, min=s.log_clamp))


def test_banded_filterbank_holds_every_nonzero_weight(front_end: MelFrontEnd) -> None:
    dense = front_end.mel_basis().numpy()
    rebuilt = np.zeros_like(dense)
    row = 0
    for lo, hi, weights in front_end.band_blocks():
        rebuilt[row : row + weights.shape[0], lo:hi] = weights.numpy()
        row += weights.shape[0]
    assert row == dense.shape[0]
    np.testing.assert_array_equal(rebuilt, dense)
    spans = sum(w.numel() for _, _, w in front_end.band_blocks())
    assert spans < dense.size / 10  # the point of the banded product: a tenth of the dense work


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_fast_logmel_equals_dense_formula(front_end: MelFrontEnd, dtype: torch.dtype, tol: float) -> None:
    """Banded product and sqrt(re^2 + im^2): the dense formula's values up to float rounding."""
    clip, _ = front_end.prepare_clip(chirp_plus_noise(CLIP_SAMPLES))
    wav = torch.from_numpy(clip).to(dtype)
    fast, dense = front_end.logmel(wav), dense_logmel(front_end, wav)
    assert fast.dtype == dtype and fast.shape == dense.shape == (256, 1024)
    assert (fast - dense).abs().max().item() < tol
    assert dense.max() - dense.min() > 5  # real dynamic range, not all floor


def test_fast_logmel_with_empty_filters_equals_dense_formula() -> None:
    """Settings where some triangles hold no FFT bin (all-zero rows) still give the floor there."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns about the empty filters
        small = MelFrontEnd(MelSettings(n_fft=256, win_length=256, hop_length=64, n_mels=128, n_frames=32))
    assert (small.mel_basis().abs().sum(dim=1) == 0).any()
    wav = torch.from_numpy(chirp_plus_noise(2048)).double()
    torch.testing.assert_close(small.logmel(wav), dense_logmel(small, wav), rtol=0, atol=1e-12)


def test_normalize_wav_is_bit_exact_to_the_vocoder_formula() -> None:
    wav = chirp_plus_noise(50_000, seed=5).astype(np.float32)
    centred = wav.astype(np.float64) - wav.astype(np.float64).mean()
    expected = (centred / (np.abs(centred).max() + 1e-8) * 0.5).astype(np.float32)
    np.testing.assert_array_equal(MelFrontEnd.normalize_wav(wav), expected)


def test_stored_float16_is_the_rounded_float32_logmel(front_end: MelFrontEnd) -> None:
    """clip_to_mel's fast float16 cast rounds exactly as numpy's astype (nearest, ties to even)."""
    wav = chirp_plus_noise(CLIP_SAMPLES, seed=9)
    mel16, _ = front_end.clip_to_mel(wav)
    clip, _ = front_end.prepare_clip(wav)
    np.testing.assert_array_equal(mel16, front_end.logmel(torch.from_numpy(clip)).numpy().astype(np.float16))


def test_clip_to_mel_results_do_not_share_its_reused_buffers(front_end: MelFrontEnd) -> None:
    """Buffers are reused from clip to clip and per thread: results must stay independent."""
    from concurrent.futures import ThreadPoolExecutor

    waves = [chirp_plus_noise(CLIP_SAMPLES // 4, seed) for seed in range(4)]
    alone = [front_end.clip_to_mel(w)[0].copy() for w in waves]
    kept = [front_end.clip_to_mel(w)[0] for w in waves]  # each result held while the next is computed
    with ThreadPoolExecutor(2) as pool:
        threaded = list(pool.map(lambda w: front_end.clip_to_mel(w)[0], waves * 2))
    for i, mel in enumerate(alone):
        np.testing.assert_array_equal(kept[i], mel)
        np.testing.assert_array_equal(threaded[i], mel)
        np.testing.assert_array_equal(threaded[i + 4], mel)
    assert not np.array_equal(alone[0], alone[1])
