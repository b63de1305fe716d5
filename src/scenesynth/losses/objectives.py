"""Which side of the GAN minimises which loss (docs/paper.md section 4, as XMC-GAN).

D minimises hinge + SC, G2S, L2W on *real* pairs: it learns what matching
audio/text looks like. G minimises hinge + SC, G2S, L2W on *fake* pairs, plus F2R
against the (detached) real features of the same captions.

cfg is the ``loss:`` section of params.yaml, complete and validated by its schema when params are
loaded (config/schema/loss.yaml): params.yaml holds the values, nothing here repeats them.
A weight of 0 skips the term entirely (not computed, not logged).
"""

from __future__ import annotations

from typing import Mapping, Protocol

from torch import Tensor

from scenesynth.losses.adversarial import hinge_d_loss, hinge_g_loss
from scenesynth.losses.contrastive import (
    fake_to_real_loss,
    global_to_sentence_loss,
    local_to_word_loss,
    sentence_contrastive_loss,
)

WEIGHT_KEYS = ("hinge", "sc", "f2r", "g2s", "l2w")


class DiscriminatorOutputLike(Protocol):
    """The fields of the discriminator's output that the losses read (duck-typed)."""

    logit: Tensor  # [B]
    feature: Tensor  # [B, C] global sum-pooled features g(D(x))
    anchor: Tensor  # [B, P] h_g(feature), for SC
    proxy: Tensor  # [B, P] projected sentence embedding, for SC
    audio_embed: Tensor  # [B, P] for G2S
    text_embed: Tensor  # [B, P] for G2S
    regions: Tensor  # [B, R, E] local region features, for L2W
    words: Tensor  # [B, L, E] projected word features, for L2W
    word_mask: Tensor  # [B, L] bool, True = real token


def _conditional_terms(out: DiscriminatorOutputLike, caption_ids: Tensor, c: dict[str, float]) -> dict[str, Tensor]:
    """SC, G2S and L2W on one side's pairs (real for D, fake for G); zero weight skips."""
    terms: dict[str, Tensor] = {}
    if c["sc"] > 0:
        terms["sc"] = sentence_contrastive_loss(out.anchor, out.proxy, caption_ids, c["tau"])
    if c["g2s"] > 0:
        terms["g2s"] = global_to_sentence_loss(out.audio_embed, out.text_embed, c["tau"])
    if c["l2w"] > 0:
        terms["l2w"] = local_to_word_loss(
            out.regions, out.words, out.word_mask, c["gamma1"], c["gamma2"], c["gamma3"]
        )
    return terms


def _weighted_total(side: str, terms: dict[str, Tensor], c: dict[str, float]) -> tuple[Tensor, dict[str, float]]:
    """Sum of weight * term; the log holds the *unweighted* terms and the weighted total."""
    if not terms:
        raise ValueError(f"every {side.upper()} loss weight is 0: nothing to optimise")
    total = sum(c[name] * term for name, term in terms.items())
    log = {f"{side}/{name}": float(term.detach()) for name, term in terms.items()}
    log[f"{side}/total"] = float(total.detach())
    return total, log


def discriminator_objective(
    real_out: DiscriminatorOutputLike,
    fake_out: DiscriminatorOutputLike,
    caption_ids: Tensor,
    cfg: Mapping[str, float],
) -> tuple[Tensor, dict[str, float]]:
    """D's loss: w_hinge*hinge_d + w_sc*SC(real) + w_g2s*G2S(real) + w_l2w*L2W(real).

    fake_out should come from detached generator output (the caller's job); only its
    logit is used. Log keys: d/hinge, d/sc, d/g2s, d/l2w (computed terms) and d/total.
    """
    terms: dict[str, Tensor] = {}
    if cfg["hinge"] > 0:
        terms["hinge"] = hinge_d_loss(real_out.logit, fake_out.logit)
    terms.update(_conditional_terms(real_out, caption_ids, cfg))
    return _weighted_total("d", terms, cfg)


def generator_objective(
    fake_out: DiscriminatorOutputLike,
    real_out: DiscriminatorOutputLike,
    caption_ids: Tensor,
    cfg: Mapping[str, float],
) -> tuple[Tensor, dict[str, float]]:
    """G's loss: w_hinge*hinge_g + w_sc*SC(fake) + w_g2s*G2S(fake) + w_l2w*L2W(fake) + w_f2r*F2R.

    F2R compares fake.feature with real.feature.detach(): the real side is a fixed
    target, so G's step never pushes D's real features. Only real_out.feature is read.
    Log keys: g/hinge, g/sc, g/g2s, g/l2w, g/f2r (computed terms) and g/total.
    """
    terms: dict[str, Tensor] = {}
    if cfg["hinge"] > 0:
        terms["hinge"] = hinge_g_loss(fake_out.logit)
    terms.update(_conditional_terms(fake_out, caption_ids, cfg))
    if cfg["f2r"] > 0:
        terms["f2r"] = fake_to_real_loss(fake_out.feature, real_out.feature.detach(), cfg["tau"])
    return _weighted_total("g", terms, cfg)
