"""DiffAugment's translation for the discriminator's inputs (Zhao et al., NeurIPS 2020), in time only.

A discriminator that sees the same few hundred clips for tens of epochs can learn them by heart and
then gives the generator gradients about those clips rather than about their kind (issue 19: the demo
trains 40 epochs on 480 clips). Shifting every clip D sees, real and generated alike and in the
generator's update too (the shift is differentiable), by a random number of frames hides where in
the clip an event sits, which the demo's sounds leave to chance anyway, and keeps what each kind
sounds like. The shift is circular (a roll): no padding value to choose for a log-mel, and the
wrap-around seam is the same for real and generated clips. ``train.d_augment_shift`` is the largest
shift as a fraction of the clip's frames; 0 (the paper's training) draws nothing.
"""

from __future__ import annotations

import torch


def random_time_shift(mels: torch.Tensor, max_fraction: float) -> torch.Tensor:
    """[B, C, F, T] -> each row rolled along T by its own uniform draw in [-m, m] frames, m = round(max_fraction T)."""
    frames = mels.shape[-1]
    most = round(max_fraction * frames)
    if most <= 0:
        return mels
    shifts = torch.randint(-most, most + 1, (mels.shape[0], 1), device=mels.device)
    index = (torch.arange(frames, device=mels.device)[None, :] - shifts) % frames
    return torch.gather(mels, -1, index[:, None, None, :].expand_as(mels))
