"""The audio front end of the 48 kHz HiFi-GAN vocoder (docs/paper.md section 1).

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

Speed (the mel stage runs this on ~160k clips; benchmarks/data_stage.py): the
filterbank is 99 % zeros (each FFT bin lies under at most two triangles), so it
is applied as a few dense blocks over each block's nonzero bins, not as one
256 x 1025 product; |STFT| is sqrt(re^2 + im^2) rather than the slower complex
abs; ``clip_to_mel`` reuses one set of buffers per thread (fresh ~28 MB a clip
cost up to ~9 ms of page faults); torch casts to float16. Same values up to
float rounding (the waveform prep and the float16 cast bit for bit).
"""

from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass
from typing import Any, Mapping

import librosa
import numpy as np
import torch

# Epsilon of the vocoder's training ``normalize_wav`` (AudioLDM): kept as is so that
# silence maps to silence and quiet clips are scaled exactly as in its training.
_NORMALIZE_EPS = 1e-8
_TARGET_PEAK = 0.5
# Mel rows per block of the banded filterbank product: 8 measured fastest (fewer rows
# waste work on zeros between neighbouring bands, more rows add per-call overhead).
_BLOCK_MELS = 8


def _band_blocks(basis: np.ndarray, rows: int) -> list[tuple[int, int, int, int]]:
    """(first_mel, last_mel + 1, first_bin, last_bin + 1) per block of ``rows`` filters:
    outside its bin span a block's weights are all zero, so the product can skip them."""
    blocks = []
    for m0 in range(0, basis.shape[0], rows):
        m1 = min(m0 + rows, basis.shape[0])
        used = np.flatnonzero(np.any(basis[m0:m1] != 0, axis=0))
        lo, hi = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 0)  # all-zero (empty) filters
        blocks.append((m0, m1, lo, hi))
    return blocks


def _normalize_in_place(wav64: np.ndarray) -> np.ndarray:
    """The vocoder's ``normalize_wav`` arithmetic on a float64 array, without temporaries."""
    if wav64.size:
        wav64 -= wav64.mean()
        # The target peak is a power of two, so x / ((peak + eps) / 0.5) is bit for bit the
        # vocoder's x / (peak + eps) * 0.5; max(max, -min) is max(abs) without a temporary.
        wav64 /= (max(wav64.max(), -wav64.min()) + _NORMALIZE_EPS) / _TARGET_PEAK
    return wav64


class _ClipBuffers:
    """Every array one clip's front end needs, allocated once per thread and settings."""

    def __init__(self, s: "MelSettings") -> None:
        bins = s.n_fft // 2 + 1
        self.wav64 = np.empty(s.clip_samples, dtype=np.float64)
        self.padded = torch.empty(s.clip_samples + 2 * s.pad)
        self.frames = torch.empty(s.n_frames, s.n_fft)
        self.spectrum = torch.empty(s.n_frames, bins, dtype=torch.complex64)
        self.magnitude = torch.empty(s.n_frames, bins)
        self.mel = torch.empty(s.n_mels, s.n_frames)


_THREAD_BUFFERS = threading.local()  # per thread: {MelSettings: _ClipBuffers}


