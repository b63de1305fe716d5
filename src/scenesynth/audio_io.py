"""Audio files in and out: every stage that reads or writes a clip goes through here.

Reading: any format soundfile (libsndfile) decodes, as mono float32 (channels averaged), with a
reason for every clip that cannot be used (:class:`AudioReadError`), so that stages record it in
their rejects instead of stopping. Writing: 16-bit PCM, converted from float exactly as
libsndfile does, so that encoding in memory here changes no output sample.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

#: Audio files the sources look for in a user's folder.
AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".mp3")


class AudioReadError(ValueError):
    """An input clip cannot be used; the message is the reason recorded in rejects."""


def load_mono(path: str | Path) -> tuple[np.ndarray, int]:
    """Read any soundfile format as mono float32, raising :class:`AudioReadError` with a reason."""
    path = Path(path)
    if not path.is_file():
        raise AudioReadError("missing file")
    if path.stat().st_size == 0:
        raise AudioReadError("empty file (0 bytes)")
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioReadError(f"unreadable audio: {err}") from err
    if audio.shape[0] == 0:
        raise AudioReadError("no samples")
    audio = audio[:, 0] if audio.shape[1] == 1 else audio.mean(axis=1)  # a mean over one channel only copies
    if not np.isfinite(audio).all():
        raise AudioReadError("non-finite samples (NaN or Inf)")
    return audio, int(rate)


def pcm16(audio: np.ndarray) -> np.ndarray:
    """float -> int16 as libsndfile does when it writes float to PCM_16 FLAC (scale 32768,
    round half to even, clip), so that converting here changes no output sample."""
    scaled = np.rint(np.asarray(audio, dtype=np.float32) * np.float32(32768))
    return np.clip(scaled, -32768, 32767, out=scaled).astype(np.int16)


def encode16_bytes(audio: np.ndarray, rate: int, container: str = "FLAC") -> bytes:
    """A mono 16-bit FLAC (or WAV) file's bytes, encoded in memory (one write to disk instead of many)."""
    buffer = io.BytesIO()
    sf.write(buffer, pcm16(audio), rate, subtype="PCM_16", format=container)
    return buffer.getvalue()


def flac16_bytes(audio: np.ndarray, rate: int) -> bytes:
    return encode16_bytes(audio, rate, "FLAC")


def read_header(path: str | Path):
    """A file's header (soundfile's info: frames, samplerate, channels, format), without decoding it."""
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError, OSError) as err:
        raise AudioReadError(f"unreadable audio: {err}") from err
    if info.frames <= 0:
        raise AudioReadError("no audio frames")
    return info


def probe(path: str | Path) -> tuple[float, int]:
    """(duration in s, sample rate) from a file's header, without decoding it."""
    info = read_header(path)
    return info.frames / info.samplerate, int(info.samplerate)


def waveform(wave: np.ndarray) -> np.ndarray:
    """A mono float64 waveform [n], checked: 1-D, not empty, finite (ValueError otherwise)."""
    signal = np.asarray(wave)
    if signal.ndim != 1:
        raise ValueError(f"expected a mono waveform of shape [n], got shape {signal.shape}")
    if signal.shape[0] == 0:
        raise ValueError("empty waveform")
    signal = signal.astype(np.float64, copy=False)
    if not np.all(np.isfinite(signal)):
        raise ValueError("waveform contains NaN or inf")
    return signal
