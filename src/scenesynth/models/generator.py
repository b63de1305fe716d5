"""Text-conditioned mel generator (docs/paper.md section 3; OC-SupConGAN / BigGAN layout grown to 256 x 1024).

z -> SN linear -> [C0, F0, T0] -> `levels` residual up-blocks (CBN on the sentence embedding) with
channels max(C0 / 2^k, min_channels) at level k -> last BN, ReLU, SN 1x1 conv -> learnt affine.

Choices:
- Only z enters the input linear; the sentence conditions every block through CBN, and the
  words/sentence through the attention stages, as docs/paper.md section 3 describes.
- attention_plan[j] is the stage after block j+1, i.e. at level j+1 (resolution 2^(j+1) * [F0, T0]);
  None skips a level. The default ("triple", "double", "single") puts them at 8x32, 16x64 and 32x128
  at paper size, so the largest attention map of G is 32 x 128 (128 channels).
- No tanh: a log-mel is ln(clamp(mel, 1e-5)) in roughly [-11.5, 3] (docs/paper.md section 1), which a tanh would
  have to be rescaled to anyway. The SN 1x1 conv has gain <= 1, so a learnt scalar affine
  (output_scale * y + output_shift, initialised from the config) gives the output its range and
  offset; the default shift -4.25 is the middle of [-11.5, 3].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from scenesynth.models.attention import AttentionStage
from scenesynth.models.layers import GeneratorBlock, level_channels, resolution_levels, sn_conv2d, sn_linear
from scenesynth.text.batch import TextBatch


class Generator(nn.Module):
    def __init__(
        self,
        *,
        z_dim: int,
        base_channels: int,
        n_mels: int,
        n_frames: int,
        sentence_dim: int,
        word_dim: int,
        attention_impl: str,
        heads: int,
        init_shape: Sequence[int],
        attention_plan: Sequence[str | None],
        min_channels: int,
        output_scale: float,
        output_shift: float,
    ) -> None:
        super().__init__()
        self.levels = resolution_levels(n_mels, n_frames, init_shape)
        if len(attention_plan) > self.levels:
            raise ValueError(f"generator attention plan {list(attention_plan)} has more entries than its {self.levels} blocks")
        self.z_dim, self.n_mels, self.n_frames = z_dim, n_mels, n_frames
        self.init_shape = (int(init_shape[0]), int(init_shape[1]))
        channels = [level_channels(base_channels, level, min_channels) for level in range(self.levels + 1)]
        self.input = sn_linear(z_dim, channels[0] * self.init_shape[0] * self.init_shape[1])
        self.blocks = nn.ModuleList(
            GeneratorBlock(channels[level - 1], channels[level], sentence_dim) for level in range(1, self.levels + 1)
        )
        plan = list(attention_plan) + [None] * (self.levels - len(attention_plan))
        self.attention = nn.ModuleList(
            nn.Identity() if mode is None
            else AttentionStage(channels[level], mode, attention_impl, sentence_dim, word_dim, heads)
            for level, mode in enumerate(plan, start=1)
        )
        self.out_norm = nn.BatchNorm2d(channels[-1])
        self.out_conv = sn_conv2d(channels[-1], 1, 1)
        self.output_scale = nn.Parameter(torch.tensor(float(output_scale)))
        self.output_shift = nn.Parameter(torch.tensor(float(output_shift)))

    def forward(self, z: torch.Tensor, text: TextBatch) -> torch.Tensor:
        """z [B, z_dim] and the text conditioning -> log-mel [B, 1, n_mels, n_frames]."""
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [B, {self.z_dim}], got {tuple(z.shape)}")
        h = self.input(z).view(z.shape[0], -1, *self.init_shape)
        for block, stage in zip(self.blocks, self.attention):
            h = block(h, text.sentence)
            if isinstance(stage, AttentionStage):
                h = stage(h, text)
        h = self.out_conv(F.relu(self.out_norm(h)))
        return self.output_scale * h + self.output_shift
