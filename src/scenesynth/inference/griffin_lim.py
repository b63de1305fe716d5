"""Griffin-Lim: an offline STAND-IN for the 48 kHz HiFi-GAN vocoder.

The real pipeline turns generated log-mels into audio with the pretrained 48 kHz
HiFi-GAN of AudioLDM 2 / AudioSR (docs/paper.md section 1). Its weights are not always
at hand (licence, offline machines, tests), so this module inverts the exact
front end of ``scenesynth.features.mel`` instead. The audio is intelligible
enough to check a pipeline end to end, listen for gross errors and compute
metrics on a smoke run; it is NOT what the paper's numbers were made with and
must never be reported as such.

Inversion, in three steps:

1. mel -> linear magnitude: ``exp`` of the log-mel, then a non-negative
   least-squares estimate of the STFT magnitude (clamped pseudo-inverse refined by
   multiplicative NNLS updates; the filterbank has 256 rows for 1025 bins, so the
   magnitude is only determined up to the filterbank's null space);
2. fast Griffin-Lim (Perraudin et al. 2013, momentum 0.99) with a seeded random
   initial phase;
3. every projection uses the front end's own transform: reflect pad of
   (n_fft - hop) / 2 samples, ``torch.stft(center=False)``, and its exact
   least-squares inverse (overlap-add, then the adjoint of the reflect pad), so
   the waveform has exactly frames * hop samples.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from scenesynth.features.mel import MelFrontEnd, MelSettings

# Momentum of "fast Griffin-Lim"; 0.99 is the value of its paper, librosa and torchaudio.
_MOMENTUM = 0.99
_EPS = 1e-10


@functools.lru_cache(maxsize=4)
def _mel_pseudo_inverse(settings: MelSettings, dtype: torch.dtype) -> torch.Tensor:
    """[n_fft // 2 + 1, n_mels] Moore-Penrose inverse of the filterbank (computed in float64)."""
    basis = MelFrontEnd(settings).mel_basis(torch.float64)
    return torch.linalg.pinv(basis).to(dtype)


def mel_to_magnitude(mel: torch.Tensor, front_end: MelFrontEnd, n_nnls_iter: int = 20) -> torch.Tensor:
    """Non-negative STFT magnitude S with mel_basis @ S ~= mel: [n_mels, T] -> [n_bins, T].

    Starts from the clamped pseudo-inverse and runs multiplicative NNLS updates
    (Lee & Seung), which keep S >= 0 and never increase ||basis @ S - mel||^2.
    """
    basis = front_end.mel_basis(mel.dtype)
    magnitude = torch.clamp(_mel_pseudo_inverse(front_end.settings, mel.dtype) @ mel, min=0.0) + _EPS
    numerator = basis.T @ mel
    for _ in range(n_nnls_iter):
        # basis.T @ (basis @ S), not (basis.T @ basis) @ S: 4x fewer operations.
        magnitude = magnitude * numerator / (basis.T @ (basis @ magnitude) + _EPS)
    return magnitude


def _reflect_pad_adjoint(padded: torch.Tensor, pad: int) -> torch.Tensor:
    """Adjoint of ``F.pad(x, (pad, pad), mode='reflect')``: fold the mirrored edges back.

    torch's reflect pad excludes the edge sample: padded[:pad] = x[pad:0:-1] and
    padded[-pad:] = x[-2:-pad-2:-1].
    """
    interior = padded[pad:-pad].clone()
    interior[1 : pad + 1] += torch.flip(padded[:pad], dims=[0])
    interior[-pad - 1 : -1] += torch.flip(padded[-pad:], dims=[0])
    return interior


class _FrontEndStft:
    """The front end's STFT (on the reflect-padded signal) and its least-squares inverse."""

    def __init__(self, front_end: MelFrontEnd, n_frames: int, dtype: torch.dtype = torch.float64) -> None:
        s = front_end.settings
        self.settings = s
        self.n_samples = n_frames * s.hop_length
        self.padded_len = self.n_samples + 2 * s.pad
        self.window = front_end.window(dtype)
        # Overlap-add of the squared window, folded like the signal: the diagonal
        # normal matrix of the least-squares inverse.
        ones = torch.ones(s.n_fft, n_frames, dtype=dtype)
        envelope = self._overlap_add(ones * self.window[:, None] ** 2)
        self.inverse_envelope = 1.0 / torch.clamp(_reflect_pad_adjoint(envelope, s.pad), min=_EPS)

    def _overlap_add(self, frames: torch.Tensor) -> torch.Tensor:
        """[n_fft, T] windowed frames -> [padded_len] signal."""
        s = self.settings
        summed = torch.nn.functional.fold(
            frames.unsqueeze(0), output_size=(1, self.padded_len), kernel_size=(1, s.n_fft), stride=(1, s.hop_length)
        )
        return summed.reshape(-1)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        s = self.settings
        padded = torch.nn.functional.pad(wav[None, None], (s.pad, s.pad), mode="reflect")[0, 0]
        return torch.stft(
            padded, s.n_fft, s.hop_length, s.n_fft, self.window, center=False, onesided=True, return_complex=True
        )

    def inverse(self, spec: torch.Tensor) -> torch.Tensor:
        """Waveform whose forward STFT is closest (least squares) to ``spec``."""
        frames = torch.fft.irfft(spec, n=self.settings.n_fft, dim=0) * self.window[:, None]
        return _reflect_pad_adjoint(self._overlap_add(frames), self.settings.pad) * self.inverse_envelope


def griffin_lim(
    logmel: np.ndarray | torch.Tensor,
    front_end: MelFrontEnd,
    n_iter: int = 32,
    seed: int = 0,
    n_nnls_iter: int = 20,
    dtype: torch.dtype = torch.float32,
) -> np.ndarray:
    """Stand-in vocoder: natural-log mel [n_mels, frames] -> float32 waveform of frames * hop samples.

    Deterministic for a fixed ``seed`` (the only randomness is the initial phase)
    on a given machine and thread count; bitwise equality across BLAS/FFT builds
    is not promised.
    Runs on the CPU in ``dtype``: float32 is about twice as fast as float64 and
    just as good for a phase estimate. A float16 stored mel is accepted as is.
    """
    s = front_end.settings
    logmel = torch.as_tensor(logmel).detach().to("cpu", dtype)
    if logmel.dim() != 2 or logmel.shape[0] != s.n_mels:
        raise ValueError(f"expected a log-mel [{s.n_mels}, frames], got {tuple(logmel.shape)}")
    n_frames = logmel.shape[1]
    if n_frames * s.hop_length <= s.pad:
        raise ValueError(f"{n_frames} frames are too few for the {s.pad}-sample reflect pad")

    magnitude = mel_to_magnitude(torch.exp(logmel), front_end, n_nnls_iter)
    stft = _FrontEndStft(front_end, n_frames, dtype)
    generator = torch.Generator().manual_seed(seed)
    phase = torch.exp(2j * torch.pi * torch.rand(magnitude.shape, generator=generator, dtype=dtype))

    previous = torch.zeros_like(phase)
    for _ in range(n_iter):
        rebuilt = stft.forward(stft.inverse(magnitude * phase))
        accelerated = rebuilt - (_MOMENTUM / (1 + _MOMENTUM)) * previous
        phase = accelerated / (accelerated.abs() + _EPS)
        previous = rebuilt
    wav = stft.inverse(magnitude * phase)
    return wav.numpy().astype(np.float32)
