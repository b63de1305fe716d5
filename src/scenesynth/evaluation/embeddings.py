"""Clip embeddings for FAD, behind a registry so the config names the one in use.

The paper's FAD uses PANNs Wavegram-Logmel-CNN14 (docs/paper.md section 6, ``panns.py``). It needs its ~330 MB
public checkpoint; when that file is missing, asking for it fails loudly (MissingPretrained,
saying how to fetch it) instead of silently substituting something else. ``logmel_stats`` is the
offline stand-in for demos and tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol

import librosa
import numpy as np
import soxr
import torch

from scenesynth.audio_io import waveform
from scenesynth.evaluation import panns

__all__ = [
    "ClipEmbedding",
    "LogMelStatsEmbedding",
    "embed_clips",
    "get_embedding",
    "known_embeddings",
]

class ClipEmbedding(Protocol):
    """What the FAD and conditioning stages need from an embedding."""

    name: str
    published_name: str | None  # its model folder in the DCASE dev set's published embeddings, if any
    sample_rate: int
    dim: int

    def embed(self, wave: np.ndarray) -> np.ndarray: ...

    def identity(self) -> dict: ...  # what its vectors depend on (the per-clip cache's key)


class LogMelStatsEmbedding:
    """Offline FAD stand-in: summary statistics of a PANNs-style log-mel spectrogram.

    Its FAD values are NOT comparable to the paper's PANNs numbers (baseline 61.276, system
    42.075): it is a different, far weaker embedding in a different space. Use it to compare runs
    of this pipeline with each other, never with published PANNs FADs.

    Front end = PANNs CNN14's own numbers so that the stand-in sees what PANNs would see:
    32 kHz mono, periodic Hann window 1024, hop 320, centred reflect-padded STFT, power
    spectrogram, 64 Slaney mel bins 50-14000 Hz (librosa's filterbank), 10 log10(max(mel, 1e-10)).

    Clip embedding (D = 256, every part a per-mel-bin statistic over time, so it does not depend
    on clip length):
      [0:64]    mean over time of the log-mel
      [64:128]  std over time of the log-mel
      [128:192] mean over time of |frame-to-frame delta| (the signed mean telescopes to
                (last - first) / (T - 1) and says nothing about the sound, so its magnitude is used)
      [192:256] std over time of the frame-to-frame delta
    """

    name = "logmel_stats"
    published_name = None  # the DCASE dev set publishes no such vectors: its reference must be audio
    sample_rate = 32_000
    n_fft = 1024
    hop_length = 320
    n_mels = 64
    fmin = 50.0
    fmax = 14_000.0
    amin = 1e-10
    dim = 4 * n_mels

    def __init__(self) -> None:
        mel = librosa.filters.mel(
            sr=self.sample_rate, n_fft=self.n_fft, n_mels=self.n_mels, fmin=self.fmin, fmax=self.fmax
        )
        self._mel_basis = torch.from_numpy(mel.astype(np.float64))  # [n_mels, n_fft // 2 + 1]
        self._window = torch.hann_window(self.n_fft, periodic=True, dtype=torch.float64)

    def identity(self) -> dict:
        return {"embedding": self.name}

    def log_mel(self, wave: np.ndarray) -> np.ndarray:
        """Log-mel spectrogram [n_mels, frames] in dB, computed in float64 for reproducibility."""
        signal = waveform(wave)
        if signal.shape[0] < self.n_fft:
            # Reflect padding needs more than n_fft // 2 samples; pad very short clips with silence.
            signal = np.pad(signal, (0, self.n_fft - signal.shape[0]))
        spectrum = torch.stft(
            torch.from_numpy(signal.astype(np.float64)),
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.n_fft,
            window=self._window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        power = spectrum.abs() ** 2  # [freq, frames]
        mel = self._mel_basis @ power
        return (10.0 * torch.log10(torch.clamp(mel, min=self.amin))).numpy()

    def embed(self, wave: np.ndarray) -> np.ndarray:
        """Embedding [256] float32 of one clip sampled at ``self.sample_rate``."""
        log_mel = self.log_mel(wave)
        delta = np.diff(log_mel, axis=1)  # >= 4 frames always exist after the padding above
        parts = [
            log_mel.mean(axis=1),
            log_mel.std(axis=1),
            np.abs(delta).mean(axis=1),
            delta.std(axis=1),
        ]
        return np.concatenate(parts).astype(np.float32)


def _logmel_stats(checkpoint: Path | None, device: str) -> ClipEmbedding:
    return LogMelStatsEmbedding()  # no weights, CPU numpy: both arguments are irrelevant


def _panns(checkpoint: Path | None, device: str) -> ClipEmbedding:
    return panns.PannsEmbedding(checkpoint if checkpoint is not None else panns.DEFAULT_PANNS_CHECKPOINT,
                                device=device, width_divisor=None)  # the width the file has (recorded)


_REGISTRY: dict[str, Callable[[Path | None, str], ClipEmbedding]] = {
    LogMelStatsEmbedding.name: _logmel_stats,
    panns.NAME: _panns,
}


def known_embeddings() -> list[str]:
    """Names ``get_embedding`` recognises (some may still raise MissingPretrained)."""
    return sorted(_REGISTRY)


def get_embedding(name: str, *, checkpoint: str | Path | None = None, device: str = "cpu") -> ClipEmbedding:
    """Build the embedding called ``name``.

    ``checkpoint``: weights file for embeddings that have one (PANNs; default
    ``data/pretrained/panns/Wavegram_Logmel_Cnn14_mAP=0.439.pth``, relative to the working
    directory); ignored by ``logmel_stats``. ``device``: where the network runs.
    Raises MissingPretrained for a known name that cannot be built here (e.g. its checkpoint is
    missing), ValueError for an unknown name.
    """
    factory = _REGISTRY.get(name)
    if factory is None:
        known = ", ".join(known_embeddings())
        raise ValueError(f"unknown embedding {name!r}; known embeddings: {known}")
    return factory(Path(checkpoint) if checkpoint is not None else None, device)


def embed_clips(
    embedding: ClipEmbedding, waves: list[np.ndarray], sample_rate: int
) -> np.ndarray:
    """Embeddings [N, D] of clips at ``sample_rate``, resampled to the embedding's rate.

    The dtype is the embedding's own (float32 for ``logmel_stats``, float64 for PANNs).
    soxr (high quality) does the resampling, the same library the rest of the pipeline uses.
    Embeddings with an ``embed_batch`` method (PANNs) get all clips at once, for batched inference.
    """
    if len(waves) == 0:
        raise ValueError("no clips to embed")
    signals = []
    for wave in waves:
        signal = waveform(wave)
        if sample_rate != embedding.sample_rate:
            signal = soxr.resample(signal, sample_rate, embedding.sample_rate, quality="HQ")
        signals.append(signal.astype(np.float32))
    embed_batch = getattr(embedding, "embed_batch", None)
    if callable(embed_batch):
        return np.asarray(embed_batch(signals))
    return np.stack([embedding.embed(signal) for signal in signals])
