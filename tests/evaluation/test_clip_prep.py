"""The organisers' clip preparation: mono by channel mean, 32 kHz, 16-bit round trip, exact length."""

import numpy as np
import pytest
import soundfile as sf

from scenesynth.audio_io import AudioReadError
from scenesynth.evaluation.clip_prep import ClipLengthError, ClipRecipe, prepare_clip

FOUR_SECONDS = ClipRecipe(seconds=4.0)


def test_a_challenge_format_clip_comes_back_sample_for_sample(tmp_path):
    levels = np.random.default_rng(0).integers(-32768, 32768, 128_000).astype(np.int16)
    sf.write(tmp_path / "001.wav", levels, 32_000, subtype="PCM_16")
    wave = prepare_clip(tmp_path / "001.wav", FOUR_SECONDS)
    assert wave.dtype == np.float32 and np.array_equal(wave, levels / np.float32(32768))


def test_channels_are_averaged_then_resampled_then_rounded_to_16_bit(tmp_path):
    t = np.arange(192_000) / 48_000
    left, right = 0.5 * np.sin(2 * np.pi * 440 * t), 0.1 * np.sin(2 * np.pi * 440 * t)
    sf.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1).astype(np.float32), 48_000, subtype="FLOAT")
    wave = prepare_clip(tmp_path / "stereo.wav", FOUR_SECONDS)
    assert wave.shape == (128_000,)
    assert np.array_equal(wave * 32768, np.round(wave * 32768))  # on the 16-bit grid
    middle = slice(1000, -1000)
    expected = 0.3 * np.sin(2 * np.pi * 440 * np.arange(128_000) / 32_000)  # the channel mean, at 32 kHz
    assert np.max(np.abs(wave[middle] - expected[middle])) < 1e-3


def test_a_clip_of_another_length_is_refused_by_name(tmp_path):
    sf.write(tmp_path / "short.wav", np.zeros(127_999, np.float32), 32_000, subtype="PCM_16")
    with pytest.raises(ClipLengthError, match=r"short\.wav: 127999 samples \(3\.99997 s\).*exactly 4 s"):
        prepare_clip(tmp_path / "short.wav", FOUR_SECONDS)
    assert prepare_clip(tmp_path / "short.wav", ClipRecipe()).shape == (127_999,)  # no length: any length
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioReadError, match=r"empty\.wav: empty file"):
        prepare_clip(tmp_path / "empty.wav", FOUR_SECONDS)
