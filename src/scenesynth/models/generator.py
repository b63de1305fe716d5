"""Text-conditioned mel generator (docs/paper.md section 3; OC-SupConGAN / BigGAN layout grown to 256 x 1024).

z -> SN linear -> [C0, F0, T0] -> `levels` residual up-blocks (CBN on the sentence embedding) with
channels max(C0 / 2^k, min_channels) at level k -> last BN, ReLU, SN 1x1 conv -> learnt affine.

Choices:
- Only z enters the input linear; the sentence conditions every block through CBN, and the
  words/sentence through the attention stages, as docs/paper.md section 3 describes. With
  ``noise_blocks`` (``model.g_noise_blocks``, off in the paper's setting) z is split as BigGAN's
  hierarchical latent: one chunk into the input linear and one per block, concatenated with the
  sentence as that block's CBN condition, so the noise reaches every resolution directly instead of
  only through the first map, which the blocks can learn to wash out (issue 19).
- With ``noise_maps`` (``model.g_noise_maps``, "none" in the paper's setting) every block adds noise after
  each conv (layers.GeneratorBlock): "pixel" is StyleGAN's per-pixel noise; "time" draws one value per
  frame and shares it across the mel bins, the shape of an event's onset (a tick or knock is one frame
  in every bin), so a block can turn it into an event at a place z chooses. The maps are drawn from a stream seeded by
  the bits of each row of z, so G stays a function of (z, text): the same z gives the same clip (seeded
  generation, re-ranking and resumed runs rely on that), another z other maps (issue 19).
- With ``input_text`` (``model.g_input_text``, off in the paper's setting) the sentence enters the input linear
  beside z, so the first map's layout (at the demo's 1 x 4: where in time energy sits) depends on the text; without
  it CBN can only rescale and shift the channels of a layout z alone draws, and two kinds whose clips differ in
  timing (a tick against a beep) compete for the same layouts (issue 19).
- With ``peak_norm`` (``model.g_peak_norm``, off in the paper's setting) the output is peak-normalised as every
  training clip is: its loudest value is set to a level read from the sentence (a linear map), and the rest of the
  clip lies below it by what G makes. A training clip's loudest log-mel sits within a few tenths of a nat for its
  kind; the demo's generator made single bin-frames of chirps 3.4 nats and of beeps 1.3 nats louder than that, a
  local error D's sum pooling barely sees, and after a vocoder and the same normalisation the whole clip dropped a
  nat (issue 19). Pinned at the top, the same error shows as a clip too quiet everywhere.
- With ``peak_cap`` (``model.g_peak_cap``, off in the paper's setting) the output passes a soft ceiling at the
  sentence's level instead: min(out, level) smoothed by a softplus (``PEAK_CAP_SHARPNESS``), identity a nat below
  it. It forbids the overshoot without pinning every clip's maximum, so a clip may still be quieter than its kind's
  loudest, as a crowd under a chirp can be; ``peak_norm`` pins it and cost the background and the spread.
- attention_plan[j] is the stage after block j+1, i.e. at level j+1 (resolution 2^(j+1) * [F0, T0]);
  None skips a level. The default ("triple", "double", "single") puts them at 8x32, 16x64 and 32x128
  at paper size, so the largest attention map of G is 32 x 128 (128 channels).
- No tanh: a log-mel is ln(clamp(mel, 1e-5)) in roughly [-11.5, 3] (docs/paper.md section 1), which a tanh would
  have to be rescaled to anyway. The SN 1x1 conv has gain <= 1, so a learnt scalar affine
  (output_scale * y + output_shift, initialised from the config) gives the output its range and
  offset; the default shift -4.25 is the middle of [-11.5, 3].
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from scenesynth.models.attention import AttentionStage
from scenesynth.models.layers import GeneratorBlock, level_channels, resolution_levels, sn_conv2d, sn_linear
from scenesynth.text.batch import TextBatch


NOISE_MAPS = ("none", "pixel", "time")
# peak_cap's softplus sharpness: a value at the level comes out ln(2) / 4 = 0.17 nat below it, one a nat below
# 0.005 nat below, so the cap bends only the top nat, the few tenths real clips of one kind spread over
PEAK_CAP_SHARPNESS = 4.0


def noise_chunks(z_dim: int, levels: int) -> list[int]:
    """Sizes of z's chunks for the input linear and each of ``levels`` blocks: equal, the remainder to the input."""
    if z_dim < levels + 1:
        raise ValueError(f"z_dim {z_dim} cannot give a chunk to the input and to each of {levels} blocks")
    size = z_dim // (levels + 1)
    return [z_dim - size * levels] + [size] * levels


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
        noise_blocks: bool = False,
        noise_maps: str = "none",
        noise_strength: float = 0.0,
        input_text: bool = False,
        peak_norm: bool = False,
        peak_cap: bool = False,
    ) -> None:
        super().__init__()
        if noise_maps not in NOISE_MAPS:
            raise ValueError(f"noise_maps must be one of {', '.join(NOISE_MAPS)}, got {noise_maps!r}")
        if peak_norm and peak_cap:
            raise ValueError("peak_norm and peak_cap are two ways to bound the output's top: choose one")
        self.levels = resolution_levels(n_mels, n_frames, init_shape)
        # noise_blocks: z = [input chunk, one chunk per block]; each block's CBN sees [sentence, its chunk]
        self.z_chunks = noise_chunks(z_dim, self.levels) if noise_blocks else [z_dim]
        if len(attention_plan) > self.levels:
            raise ValueError(f"generator attention plan {list(attention_plan)} has more entries than its {self.levels} blocks")
        self.z_dim, self.n_mels, self.n_frames = z_dim, n_mels, n_frames
        self.init_shape = (int(init_shape[0]), int(init_shape[1]))
        channels = [level_channels(base_channels, level, min_channels) for level in range(self.levels + 1)]
        self.input_text = input_text  # the sentence beside z's first chunk in the input linear
        self.input = sn_linear(self.z_chunks[0] + (sentence_dim if input_text else 0),
                               channels[0] * self.init_shape[0] * self.init_shape[1])
        block_noise = self.z_chunks[1:] or [0] * self.levels
        self.blocks = nn.ModuleList(
            GeneratorBlock(channels[level - 1], channels[level], sentence_dim + block_noise[level - 1], noise_maps != "none",
                           noise_strength)
            for level in range(1, self.levels + 1)
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
        self.noise_maps = noise_maps
        self.peak_norm, self.peak_cap = peak_norm, peak_cap
        if peak_norm or peak_cap:  # the clip's top level, from the sentence alone: starts at 0 for every prompt
            self.peak_level = nn.Linear(sentence_dim, 1)
            nn.init.zeros_(self.peak_level.weight)
            nn.init.zeros_(self.peak_level.bias)

    def block_noise_maps(self, z: torch.Tensor) -> list[torch.Tensor | None]:
        """Each block's two noise maps at its output resolution, [B, 2, H, W] ("pixel") or [B, 2, 1, W] ("time",
        shared by every bin), drawn per row of z from a stream seeded by that row's bytes (CRC-32); Nones for "none"."""
        if self.noise_maps == "none":
            return [None] * self.levels
        shapes = [(2, 1 if self.noise_maps == "time" else self.init_shape[0] << level, self.init_shape[1] << level)
                  for level in range(1, self.levels + 1)]
        sizes = [a * b * c for a, b, c in shapes]
        rows = []
        for row in z.detach().float().cpu().numpy():
            stream = torch.Generator(device=z.device).manual_seed(zlib.crc32(row.tobytes()))
            rows.append(torch.randn(sum(sizes), generator=stream, device=z.device))
        flat = torch.stack(rows).to(z.dtype)
        return [part.view(len(z), *shape) for part, shape in zip(torch.split(flat, sizes, dim=1), shapes)]

    def forward(self, z: torch.Tensor, text: TextBatch) -> torch.Tensor:
        """z [B, z_dim] and the text conditioning -> log-mel [B, 1, n_mels, n_frames]."""
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [B, {self.z_dim}], got {tuple(z.shape)}")
        chunks = torch.split(z, self.z_chunks, dim=1)
        first = torch.cat([chunks[0], text.sentence.to(z.dtype)], dim=1) if self.input_text else chunks[0]
        h = self.input(first).view(z.shape[0], -1, *self.init_shape)
        conditions = ([torch.cat([text.sentence, chunk], dim=1) for chunk in chunks[1:]] if len(chunks) > 1
                      else [text.sentence] * self.levels)
        for block, stage, condition, noise in zip(self.blocks, self.attention, conditions, self.block_noise_maps(z)):
            h = block(h, condition, noise)
            if isinstance(stage, AttentionStage):
                h = stage(h, text)
        h = self.out_conv(F.relu(self.out_norm(h)))
        out = self.output_scale * h + self.output_shift
        if self.peak_norm or self.peak_cap:
            level = self.peak_level(text.sentence.to(out.dtype))[:, :, None, None]
            out = (out - out.amax(dim=(2, 3), keepdim=True) + level if self.peak_norm
                   else level - F.softplus(level - out, beta=PEAK_CAP_SHARPNESS))
        return out
