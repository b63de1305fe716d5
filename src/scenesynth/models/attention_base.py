"""Shared pieces of the three attention implementations (docs/paper.md section 3).

Every attention module returns the attention *output* only, shaped like its input [B, C, F, T];
the residual connection and the learnt gate live in `AttentionStage` (attention.py).
Queries/keys are projected to `heads * key_dim` channels (SAGAN's C/8 rule, at least 4 per head),
values to C channels, split evenly over the heads.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from scenesynth.models.layers import sn_linear

MIN_KEY_DIM = 4


def head_dims(channels: int, heads: int) -> tuple[int, int]:
    """(key_dim, value_dim) per head; value heads must tile the channels exactly."""
    if heads < 1 or channels % heads != 0:
        raise ValueError(f"channels ({channels}) must be a positive multiple of heads ({heads})")
    key_dim = max(MIN_KEY_DIM, channels // (8 * heads))
    return key_dim, channels // heads


class Conv1x1(nn.Module):
    """Channel projection of a map [B, C, *spatial] (a 1x1 convolution written as a linear map)."""

    def __init__(self, in_channels: int, out_channels: int, sn: bool = True) -> None:
        super().__init__()
        self.linear = sn_linear(in_channels, out_channels, bias=False, sn=sn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("oc,bc...->bo...", self.linear.weight, x)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, heads*d, *rest] -> [B, heads, d, *rest]."""
    return x.reshape(x.shape[0], heads, x.shape[1] // heads, *x.shape[2:])


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, heads, d, *rest] -> [B, heads*d, *rest]."""
    return x.reshape(x.shape[0], x.shape[1] * x.shape[2], *x.shape[3:])


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last axis, ignoring keys where mask is False.

    Padded keys get -inf before the softmax. A row with no real key at all (an empty caption) would
    be 0/0 = NaN: its weights are set to zero instead, so such a sample gets no text contribution.
    `mask` is [B, L] and is broadcast over the middle axes of `logits` [B, ..., L].
    """
    if mask is None:
        return torch.softmax(logits, dim=-1)
    mask = mask.reshape(mask.shape[0], *([1] * (logits.dim() - 2)), mask.shape[-1])
    has_key = mask.any(dim=-1, keepdim=True)
    usable = mask | ~has_key
    weights = torch.softmax(logits.masked_fill(~usable, float("-inf")), dim=-1)
    return weights * has_key.to(weights.dtype)


class TokenProjection(nn.Module):
    """Keys [B, h, dk, L] and values [B, h, dv, L] of text tokens [B, L, D]."""

    def __init__(self, token_dim: int, heads: int, key_dim: int, value_dim: int, sn: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.key = sn_linear(token_dim, heads * key_dim, bias=False, sn=sn)
        self.value = sn_linear(token_dim, heads * value_dim, bias=False, sn=sn)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys = split_heads(self.key(tokens).transpose(1, 2), self.heads)
        values = split_heads(self.value(tokens).transpose(1, 2), self.heads)
        return keys, values


def attention_logits(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """queries [..., dk, M], keys [..., dk, K] -> scaled dot products [..., M, K].

    The 1/sqrt(d_k) temperature (used by all three implementations alike) is applied to the queries,
    so no second M x K tensor is made for the scaling; that matters for `full`, where M x K is (FT)^2.
    """
    return (queries * (1.0 / math.sqrt(queries.shape[-2]))).transpose(-1, -2) @ keys
