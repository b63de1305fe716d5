"""Test signals shared by the embedding tests (32 kHz, float32)."""

import numpy as np

RATE = 32_000


def tone(freq_hz: float, seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def white_noise(seconds: float, seed: int, rate: int = RATE) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).normal(size=int(seconds * rate))).astype(np.float32)


def relative_distance(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.linalg.norm(x - y) / np.linalg.norm(y))
