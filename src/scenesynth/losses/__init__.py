"""GAN losses (SPEC section 4): hinge, the four contrastive losses, and who minimises what."""

from scenesynth.losses.adversarial import hinge_d_loss, hinge_g_loss
from scenesynth.losses.contrastive import (
    DEFAULT_GAMMA1,
    DEFAULT_GAMMA2,
    DEFAULT_GAMMA3,
    DEFAULT_TAU,
    fake_to_real_loss,
    global_to_sentence_loss,
    local_to_word_loss,
    sentence_contrastive_loss,
    word_region_scores,
)
from scenesynth.losses.objectives import (
    LOSS_DEFAULTS,
    DiscriminatorOutputLike,
    discriminator_objective,
    generator_objective,
    resolve_loss_config,
)

__all__ = [
    "DEFAULT_GAMMA1",
    "DEFAULT_GAMMA2",
    "DEFAULT_GAMMA3",
    "DEFAULT_TAU",
    "LOSS_DEFAULTS",
    "DiscriminatorOutputLike",
    "discriminator_objective",
    "fake_to_real_loss",
    "generator_objective",
    "global_to_sentence_loss",
    "hinge_d_loss",
    "hinge_g_loss",
    "local_to_word_loss",
    "resolve_loss_config",
    "sentence_contrastive_loss",
    "word_region_scores",
]
