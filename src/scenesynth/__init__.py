"""scenesynth: a reproducible text-to-audio GAN pipeline (KT Corporation, DCASE 2024 Task 7)."""

__version__ = "0.1.0"
