"""The audio front end of the 48 kHz HiFi-GAN vocoder (SPEC.md section 1).

The generator is trained to produce log-mels that a pretrained vocoder turns back
into audio. A vocoder only gives sound, not noise, for mels computed exactly as
in its own training, so this module copies that front end (AudioLDM 2 / AudioSR
``mel_spectrogram_train`` with ``get_vocoder_config_48k``) rather than using any
library default:

- waveform prep: remove the mean, scale the peak to 0.5 (``normalize_wav``);
- reflect-pad (n_fft - hop) / 2 samples on each side, then ``torch.stft`` with
  ``center=False``, a periodic Hann window and magnitude (power 1);
- librosa's default mel filterbank (Slaney scale, Slaney area normalisation);
- natural log of ``clamp(mel, min=1e-5)``, nothing else.

With these settings a 10.24 s clip (491 520 samples) gives exactly 1024 frames:
(491 520 + 2 * 784 - 2048) / 480 + 1 = 1024.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

import librosa
import numpy as np
import torch

# Epsilon of the vocoder's training ``normalize_wav`` (AudioLDM): kept as is so that
# silence maps to silence and quiet clips are scaled exactly as in its training.
_NORMALIZE_EPS = 1e-8
_TARGET_PEAK = 0.5


@dataclass(frozen=True)
class MelSettings:
    """Front-end settings; the defaults are the vocoder's (SPEC.md section 1)."""

    sample_rate: int = 48000
    n_fft: int = 2048
    win_length: int = 2048
    hop_length: int = 480
    n_mels: int = 256
    fmin: float = 20.0
    fmax: float = 24000.0
    log_clamp: float = 1e-5
    n_frames: int = 1024

    def __post_init__(self) -> None:
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length {self.win_length} > n_fft {self.n_fft}")
        if (self.n_fft - self.hop_length) % 2:
            raise ValueError("n_fft - hop_length must be even: the reflect pad is (n_fft - hop) / 2 per side")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= fmin < fmax <= sample_rate / 2, got {self.fmin}, {self.fmax}")
        if self.log_clamp <= 0:
            raise ValueError("log_clamp must be positive")

    @property
    def pad(self) -> int:
        """Reflect padding on each side: centres each frame's window on its hop."""
        return (self.n_fft - self.hop_length) // 2

    @property
    def clip_samples(self) -> int:
        """Samples in one stored clip (491 520 = 10.24 s at 48 kHz)."""
        return self.n_frames * self.hop_length

    def frames_for(self, n_samples: int) -> int:
        """Frames that ``logmel`` returns for a waveform of ``n_samples`` samples."""
        padded = n_samples + 2 * self.pad
        if padded < self.n_fft:
            return 0
        return (padded - self.n_fft) // self.hop_length + 1


