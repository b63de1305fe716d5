"""Listening and looking during training: a few generated mels as images and audio in MLflow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from scenesynth.features.mel import MelFrontEnd
from scenesynth.inference.griffin_lim import griffin_lim
from scenesynth.utils.atomic import atomic_path


def mel_figure(mels: list[np.ndarray], titles: list[str]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(mels), 1, figsize=(8, 2.2 * len(mels)), squeeze=False)
    for ax, mel, title in zip(axes[:, 0], mels, titles):
        ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=-11.5, vmax=2.0)
        ax.set_title(title[:90], fontsize=8)
        ax.set_xlabel("frame")
        ax.set_ylabel("mel bin")
    fig.tight_layout()
    return fig


@torch.no_grad()
def log_samples(state, cache, params: dict, folder: Path, tracker, device: torch.device, n: int = 2) -> None:
    """Generate `n` mels for fixed captions with the (EMA) generator; log image + Griffin-Lim audio."""
    import matplotlib.pyplot as plt

    generator = state.generator_ema if state.generator_ema is not None else state.generator
    captions = cache.captions[:n]
    text = cache.batch(captions).to(device)
    gen = torch.Generator(device="cpu").manual_seed(params["seed"])
    z = torch.randn(len(captions), params["model"]["z_dim"], generator=gen).to(device)
    was_training = generator.training
    generator.eval()
    try:
        mels = generator(z, text)[:, 0].float().cpu().numpy()
    finally:
        generator.train(was_training)
    fig = mel_figure(list(mels), [f"step {state.step}: {c}" for c in captions])
    tracker.figure(fig, f"samples/step_{state.step:07d}.png")
    plt.close(fig)
    front_end = MelFrontEnd.from_params(params["audio"])
    wave = griffin_lim(mels[0], front_end, n_iter=16, seed=params["seed"])
    path = folder / f"step_{state.step:07d}.wav"
    with atomic_path(path) as tmp:
        sf.write(tmp, np.clip(wave, -1, 1), front_end.settings.sample_rate, subtype="PCM_16")
    tracker.artifact(path, "samples")
