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


def mismatched_text_loss(wrong_logit: Tensor) -> Tensor:
    """GAN-INT-CLS's matching-aware term (Reed et al., ICML 2016) for D: a real clip read with another clip's
    caption is scored as fake, mean(relu(1 + D(real, wrong text))). The hinge and the in-batch contrastive
    losses alone pay D for realism and for telling a batch's rows apart; this pays it for checking that a
    real sound fits its text, which a generator that serves one kind for several prompts then fails."""
    return F.relu(1.0 + wrong_logit).mean()


def r1_penalty(real_logit: Tensor, real_input: Tensor) -> Tensor:
    """R1 (Mescheder et al., ICML 2018): mean over the batch of |grad_x D(x)|^2 at the real clips.

    Unregularised GANs circle their equilibrium instead of settling on it; penalising D's slope on real
    data damps that circling. ``real_input`` must be the tensor D read (requires_grad set before D's
    forward); the graph is kept so the penalty's own gradient reaches D's weights (a double backward)."""
    (grad,) = torch.autograd.grad(real_logit.sum(), real_input, create_graph=True)
    return grad.pow(2).flatten(1).sum(dim=1).mean()


def lecam_penalty(real_logit: Tensor, fake_logit: Tensor, anchor_real: float, anchor_fake: float) -> Tensor:
    """LeCam regularisation (Tseng et al., CVPR 2021) for D under limited data:
    mean(relu(D(real) - a_fake)^2) + mean(relu(a_real - D(fake))^2), the anchors a being moving averages of
    D's mean logit on real and on fake clips. It keeps D's predictions from drifting apart as D memorises a
    small training set (480 clips in the demo), which otherwise hands G ever larger, shifting gradients."""
    return F.relu(real_logit - anchor_fake).pow(2).mean() + F.relu(anchor_real - fake_logit).pow(2).mean()


def lecam_anchors(anchors: tuple[float, float] | None, real_logit: Tensor, fake_logit: Tensor,
                  decay: float) -> tuple[float, float]:
    """The anchors (a_real, a_fake) moved towards this batch's mean logits: decay x old + (1 - decay) x new;
    the first batch's means when there are none yet."""
    real, fake = float(real_logit.detach().mean()), float(fake_logit.detach().mean())
    if anchors is None:
        return real, fake
    return decay * anchors[0] + (1.0 - decay) * real, decay * anchors[1] + (1.0 - decay) * fake