class MelFrontEnd:
    """Waveform -> natural-log mel spectrogram, exactly as the vocoder was trained.

    The Hann window and the mel filterbank are built once and cached per
    (dtype, device), so calling ``logmel`` in a loop costs only the STFT and one
    matmul.
    """

    CONFIG_KEYS = tuple(field.name for field in dataclasses.fields(MelSettings))

    def __init__(self, settings: MelSettings | None = None) -> None:
        self.settings = settings if settings is not None else MelSettings()
        s = self.settings
        # librosa's default: Slaney mel scale (htk=False) and Slaney area norm.
        # float32, as the vocoder's own code builds it (librosa's default dtype).
        self._mel_basis_np = librosa.filters.mel(
            sr=s.sample_rate, n_fft=s.n_fft, n_mels=s.n_mels, fmin=s.fmin, fmax=s.fmax, htk=False, norm="slaney"
        )
        self._cache: dict[tuple[str, torch.dtype, torch.device], torch.Tensor] = {}

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], strict: bool = True) -> "MelFrontEnd":
        """Build from a settings dict; missing keys take the vocoder's values.

        Unknown keys raise (``strict``) so a typo such as ``hop_len`` cannot
        silently fall back to a default; pass ``strict=False`` to hand in a
        larger config section and ignore keys that are not front-end settings.
        """
        unknown = sorted(set(cfg) - set(cls.CONFIG_KEYS))
        if unknown and strict:
            raise ValueError(f"unknown front-end settings: {unknown}; known: {list(cls.CONFIG_KEYS)}")
        kwargs = {key: cfg[key] for key in cls.CONFIG_KEYS if key in cfg}
        return cls(MelSettings(**kwargs))

    def to_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.settings)

    # ----------------------------------------------------------------- cached constants
    def mel_basis(self, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
        """The [n_mels, n_fft // 2 + 1] Slaney filterbank as a tensor (cached)."""
        return self._cached("mel", dtype, torch.device(device), lambda: torch.from_numpy(self._mel_basis_np))

    def window(self, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
        """Periodic Hann window of win_length, zero-padded to n_fft in the centre
        (what torch.stft does itself when win_length < n_fft)."""
        s = self.settings

        def build() -> torch.Tensor:
            hann = torch.hann_window(s.win_length, periodic=True, dtype=torch.float64)
            left = (s.n_fft - s.win_length) // 2
            return torch.nn.functional.pad(hann, (left, s.n_fft - s.win_length - left))

        return self._cached("window", dtype, torch.device(device), build)

    def _cached(self, name: str, dtype: torch.dtype, device: torch.device, build) -> torch.Tensor:
        key = (name, dtype, device)
        if key not in self._cache:
            self._cache[key] = build().to(dtype=dtype, device=device).contiguous()
        return self._cache[key]

    # ----------------------------------------------------------------- transforms
    @staticmethod
    def normalize_wav(wav: np.ndarray) -> np.ndarray:
        """Remove the mean and scale the peak to 0.5, as the vocoder's training data.

        Silence stays silence: the divisor carries the vocoder's 1e-8 epsilon.
        Returns float32.
        """
        wav = np.asarray(wav, dtype=np.float64)
        if wav.size == 0:
            return wav.astype(np.float32)
        wav = wav - wav.mean()
        wav = wav / (np.abs(wav).max() + _NORMALIZE_EPS) * _TARGET_PEAK
        return wav.astype(np.float32)

    def stft_magnitude(self, wav: torch.Tensor) -> torch.Tensor:
        """|STFT| of the reflect-padded waveform: [..., n_fft // 2 + 1, frames]."""
        s = self.settings
        wav = torch.as_tensor(wav)
        if not wav.is_floating_point():
            wav = wav.to(torch.float32)
        if wav.dim() not in (1, 2):
            raise ValueError(f"expected a waveform [n] or a batch [B, n], got shape {tuple(wav.shape)}")
        batched = wav.dim() == 2
        wav2d = wav if batched else wav.unsqueeze(0)
        if wav2d.shape[-1] <= s.pad:
            raise ValueError(f"waveform of {wav2d.shape[-1]} samples is too short for the {s.pad}-sample reflect pad")
        padded = torch.nn.functional.pad(wav2d.unsqueeze(1), (s.pad, s.pad), mode="reflect").squeeze(1)
        spec = torch.stft(
            padded,
            n_fft=s.n_fft,
            hop_length=s.hop_length,
            win_length=s.n_fft,
            window=self.window(padded.dtype, padded.device),
            center=False,
            normalized=False,
            onesided=True,
            return_complex=True,
        ).abs()
        return spec if batched else spec.squeeze(0)

    def logmel(self, wav: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Natural-log mel spectrogram: [n] -> [n_mels, frames], [B, n] -> [B, n_mels, frames].

        Computed in the input's floating dtype (float32 as in the vocoder's
        training; float64 for reference checks). No normalisation is applied
        here: ``clip_to_mel`` does the waveform prep.
        """
        magnitude = self.stft_magnitude(torch.as_tensor(wav))
        mel = torch.matmul(self.mel_basis(magnitude.dtype, magnitude.device), magnitude)
        return torch.log(torch.clamp(mel, min=self.settings.log_clamp))

    def prepare_clip(self, wav_48k: np.ndarray) -> tuple[np.ndarray, int]:
        """Crop to one clip, normalise, zero-pad at the end: (waveform, true_frames).

        Order as the vocoder's training data loader (crop, then ``normalize_wav``,
        then pad), so that the stored clip's own peak is 0.5. Padding goes at the
        end (the loader placed clips at random offsets) so ``true_frames`` marks
        where the real audio stops: min(n_frames, ceil(len / hop)).
        """
        s = self.settings
        wav = np.asarray(wav_48k)
        if wav.ndim != 1:
            raise ValueError(f"expected a mono waveform [n], got shape {wav.shape}")
        if not np.all(np.isfinite(wav)):  # a bad decode must not become a NaN training target
            raise ValueError("waveform contains NaN or infinite samples")
        wav = self.normalize_wav(wav[: s.clip_samples])
        true_frames = min(s.n_frames, math.ceil(len(wav) / s.hop_length))
        clip = np.zeros(s.clip_samples, dtype=np.float32)
        clip[: len(wav)] = wav
        return clip, true_frames

    def clip_to_mel(self, wav_48k: np.ndarray) -> tuple[np.ndarray, int]:
        """A 48 kHz mono waveform -> (float16 log-mel [n_mels, n_frames], true_frames)."""
        clip, true_frames = self.prepare_clip(wav_48k)
        with torch.no_grad():
            mel = self.logmel(torch.from_numpy(clip))
        if mel.shape[-1] != self.settings.n_frames:  # guards the padding arithmetic above
            raise AssertionError(f"front end gave {mel.shape[-1]} frames, expected {self.settings.n_frames}")
        return mel.numpy().astype(np.float16), true_frames
