"""Synthetic sound sources for the DEMO dataset (none of this is recorded audio).

Each function draws its own random parameters from the ``rng`` it is given and
returns ``n_samples`` of float64 audio at ``sample_rate``. Every kind has its
own spectral/temporal signature (tonal bursts, sweeps, clicks, chirps, low hum,
low thuds), so that a model trained on the demo data has something learnable
and a simple log-mel classifier can tell the foregrounds apart. Levels are not
normalised here; the mixer in :mod:`scenesynth.data.demo.scenes` does that.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import signal

SoundSynth = Callable[[np.random.Generator, int, int], np.ndarray]


# --------------------------------------------------------------------------- helpers
def _bandpass(x: np.ndarray, low_hz: float, high_hz: float, sample_rate: int, order: int = 4) -> np.ndarray:
    nyquist = sample_rate / 2
    high_hz = min(high_hz, 0.95 * nyquist)
    sos = signal.butter(order, [low_hz, high_hz], btype="bandpass", fs=sample_rate, output="sos")
    return signal.sosfilt(sos, x)


def _lowpass(x: np.ndarray, cutoff_hz: float, sample_rate: int, order: int = 4) -> np.ndarray:
    sos = signal.butter(order, min(cutoff_hz, 0.45 * sample_rate), btype="lowpass", fs=sample_rate, output="sos")
    return signal.sosfilt(sos, x)


def _resonator(x: np.ndarray, center_hz: float, bandwidth_hz: float, sample_rate: int) -> np.ndarray:
    """Two-pole resonance (a vowel formant); far cheaper to set up than a Butterworth design."""
    radius = np.exp(-np.pi * bandwidth_hz / sample_rate)
    a = [1.0, -2.0 * radius * np.cos(2 * np.pi * center_hz / sample_rate), radius**2]
    return signal.lfilter([1.0 - radius], a, x)


def _ramped_gate(length: int, ramp: int) -> np.ndarray:
    """A rectangular gate with raised-cosine edges, so bursts do not click."""
    gate = np.ones(length)
    ramp = max(1, min(ramp, length // 2))
    edge = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, ramp))
    gate[:ramp] = edge
    gate[length - ramp :] = edge[::-1]
    return gate


def _add_at(out: np.ndarray, start: int, event: np.ndarray) -> None:
    """Add ``event`` into ``out`` at ``start``, cropping whatever overhangs the clip."""
    if start >= len(out) or start + len(event) <= 0:
        return
    lo = max(start, 0)
    hi = min(start + len(event), len(out))
    out[lo:hi] += event[lo - start : hi - start]


def _onset(rng: np.random.Generator, n_samples: int, latest_fraction: float = 0.25) -> int:
    """Random start of the first event, early enough that short clips still contain it."""
    return int(rng.uniform(0.0, latest_fraction) * n_samples)


def _slow_random_envelope(rng: np.random.Generator, n_samples: int, sample_rate: int, rate_hz: float) -> np.ndarray:
    """Smooth positive random fluctuation (mean about 1) changing at roughly ``rate_hz``."""
    n_knots = max(4, int(n_samples / sample_rate * rate_hz) + 2)
    knots = rng.standard_normal(n_knots)
    curve = np.interp(np.linspace(0, n_knots - 1, n_samples), np.arange(n_knots), knots)
    return np.exp(0.35 * curve)


# --------------------------------------------------------------------------- foregrounds
def alarm(rng: np.random.Generator, n_samples: int, sample_rate: int) -> np.ndarray:
    """Beeping alarm: square-ish tone bursts (2-3.2 kHz) with a regular on/off rhythm."""
    out = np.zeros(n_samples)
    tone_hz = rng.uniform(2000.0, 3200.0)
    beep_s = rng.uniform(0.06, 0.18)
    gap_s = beep_s * rng.uniform(0.6, 1.5)
    beep_len = int(beep_s * sample_rate)
    t = np.arange(beep_len) / sample_rate
    beep = (np.sin(2 * np.pi * tone_hz * t) + 0.3 * np.sin(2 * np.pi * 3 * tone_hz * t)) * _ramped_gate(
        beep_len, int(0.004 * sample_rate)
    )
    start = _onset(rng, n_samples)
    max_beeps = int(rng.integers(4, 40))
    for _ in range(max_beeps):
        _add_at(out, start, beep * rng.uniform(0.9, 1.0))
        start += int((beep_s + gap_s) * sample_rate)
    return out


def siren(rng: np.random.Generator, n_samples: int, sample_rate: int) -> np.ndarray:
    """Siren: a continuous tone whose pitch sweeps up and down (500-1700 Hz) periodically."""
    center_hz = rng.uniform(700.0, 1150.0)
    depth_hz = center_hz * rng.uniform(0.2, 0.45)
    period_s = rng.uniform(0.5, 3.0)
    t = np.arange(n_samples) / sample_rate
    lfo_phase = 2 * np.pi * t / period_s + rng.uniform(0, 2 * np.pi)
    # "wail" sweeps smoothly, "yelp" rises with a sawtooth and drops back at once.
    lfo = np.sin(lfo_phase) if rng.random() < 0.5 else signal.sawtooth(lfo_phase)
    phase = 2 * np.pi * np.cumsum(center_hz + depth_hz * lfo) / sample_rate
    tone = np.sin(phase) + 0.35 * np.sin(2 * phase) + 0.15 * np.sin(3 * phase)
    start = _onset(rng, n_samples, 0.2)
    envelope = np.zeros(n_samples)
    envelope[start:] = _ramped_gate(n_samples - start, int(0.3 * sample_rate))
    # An approaching or receding vehicle: the level drifts over the clip.
    envelope *= np.linspace(1.0, rng.uniform(0.4, 1.6), n_samples)
    return tone * envelope


def clock(rng: np.random.Generator, n_samples: int, sample_rate: int) -> np.ndarray:
    """Ticking clock: very short resonant clicks at a steady tick-tock interval."""
    out = np.zeros(n_samples)
    interval_s = rng.uniform(0.35, 0.8)
    tick_hz = rng.uniform(2500.0, 5000.0)
    decay_s = rng.uniform(0.002, 0.006)
    tick_len = int(0.03 * sample_rate)
    t = np.arange(tick_len) / sample_rate
    start = _onset(rng, n_samples, 0.15)
    tock = False
    while start < n_samples:
        pitch = tick_hz * (0.8 if tock else 1.0)
        ring = np.sin(2 * np.pi * pitch * t) + 0.5 * _bandpass(rng.standard_normal(tick_len), 1500, 9000, sample_rate)
        _add_at(out, start, ring * np.exp(-t / decay_s) * (0.75 if tock else 1.0))
        tock = not tock
        start += int(interval_s * sample_rate * rng.uniform(0.99, 1.01))
    return out


def chirps(rng: np.random.Generator, n_samples: int, sample_rate: int) -> np.ndarray:
    """Bird-like chirps: short fast frequency sweeps (3.5-8 kHz) with vibrato, in phrases."""
    out = np.zeros(n_samples)
    base_hz = rng.uniform(3500.0, 6000.0)
    start = _onset(rng, n_samples, 0.2)
    while start < n_samples:
        for _ in range(int(rng.integers(2, 7))):
            chirp_len = int(rng.uniform(0.03, 0.12) * sample_rate)
            t = np.arange(chirp_len) / sample_rate
            sweep = np.linspace(0.0, rng.uniform(-1500.0, 2000.0), chirp_len)
            vibrato = rng.uniform(100.0, 400.0) * np.sin(2 * np.pi * rng.uniform(30.0, 80.0) * t)
            phase = 2 * np.pi * np.cumsum(base_hz * rng.uniform(0.9, 1.1) + sweep + vibrato) / sample_rate
            _add_at(out, start, np.sin(phase) * np.hanning(chirp_len) * rng.uniform(0.5, 1.0))
            start += chirp_len + int(rng.uniform(0.02, 0.08) * sample_rate)
        start += int(rng.uniform(0.3, 1.2) * sample_rate)
    return out


def engine(rng: np.random.Generator, n_samples: int, sample_rate: int) -> np.ndarray:
    """Idling engine: a low harmonic series (25-55 Hz fundamental) with slow throbbing."""
    t = np.arange(n_samples) / sample_rate
    f0_hz = rng.uniform(25.0, 55.0)
    drift = 1.0 + 0.02 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(f0_hz * drift) / sample_rate
    rolloff = rng.uniform(0.7, 1.3)
    hum = np.zeros(n_samples)
    for k in range(1, int(1500.0 / f0_hz) + 1):
        hum += np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k**rolloff
    throb = 1.0 + rng.uniform(0.2, 0.5) * np.sin(2 * np.pi * rng.uniform(0.5, 3.0) * t)
    rumble = 0.3 * _lowpass(rng.standard_normal(n_samples), 400.0, sample_rate)
    start = _onset(rng, n_samples, 0.15)
    envelope = np.zeros(n_samples)
    envelope[start:] = _ramped_gate(n_samples - start, int(0.2 * sample_rate))
    return (hum * throb + rumble) * envelope


def knocking(rng: np.random.Generator, n_samples: int, sample_rate: int) -> np.ndarray:
    """Knocks on a door: groups of damped low resonances (100-300 Hz) with a short thud."""
    out = np.zeros(n_samples)
    resonance_hz = rng.uniform(100.0, 300.0)
    decay_s = rng.uniform(0.025, 0.06)
    knock_len = int(0.25 * sample_rate)
    t = np.arange(knock_len) / sample_rate
    start = _onset(rng, n_samples, 0.2)
    while start < n_samples:
        spacing_s = rng.uniform(0.12, 0.3)
        for _ in range(int(rng.integers(2, 6))):
            # Wooden panels ring at inharmonic modes; higher modes die away faster.
            body = sum(
                weight * np.sin(2 * np.pi * ratio * resonance_hz * t) * np.exp(-t * ratio / decay_s)
                for ratio, weight in ((1.0, 1.0), (2.3, 0.5), (4.1, 0.25))
            )
            thud = _lowpass(rng.standard_normal(knock_len), 2000.0, sample_rate) * np.exp(-t / 0.004)
            _add_at(out, start, (body + 0.5 * thud) * rng.uniform(0.6, 1.0))
            start += int(spacing_s * sample_rate * rng.uniform(0.9, 1.1))
        start += int(rng.uniform(0.5, 1.5) * sample_rate)
    return out


# --------------------------------------------------------------------------- backgrounds
def water(rng: np.random.Generator, n_samples: int, sample_rate: int) -> np.ndarray:
    """Running water: band-passed noise with a fast bubbly level flutter plus rising bubble blips."""
    low_hz = rng.uniform(300.0, 700.0)
    noise = _bandpass(rng.standard_normal(n_samples), low_hz, rng.uniform(2500.0, 5000.0), sample_rate)
    noise *= _slow_random_envelope(rng, n_samples, sample_rate, rate_hz=rng.uniform(8.0, 20.0))
    bubbles = np.zeros(n_samples)
    n_bubbles = rng.poisson(rng.uniform(20.0, 60.0) * n_samples / sample_rate)
    for _ in range(n_bubbles):
        blip_len = int(rng.uniform(0.005, 0.02) * sample_rate)
        t = np.arange(blip_len) / sample_rate
        pitch_hz = rng.uniform(600.0, 2500.0) * (1.0 + 3.0 * t)  # bubbles rise in pitch as they close
        blip = np.sin(2 * np.pi * np.cumsum(pitch_hz) / sample_rate) * np.hanning(blip_len)
        _add_at(bubbles, int(rng.integers(0, n_samples)), blip * rng.uniform(0.2, 1.0))
    noise /= np.std(noise) + 1e-12
    bubbles /= np.std(bubbles) + 1e-12
    return noise + rng.uniform(0.3, 0.8) * bubbles


def crowd(rng: np.random.Generator, n_samples: int, sample_rate: int) -> np.ndarray:
    """Crowd babble: several buzzy 'voices', each a syllable chain through changing vowel formants."""
    out = np.zeros(n_samples)
    for _ in range(int(rng.integers(6, 12))):
        f0_hz = rng.uniform(90.0, 240.0)
        level = rng.uniform(0.4, 1.0)
        start = int(rng.integers(-sample_rate // 2, sample_rate // 2))
        while start < n_samples:
            syllable_len = int(rng.uniform(0.12, 0.3) * sample_rate)
            if rng.random() < 0.25:  # pauses between words
                start += syllable_len
                continue
            pitch = f0_hz * np.linspace(1.0, rng.uniform(0.85, 1.15), syllable_len)
            cycles = np.cumsum(pitch) / sample_rate + rng.random()
            buzz = 2.0 * (cycles % 1.0) - 1.0  # sawtooth: a buzzy glottal source
            formants = (rng.uniform(300, 800), rng.uniform(900, 2300), rng.uniform(2400, 3200))
            voiced = sum(_resonator(buzz, f, 0.15 * f, sample_rate) / (i + 1) for i, f in enumerate(formants))
            _add_at(out, start, voiced * np.hanning(syllable_len) * level)
            start += syllable_len
    room = 0.1 * _bandpass(rng.standard_normal(n_samples), 200.0, 4000.0, sample_rate)
    return out / (np.std(out) + 1e-12) + room


def traffic(rng: np.random.Generator, n_samples: int, sample_rate: int) -> np.ndarray:
    """Distant traffic: low-passed rumble, with swells as individual vehicles pass by."""
    rumble = _lowpass(rng.standard_normal(n_samples), rng.uniform(250.0, 600.0), sample_rate)
    rumble /= np.std(rumble) + 1e-12
    passes = np.zeros(n_samples)
    t = np.arange(n_samples) / sample_rate
    duration_s = n_samples / sample_rate
    for _ in range(1 + rng.poisson(duration_s / 2.0)):
        center_s = rng.uniform(-0.5, duration_s + 0.5)
        width_s = rng.uniform(0.5, 1.5)
        swell = np.exp(-0.5 * ((t - center_s) / width_s) ** 2)
        tyres = _lowpass(rng.standard_normal(n_samples), rng.uniform(400.0, 1200.0), sample_rate)
        passes += swell * tyres / (np.std(tyres) + 1e-12) * rng.uniform(1.0, 3.0)
    return rumble + passes


def room_tone(rng: np.random.Generator, n_samples: int, sample_rate: int) -> np.ndarray:
    """Faint steady noise floor for clips without a background.

    Real recordings are never digitally silent; exact zeros would also give
    -inf in downstream log-mel features.
    """
    return _lowpass(rng.standard_normal(n_samples), rng.uniform(1500.0, 6000.0), sample_rate, order=2)


FOREGROUND_SYNTHS: dict[str, SoundSynth] = {
    "alarm": alarm,
    "siren": siren,
    "clock": clock,
    "chirps": chirps,
    "engine": engine,
    "knocking": knocking,
}

BACKGROUND_SYNTHS: dict[str, SoundSynth] = {
    "water": water,
    "crowd": crowd,
    "traffic": traffic,
}
