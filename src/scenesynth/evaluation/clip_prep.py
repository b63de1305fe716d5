"""A clip as the organisers' scorer sees it, before the embedding (docs/paper.md section 6).

The DCASE 2024 Task 7 fadtk fork (``fadtk/fad.py`` ``load_audio`` and ``model_loader.py``
``load_wav``), step by step:

1. average the channels to mono;
2. resample to 32 kHz;
3. write a 16-bit PCM WAV and read it back as int16 / 32768;
4. with ``--audio_len 4``, refuse a clip that is not exactly 4 x 32 000 samples.

One difference is on purpose: step 2 uses soxr (VHQ), the resampler of the rest of the
pipeline, where the fork uses torchaudio's Kaiser-windowed sinc (lowpass width 64, rolloff
0.9475937, beta 14.769656), since torchaudio does not run here (docs/paper.md section 0). For
the challenge's own format (mono 32 kHz 16-bit, what `generate` writes) no resampling happens
and the two are identical; benchmarks/resampler_fad.py measures the difference on 48 kHz input.
Step 3 rounds x * 32768 to the nearest integer and clips it to int16, which leaves 16-bit input
unchanged, as the fork's own round trip does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from scenesynth.audio_io import AudioReadError, load_mono, pcm16

SCORER_RATE = 32_000  # every embedding of the challenge's FAD runs at 32 kHz
RESAMPLER = "soxr VHQ"


class ClipLengthError(ValueError):
    """A scored clip does not have the challenge's length; the message names the file."""


@dataclass(frozen=True)
class ClipRecipe:
    """How a file becomes the waveform that is embedded."""

    sample_rate: int = SCORER_RATE
    seconds: float | None = None  # exact length a scored clip must have (None: any)

    def identity(self) -> dict:
        """What the waveform depends on (the length check refuses clips, it changes none)."""
        return {"sample_rate": self.sample_rate, "resampler": RESAMPLER, "pcm16_round_trip": True, "mono": "mean"}

    def expected_samples(self) -> int | None:
        return None if self.seconds is None else int(round(self.seconds * self.sample_rate))


def prepare_clip(path: str | Path, recipe: ClipRecipe) -> np.ndarray:
    """Mono float32 at ``recipe.sample_rate``, through the 16-bit round trip, length checked.

    Raises AudioReadError (unreadable file) or ClipLengthError, each naming ``path``.
    """
    try:
        wave, rate = load_mono(path)  # channel mean, as the fork's torch.mean(x, 0)
    except AudioReadError as err:
        raise AudioReadError(f"{path}: {err}") from err
    if rate != recipe.sample_rate:
        wave = soxr.resample(wave, rate, recipe.sample_rate, quality="VHQ")
    wave = pcm16(wave).astype(np.float32) / np.float32(32768)
    expected = recipe.expected_samples()
    if expected is not None and wave.shape[0] != expected:
        raise ClipLengthError(
            f"{path}: {wave.shape[0]} samples ({wave.shape[0] / recipe.sample_rate:.5f} s) at "
            f"{recipe.sample_rate} Hz; the scorer takes clips of exactly {recipe.seconds:g} s ({expected} samples; "
            "evaluate.clip_seconds, the organisers' --audio_len)")
    return wave
