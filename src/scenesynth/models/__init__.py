"""The GAN of docs/paper.md section 3: generator, discriminator and their attention stages.

`build_models` turns the `model:` section of params.yaml (schema: config/schema/model.yaml, whose
defaults are the paper size) into a (Generator, Discriminator) pair.

Why these paper-size widths: BigGAN at 256 x 256 (the family OC-SupConGAN builds on) uses
96 * [16, 16, 8, 8, 4, 2, 1] channels, 1536 at 4 x 4 down to 96 at full resolution. docs/paper.md section 3 asks for
strict halving per block, so G starts at 1024 channels on the 4 x 16 map (16 * 64, BigGAN's top
multiplier with ch = 64) and halves to 512, 256, 128 at the attention levels (8x32, 16x64, 32x128),
reaching the floor of 32 at 128 x 512 and keeping it at 256 x 1024. The floor is what keeps a
256 x 1024 map affordable: 32 channels there hold as many activations as 128 channels at 256 x 256,
close to BigGAN-256's 96. D mirrors G (1024 channels on its 4 x 16 local map, so the global feature
g is 1024-d). The contrastive space P = 256 and L2W space E = 256 follow ContraGAN's and XMC-GAN's
smaller settings; heads = 4 gives 128 / 4 = 32 value channels per head at the largest attention map.
"""

from __future__ import annotations

from typing import Any

from scenesynth.models.attention import AttentionStage
from scenesynth.models.discriminator import Discriminator, DiscriminatorOutput
from scenesynth.models.generator import Generator
from scenesynth.models.layers import count_parameters

__all__ = [
    "AttentionStage",
    "Discriminator",
    "DiscriminatorOutput",
    "Generator",
    "build_models",
    "count_parameters",
]


def build_models(
    cfg: dict[str, Any], n_mels: int, n_frames: int, sentence_dim: int, word_dim: int
) -> tuple[Generator, Discriminator]:
    """Build G and D from params.yaml's `model:` section and the data/text dimensions.

    (`ema_decay` is read by the trainer, not here.) Building allocates parameters only (about 200 MB at
    paper size), no activations, so `count_parameters` works on a fresh build; `torch.device("meta")`
    also works but is slower on CPU (spectral norm's power iterations run through Python reference ops).
    """
    generator = Generator(
        z_dim=cfg["z_dim"],
        base_channels=cfg["g_channels"],
        n_mels=n_mels,
        n_frames=n_frames,
        sentence_dim=sentence_dim,
        word_dim=word_dim,
        attention_impl=cfg["attention_impl"],
        heads=cfg["heads"],
        init_shape=cfg["init_shape"],
        attention_plan=cfg["g_attention"],
        min_channels=cfg["min_channels"],
        output_scale=cfg["g_output_scale"],
        output_shift=cfg["g_output_shift"],
        noise_blocks=cfg.get("g_noise_blocks", False),  # .get: model files saved before the option
        noise_maps=cfg.get("g_noise_maps", "none"),
        noise_strength=cfg.get("g_noise_strength", 0.0),
        input_text=cfg.get("g_input_text", False),
        peak_norm=cfg.get("g_peak_norm", False),
        peak_cap=cfg.get("g_peak_cap", False),
    )
    discriminator = Discriminator(
        base_channels=cfg["d_channels"],
        n_mels=n_mels,
        n_frames=n_frames,
        sentence_dim=sentence_dim,
        word_dim=word_dim,
        attention_impl=cfg["attention_impl"],
        heads=cfg["heads"],
        attention_plan=cfg["d_attention"],
        proj_dim=cfg["proj_dim"],
        region_dim=cfg["region_dim"],
        init_shape=cfg["init_shape"],
        min_channels=cfg["min_channels"],
        region_level=cfg["region_level"],
        minibatch_std_group=cfg.get("d_minibatch_std", 0),  # .get: model files saved before the option
        time_delta=cfg.get("d_time_delta", False),
        peak=cfg.get("d_peak", False),
    )
    return generator, discriminator
