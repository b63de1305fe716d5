"""GAN losses (docs/paper.md section 4): hinge, the four contrastive losses, and who minimises what."""

from scenesynth.losses.adversarial import hinge_d_loss, hinge_g_loss
from scenesynth.losses.contrastive import (
    fake_to_real_loss,
    global_to_sentence_loss,
    local_to_word_loss,
    sentence_contrastive_loss,
    word_region_scores,
)
from scenesynth.losses.objectives import (
    DiscriminatorOutputLike,
    discriminator_objective,
    generator_objective,
)

__all__ = [
    "DiscriminatorOutputLike",
    "discriminator_objective",
    "fake_to_real_loss",
    "generator_objective",
    "global_to_sentence_loss",
    "hinge_d_loss",
    "hinge_g_loss",
    "local_to_word_loss",
    "sentence_contrastive_loss",
    "word_region_scores",
]
