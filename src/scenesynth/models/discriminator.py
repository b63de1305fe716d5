"""Projection discriminator with contrastive heads (docs/paper.md sections 3 and 4; paper section 2.2).

D (encoder): `levels` residual down-blocks from the mel to the local map [C, F0, T0], channels
max(C0 / 2^k, min_channels) at level k (mirror of G), ReLU. g: global sum pooling -> feature [B, C].
h_v: SN linear to one logit, plus the projection term <embed(sentence), g> (Miyato & Koyama 2018).

Choices:
- attention_plan is in D's order (resolution falling) and its last entry sits at level 1, mirroring
  the generator: the default ("single", "double", "triple") puts ASA at 32x128, double at 16x64 and
  triple at 8x32 at paper size.
- L2W regions come from the map at `region_level` (default 1, i.e. 8 x 32 = 256 regions at paper
  size, after that level's attention stage) through an SN 1x1 conv; XMC-GAN likewise takes its
  regions from an intermediate map rather than the final one.
- h_g is a two-layer SN MLP (C -> C -> P, ReLU between), as ContraGAN/ReACGAN's projection heads.
- ``minibatch_std_group`` > 0 (``model.d_minibatch_std``, off in the paper's setting): ProGAN's
  minibatch standard deviation enters the last block as one more channel, so D sees how much the
  samples of a batch differ (issue 19: a generator that ignores its noise).
- ``time_delta`` (``model.d_time_delta``, off in the paper's setting): D reads the log-mel's frame-to-frame
  difference as a second input channel, so an onset (a knock, a tick, a beep's edge: one frame at the demo's
  40 ms hop) is a large value D's first conv sees directly rather than a contrast it must learn to compute
  under spectral normalisation (issue 19: the demo's generator smooths those events into a steady band).
- ``peak`` (``model.d_peak``, off in the paper's setting): D also reads each mel bin's maximum over the clip,
  broadcast along time, as one more input channel. Every training clip is peak-normalised (its loudest sample at
  0.5), which pins each clip's loudest log-mel values (within +- 0.3 per kind on the demo); a conv D with sum
  pooling sees a single hot bin-frame as a small local change and let the demo's generator make its chirps' peaks
  3.4 nats and its beeps' 1.3 nats louder than real clips' on average. After a vocoder and the same peak
  normalisation that peak sets the level and the rest of the clip drops by a nat (issue 19: the audio reading heard
  those chirps as ticks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from scenesynth.models.attention import AttentionStage
from scenesynth.models.layers import (DiscriminatorBlock, level_channels, minibatch_std, resolution_levels, sn_conv2d,
                                     sn_linear)
from scenesynth.text.batch import TextBatch


@dataclass
class DiscriminatorOutput:
    """Everything the losses need from one pass of D (docs/paper.md section 4).

    logit:       [B]        h_v(g) + <embed(sentence), g>, for the hinge loss.
    feature:     [B, C]     g = global sum pooling of the local map (F2R uses it).
    anchor:      [B, P]     h_g(feature), SC loss anchor.
    proxy:       [B, P]     projection of the sentence embedding, SC loss proxy.
    audio_embed: [B, P]     feature projected to the shared audio-text space (G2S).
    text_embed:  [B, P]     sentence projected to the same space (G2S).
    regions:     [B, R, E]  region features of an intermediate map, R = F' * T' (L2W).
    words:       [B, L, E]  word embeddings projected to E (L2W).
    word_mask:   [B, L]     bool, True for real words.
    """

    logit: torch.Tensor
    feature: torch.Tensor
    anchor: torch.Tensor
    proxy: torch.Tensor
    audio_embed: torch.Tensor
    text_embed: torch.Tensor
    regions: torch.Tensor
    words: torch.Tensor
    word_mask: torch.Tensor


class Discriminator(nn.Module):
    def __init__(
        self,
        *,
        base_channels: int,
        n_mels: int,
        n_frames: int,
        sentence_dim: int,
        word_dim: int,
        attention_impl: str,
        heads: int,
        attention_plan: Sequence[str | None],
        proj_dim: int,
        region_dim: int,
        init_shape: Sequence[int],
        min_channels: int,
        region_level: int,
        minibatch_std_group: int = 0,
        time_delta: bool = False,
        peak: bool = False,
    ) -> None:
        super().__init__()
        self.minibatch_std_group, self.time_delta, self.peak = minibatch_std_group, time_delta, peak
        self.levels = resolution_levels(n_mels, n_frames, init_shape)
        if len(attention_plan) > self.levels - 1:
            raise ValueError(
                f"discriminator attention plan {list(attention_plan)} needs {len(attention_plan)} levels above the "
                f"lowest, but this shape has {self.levels - 1}"
            )
        if not 0 <= region_level < self.levels:
            raise ValueError(f"region_level must be in [0, {self.levels - 1}], got {region_level}")
        self.n_mels, self.n_frames = n_mels, n_frames
        channels = [level_channels(base_channels, level, min_channels) for level in range(self.levels + 1)]
        out_levels = list(range(self.levels - 1, -1, -1))  # level of each block's output
        extra = [1 if minibatch_std_group and i == len(out_levels) - 1 else 0 for i in range(len(out_levels))]
        self.blocks = nn.ModuleList(
            DiscriminatorBlock((1 + time_delta + peak if i == 0 else channels[level + 1]) + extra[i], channels[level],
                               first=i == 0)
            for i, level in enumerate(out_levels)
        )
        mode_at_level = {len(attention_plan) - j: mode for j, mode in enumerate(attention_plan)}
        self.attention = nn.ModuleList(
            nn.Identity() if mode_at_level.get(level) is None
            else AttentionStage(channels[level], mode_at_level[level], attention_impl, sentence_dim, word_dim, heads)
            for level in out_levels
        )
        self.region_block = out_levels.index(region_level)
        self.region_proj = sn_conv2d(channels[region_level], region_dim, 1)

        feature_dim = channels[0]
        self.logit_head = sn_linear(feature_dim, 1)  # h_v
        self.sentence_projection = sn_linear(sentence_dim, feature_dim, bias=False)  # projection-D term
        self.anchor_head = nn.Sequential(  # h_g
            sn_linear(feature_dim, feature_dim), nn.ReLU(), sn_linear(feature_dim, proj_dim)
        )
        self.proxy_head = sn_linear(sentence_dim, proj_dim)
        self.audio_embed_head = sn_linear(feature_dim, proj_dim)
        self.text_embed_head = sn_linear(sentence_dim, proj_dim)
        self.word_head = sn_linear(word_dim, region_dim)

    def input_channels(self, mel: torch.Tensor) -> torch.Tensor:
        """[B, 1, F, T] -> the log-mel, then its frame-to-frame change (``time_delta``) and each bin's maximum over
        the clip broadcast along time (``peak``) as further channels."""
        channels = [mel]
        if self.time_delta:
            channels.append(F.pad(mel.diff(dim=3), (1, 0)))
        if self.peak:
            channels.append(mel.amax(dim=3, keepdim=True).expand_as(mel))
        return torch.cat(channels, dim=1) if len(channels) > 1 else mel

    def forward(self, mel: torch.Tensor, text: TextBatch) -> DiscriminatorOutput:
        if mel.dim() != 4 or mel.shape[1:] != (1, self.n_mels, self.n_frames):
            raise ValueError(f"mel must be [B, 1, {self.n_mels}, {self.n_frames}], got {tuple(mel.shape)}")
        h = self.input_channels(mel)
        regions = None
        for index, (block, stage) in enumerate(zip(self.blocks, self.attention)):
            if self.minibatch_std_group and index == len(self.blocks) - 1:
                h = minibatch_std(h, self.minibatch_std_group)
            h = block(h)
            if isinstance(stage, AttentionStage):
                h = stage(h, text)
            if index == self.region_block:
                regions = self.region_proj(h).flatten(2).transpose(1, 2)  # [B, F'T', E]
        feature = F.relu(h).sum(dim=(2, 3))  # g: global sum pooling
        sentence = text.sentence
        logit = self.logit_head(feature).squeeze(1) + (self.sentence_projection(sentence) * feature).sum(dim=1)
        return DiscriminatorOutput(
            logit=logit,
            feature=feature,
            anchor=self.anchor_head(feature),
            proxy=self.proxy_head(sentence),
            audio_embed=self.audio_embed_head(feature),
            text_embed=self.text_embed_head(sentence),
            regions=regions,
            words=self.word_head(text.words),
            word_mask=text.word_mask,
        )
