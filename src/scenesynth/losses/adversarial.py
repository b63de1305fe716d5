"""Hinge adversarial losses (docs/paper.md section 4; paper eq. 1).

Eq. 1 of the paper writes the hinge with min(0, .) per sample; this is the same
loss averaged over the batch, written with relu as XMC-GAN and BigGAN do.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


def hinge_d_loss(real_logit: Tensor, fake_logit: Tensor) -> Tensor:
    """Discriminator hinge: mean(relu(1 - D(real))) + mean(relu(1 + D(fake))).

    The two means are taken separately so that real and fake batches may differ in
    size; logits of any shape ([B] or [B, 1]) are averaged over all elements.
    """
    return F.relu(1.0 - real_logit).mean() + F.relu(1.0 + fake_logit).mean()


def hinge_g_loss(fake_logit: Tensor) -> Tensor:
    """Generator hinge: -mean(D(fake)) (unbounded, as in SAGAN/BigGAN/XMC-GAN)."""
    return -torch.mean(fake_logit)
