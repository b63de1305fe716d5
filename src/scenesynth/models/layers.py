"""Building blocks shared by the generator and the discriminator (docs/paper.md section 3).

Spectral normalisation is applied to every weight of G and D, as in BigGAN / OC-SupConGAN: it bounds
each layer's Lipschitz constant, which is what keeps the hinge-loss GAN stable. The one exception is
the conditional batch norm's gain/bias maps (see `ConditionalBatchNorm2d`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def sn_conv2d(in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = True, sn: bool = True) -> nn.Module:
    """A 'same'-padded conv, spectrally normalised unless sn=False."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
    return spectral_norm(conv) if sn else conv


def sn_linear(in_features: int, out_features: int, bias: bool = True, sn: bool = True) -> nn.Module:
    """A linear map, spectrally normalised unless sn=False."""
    linear = nn.Linear(in_features, out_features, bias=bias)
    return spectral_norm(linear) if sn else linear


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm without affine whose per-channel gain and bias come from the sentence embedding.

    gain = 1 + W_g s and bias = W_b s with W_g, W_b zero-initialised, so at initialisation the layer is
    plain batch norm (gamma exactly 1, beta 0) whatever the scale of the CLAP embedding (docs/paper.md section 2:
    it is left unnormalised). These two maps are deliberately *not* spectrally normalised: SN cannot
    represent a zero map, and the maps act on the condition, not on the activations.
    """

    def __init__(self, num_features: int, cond_dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.gain = nn.Linear(cond_dim, num_features, bias=False)
        self.bias = nn.Linear(cond_dim, num_features, bias=False)
        nn.init.zeros_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma = 1.0 + self.gain(cond)
        beta = self.bias(cond)
        return self.bn(x) * gamma[:, :, None, None] + beta[:, :, None, None]


class GeneratorBlock(nn.Module):
    """BigGAN residual up-block: CBN-ReLU-up(nearest x2)-conv3x3-CBN-ReLU-conv3x3, skip up + conv1x1.

    With ``noise_maps`` (``model.g_noise_maps`` other than "none"; the paper's block has none) a one-channel
    noise map at the block's output resolution (or one row per frame, broadcast over the bins) is added after each conv, scaled per channel by a learnt strength that
    starts at 0 (StyleGAN's noise inputs): local randomness the block can place (where a tick or knock
    falls) without carrying it up from the first 1 x 4 map. ``noise_strength`` sets that start instead (issue 19:
    from 0 the demo's strengths stay near it and its clips do not change with z)."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int, noise_maps: bool = False,
                 noise_strength: float = 0.0) -> None:
        super().__init__()
        self.norm1 = ConditionalBatchNorm2d(in_channels, cond_dim)
        self.conv1 = sn_conv2d(in_channels, out_channels, 3)
        self.norm2 = ConditionalBatchNorm2d(out_channels, cond_dim)
        self.conv2 = sn_conv2d(out_channels, out_channels, 3)
        self.skip = sn_conv2d(in_channels, out_channels, 1)
        self.noise_strength = (nn.Parameter(torch.full((2, 1, out_channels, 1, 1), float(noise_strength)))
                               if noise_maps else None)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """``noise`` [B, 2, 2H or 1, 2W]: the two maps of a noise_maps block (required there, ignored otherwise)."""
        h = F.relu(self.norm1(x, cond))
        h = F.interpolate(h, scale_factor=2, mode="nearest")
        h = self.conv1(h)
        if self.noise_strength is not None:
            h = h + self.noise_strength[0] * noise[:, :1]
        h = self.conv2(F.relu(self.norm2(h, cond)))
        if self.noise_strength is not None:
            h = h + self.noise_strength[1] * noise[:, 1:]
        return h + self.skip(F.interpolate(x, scale_factor=2, mode="nearest"))


class DiscriminatorBlock(nn.Module):
    """BigGAN residual down-block (SN, no BN): [ReLU]-conv3x3-ReLU-conv3x3-avgpool, skip conv1x1 + avgpool.

    The first block of D sees the raw mel, so it skips the leading ReLU (a log-mel is mostly negative:
    a ReLU there would throw it away) and pools before its 1x1 skip conv, as BigGAN's optimised block.
    """

    def __init__(self, in_channels: int, out_channels: int, first: bool = False) -> None:
        super().__init__()
        self.first = first
        self.conv1 = sn_conv2d(in_channels, out_channels, 3)
        self.conv2 = sn_conv2d(out_channels, out_channels, 3)
        self.skip = sn_conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))
        h = F.avg_pool2d(h, 2)
        if self.first:
            return h + self.skip(F.avg_pool2d(x, 2))
        return h + F.avg_pool2d(self.skip(x), 2)


def minibatch_std(x: torch.Tensor, group: int) -> torch.Tensor:
    """ProGAN's minibatch standard deviation as one extra channel: [B, C, F, T] -> [B, C + 1, F, T].

    Within each group of ``group`` samples (rows i, i + B/group, ...: interleaved, as ProGAN), the
    standard deviation of every feature over the group, averaged to one number that every member of
    the group sees. A batch whose samples are all alike (a generator that ignores its noise) has a
    lower one than a real batch, and D can tell. The group shrinks to a divisor of the batch size.
    """
    batch = x.shape[0]
    group = max(1, min(group, batch))
    while batch % group:
        group -= 1
    y = x.reshape(group, batch // group, *x.shape[1:])
    y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # [B / group]
    y = y.repeat(group)[:, None, None, None].expand(batch, 1, *x.shape[2:])
    return torch.cat([x, y], dim=1)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars (spectral norm's u/v vectors are buffers, so they are not counted)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def resolution_levels(n_mels: int, n_frames: int, init_shape: tuple[int, int] | list[int]) -> int:
    """Number of x2 resolution steps between init_shape [F0, T0] and the mel [n_mels, n_frames].

    G upsamples (and D downsamples) both axes together, so n_mels/F0 and n_frames/T0 must be the same
    power of two (the paper: 256/4 = 1024/16 = 64 -> six blocks).
    """
    if len(init_shape) != 2:
        raise ValueError(f"init_shape must be [F0, T0], got {init_shape!r}")
    init_freq, init_time = (int(v) for v in init_shape)
    if init_freq < 1 or init_time < 1 or n_mels % init_freq or n_frames % init_time:
        raise ValueError(f"mel shape {n_mels}x{n_frames} is not a multiple of init_shape {init_freq}x{init_time}")
    freq_ratio, time_ratio = n_mels // init_freq, n_frames // init_time
    if freq_ratio != time_ratio or freq_ratio < 2 or freq_ratio & (freq_ratio - 1):
        raise ValueError(
            f"n_mels/F0 = {n_mels}/{init_freq} and n_frames/T0 = {n_frames}/{init_time} must be the same power "
            f"of two (>= 2); got ratios {n_mels / init_freq:g} and {n_frames / init_time:g}"
        )
    return freq_ratio.bit_length() - 1


def level_channels(base_channels: int, level: int, min_channels: int) -> int:
    """Channels at `level` x2 steps above the lowest resolution: halved per step, floored (docs/paper.md section 3)."""
    return max(base_channels >> level, min_channels)
