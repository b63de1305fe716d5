"""`full` attention: every time-frequency position is a query (docs/paper.md section 3).

This is the paper's baseline. The attention matrices are materialised on purpose: [B, h, FT, FT]
for self-attention (SAGAN-style, multi-head) and [B, h, FT, L] for cross-attention, so that the
memory benchmark measures what the paper's memory claim is about. (A fused kernel such as
`torch.nn.functional.scaled_dot_product_attention` could avoid storing them; that is a different
comparison and is not what the paper describes.)
"""

from __future__ import annotations

import torch
from torch import nn

from scenesynth.models.attention_base import (
    Conv1x1,
    TokenProjection,
    attention_logits,
    head_dims,
    masked_softmax,
    merge_heads,
    split_heads,
)


class FullSelfAttention(nn.Module):
    """Multi-head self-attention over all F*T positions (attention matrix (FT)^2 per head)."""

    def __init__(self, channels: int, heads: int = 1, sn: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.key_dim, _ = head_dims(channels, heads)
        self.query = Conv1x1(channels, heads * self.key_dim, sn)
        self.key = Conv1x1(channels, heads * self.key_dim, sn)
        self.value = Conv1x1(channels, channels, sn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, n_freq, n_time = x.shape
        flat = x.reshape(batch, channels, n_freq * n_time)
        queries = split_heads(self.query(flat), self.heads)  # [B, h, dk, N]
        keys = split_heads(self.key(flat), self.heads)  # [B, h, dk, N]
        values = split_heads(self.value(flat), self.heads)  # [B, h, dv, N]
        weights = torch.softmax(attention_logits(queries, keys), dim=-1)  # [B, h, N, N]; logits freed at once
        # weights @ values^T rather than values @ weights^T: the gradient of the N x N weights is then
        # contiguous and needs no extra N x N copy in the backward pass.
        out = (weights @ values.transpose(-1, -2)).transpose(-1, -2)  # [B, h, dv, N]
        return merge_heads(out).reshape(batch, channels, n_freq, n_time)


class FullCrossAttention(nn.Module):
    """Multi-head cross-attention: queries from all F*T positions, keys/values from text tokens."""

    def __init__(self, channels: int, token_dim: int, heads: int = 1, sn: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.key_dim, value_dim = head_dims(channels, heads)
        self.query = Conv1x1(channels, heads * self.key_dim, sn)
        self.tokens = TokenProjection(token_dim, heads, self.key_dim, value_dim, sn)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, channels, n_freq, n_time = x.shape
        queries = split_heads(self.query(x.reshape(batch, channels, -1)), self.heads)  # [B, h, dk, N]
        keys, values = self.tokens(tokens)  # [B, h, dk, L], [B, h, dv, L]
        weights = masked_softmax(attention_logits(queries, keys), mask)  # [B, h, N, L]
        out = (weights @ values.transpose(-1, -2)).transpose(-1, -2)  # [B, h, dv, N]
        return merge_heads(out).reshape(batch, channels, n_freq, n_time)