@dataclass(frozen=True)
class MelSettings:
    """Front-end settings; the defaults are the vocoder's (docs/paper.md section 1)."""

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
        self._blocks = _band_blocks(self._mel_basis_np, _BLOCK_MELS)
        self._cache: dict[tuple[str, torch.dtype, torch.device], Any] = {}

    @classmethod
    def from_params(cls, audio: Mapping[str, Any]) -> "MelFrontEnd":
        """The front end of params.yaml's `audio:` section (or a model file's copy of it): the one way
        every stage builds it. Every setting must be there and nothing else, so no typo falls back to a default."""
        unknown, missing = sorted(set(audio) - set(cls.CONFIG_KEYS)), sorted(set(cls.CONFIG_KEYS) - set(audio))
        if unknown or missing:
            raise ValueError(f"front-end settings: unknown {unknown}, missing {missing}; known: {list(cls.CONFIG_KEYS)}")
        return cls(MelSettings(**audio))

    def to_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.settings)

    # ----------------------------------------------------------------- cached constants
    def mel_basis(self, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
        """The [n_mels, n_fft // 2 + 1] Slaney filterbank as a tensor (cached)."""
        return self._cached("mel", dtype, torch.device(device), lambda: torch.from_numpy(self._mel_basis_np))

    def band_blocks(self, dtype: torch.dtype = torch.float32,
                    device: torch.device | str = "cpu") -> list[tuple[int, int, torch.Tensor]]:
        """The filterbank as (first_bin, last_bin + 1, weights [mels, bins]) row blocks (cached)."""
        key = ("blocks", dtype, torch.device(device))
        if key not in self._cache:
            self._cache[key] = [(lo, hi, torch.from_numpy(np.ascontiguousarray(self._mel_basis_np[m0:m1, lo:hi]))
                                 .to(dtype=dtype, device=device)) for m0, m1, lo, hi in self._blocks]
        return self._cache[key]

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
        return _normalize_in_place(np.array(wav, dtype=np.float64)).astype(np.float32)

    def stft_magnitude(self, wav: torch.Tensor) -> torch.Tensor:
        """|STFT| of the reflect-padded waveform: [..., n_fft // 2 + 1, frames].

        sqrt(re^2 + im^2), about twice as fast as the complex ``abs`` (a hypot);
        the two differ by float rounding only, as long as |X| stays far from the
        dtype's overflow (|X| <= n_fft * max|x| for a waveform).
        """
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
        )
        parts = torch.view_as_real(spec)
        real, imag = parts[..., 0], parts[..., 1]
        magnitude = torch.addcmul(real * real, imag, imag).sqrt_()
        return magnitude if batched else magnitude.squeeze(0)

    def logmel(self, wav: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Natural-log mel spectrogram: [n] -> [n_mels, frames], [B, n] -> [B, n_mels, frames].

        Computed in the input's floating dtype (float32 as in the vocoder's
        training; float64 for reference checks). No normalisation is applied
        here: ``clip_to_mel`` does the waveform prep.
        """
        magnitude = self.stft_magnitude(torch.as_tensor(wav))
        mel = self.apply_filterbank(magnitude)
        return mel.clamp_(min=self.settings.log_clamp).log_()

    def apply_filterbank(self, magnitude: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """mel_basis @ magnitude ([..., bins, frames] -> [..., n_mels, frames]), band by band.

        Equal to the dense product up to float rounding (the skipped weights are
        exact zeros), at about a tenth of its cost. ``out``: a [n_mels, frames]
        tensor to write into (2-D magnitude only).
        """
        blocks = self.band_blocks(magnitude.dtype, magnitude.device)
        if out is None:
            return torch.cat([torch.matmul(weights, magnitude[..., lo:hi, :]) for lo, hi, weights in blocks], dim=-2)
        row = 0
        for lo, hi, weights in blocks:
            torch.matmul(weights, magnitude[lo:hi], out=out[row : row + weights.shape[0]])
            row += weights.shape[0]
        return out

    def prepare_clip(self, wav_48k: np.ndarray) -> tuple[np.ndarray, int]:
        """Crop to one clip, normalise, zero-pad at the end: (waveform, true_frames).

        Order as the vocoder's training data loader (crop, then ``normalize_wav``,
        then pad), so that the stored clip's own peak is 0.5. Padding goes at the
        end (the loader placed clips at random offsets) so ``true_frames`` marks
        where the real audio stops: min(n_frames, ceil(len / hop)).
        """
        s = self.settings
        wav = self._check_wave(wav_48k)
        wav = self.normalize_wav(wav[: s.clip_samples])
        true_frames = min(s.n_frames, math.ceil(len(wav) / s.hop_length))
        clip = np.zeros(s.clip_samples, dtype=np.float32)
        clip[: len(wav)] = wav
        return clip, true_frames

    @staticmethod
    def _check_wave(wav_48k: np.ndarray) -> np.ndarray:
        wav = np.asarray(wav_48k)
        if wav.ndim != 1:
            raise ValueError(f"expected a mono waveform [n], got shape {wav.shape}")
        if not np.all(np.isfinite(wav)):  # a bad decode must not become a NaN training target
            raise ValueError("waveform contains NaN or infinite samples")
        return wav

    def clip_to_mel(self, wav_48k: np.ndarray) -> tuple[np.ndarray, int]:
        """A 48 kHz mono waveform -> (float16 log-mel [n_mels, n_frames], true_frames).

        ``logmel(prepare_clip(wav))`` in float32, cast to float16, computed in
        this thread's reused buffers: the same steps, in place.
        """
        s = self.settings
        wav = self._check_wave(wav_48k)
        if s.clip_samples <= s.pad:
            raise ValueError(f"a clip of {s.clip_samples} samples is too short for the {s.pad}-sample reflect pad")
        n = min(len(wav), s.clip_samples)
        buf = self._buffers()
        # crop, normalise (float64, as normalize_wav), zero-pad: straight into the padded buffer
        wav64 = buf.wav64[:n]
        np.copyto(wav64, wav[:n])
        padded = buf.padded.numpy()
        clip = padded[s.pad : s.pad + s.clip_samples]
        clip[:n] = _normalize_in_place(wav64)
        clip[n:] = 0.0
        padded[: s.pad] = clip[1 : s.pad + 1][::-1]  # reflect: the edge sample is not repeated
        padded[s.pad + s.clip_samples :] = clip[-s.pad - 1 : -1][::-1]
        with torch.no_grad():
            frames = buf.padded.unfold(0, s.n_fft, s.hop_length)  # [n_frames, n_fft], a view
            torch.mul(frames, self.window(), out=buf.frames)
            torch.fft.rfft(buf.frames, dim=-1, out=buf.spectrum)
            parts = torch.view_as_real(buf.spectrum)
            torch.mul(parts[..., 0], parts[..., 0], out=buf.magnitude).addcmul_(parts[..., 1], parts[..., 1]).sqrt_()
            mel = self.apply_filterbank(buf.magnitude.T, out=buf.mel).clamp_(min=s.log_clamp).log_()
            stored = mel.half().numpy()  # a fresh array: same rounding as numpy's astype, several times faster
        return stored, min(s.n_frames, math.ceil(n / s.hop_length))

    def _buffers(self) -> _ClipBuffers:
        cache = _THREAD_BUFFERS.__dict__.setdefault("by_settings", {})
        if self.settings not in cache:
            cache[self.settings] = _ClipBuffers(self.settings)
        return cache[self.settings]
