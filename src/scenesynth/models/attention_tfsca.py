"""Time-frequency swap cross attention, TF-SCA (docs/paper.md section 3, paper section 2.3).

X_f = mean over T ([C, F]) and X_t = mean over F ([C, T]) are the only queries and keys, so the
attention matrices are F x T and T x F (self) or F x L and T x L (cross) instead of (FT)^2 or FT x L.
Per head h the self output is W_h * V_h with W_h = A_ft + A_tf^T [F, T] weighting the value map
elementwise (broadcast over that head's channels). Cross outputs are the broadcast sum
O_f[:, f] + O_t[:, t]; no F x T x L tensor is ever built. Logits carry a 1/sqrt(d_k) temperature,
as in the other two implementations.
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


class AxisQueries(nn.Module):
    """Projections of the frequency summary X_f and the time summary X_t to [B, h, dk, F] / [B, h, dk, T]."""

    def __init__(self, channels: int, heads: int, key_dim: int, sn: bool) -> None:
        super().__init__()
        self.heads = heads
        self.freq = Conv1x1(channels, heads * key_dim, sn)
        self.time = Conv1x1(channels, heads * key_dim, sn)

    def forward(self, freq_summary: torch.Tensor, time_summary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return split_heads(self.freq(freq_summary), self.heads), split_heads(self.time(time_summary), self.heads)


class TFSCASelfAttention(nn.Module):
    """Self TF-SCA: frequency queries attend to time keys and time queries to frequency keys."""

    def __init__(self, channels: int, heads: int = 1, sn: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.key_dim, _ = head_dims(channels, heads)
        self.queries = AxisQueries(channels, heads, self.key_dim, sn)  # Wq_f, Wq_t
        self.keys = AxisQueries(channels, heads, self.key_dim, sn)  # Wk_f, Wk_t
        self.value = Conv1x1(channels, channels, sn)

    def weight_map(self, x: torch.Tensor) -> torch.Tensor:
        """W = A_ft + A_tf^T, shape [B, h, F, T]."""
        freq_summary, time_summary = x.mean(dim=3), x.mean(dim=2)
        query_f, query_t = self.queries(freq_summary, time_summary)
        key_f, key_t = self.keys(freq_summary, time_summary)
        freq_to_time = torch.softmax(attention_logits(query_f, key_t), dim=-1)  # [B, h, F, T]
        time_to_freq = torch.softmax(attention_logits(query_t, key_f), dim=-1)  # [B, h, T, F]
        return freq_to_time + time_to_freq.transpose(-1, -2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = split_heads(self.value(x), self.heads)  # [B, h, dv, F, T]
        return merge_heads(values * self.weight_map(x).unsqueeze(2))


class TFSCACrossAttention(nn.Module):
    """Cross TF-SCA against text tokens: A_f [F, L] and A_t [T, L], output O_f[:, f] + O_t[:, t]."""

    def __init__(self, channels: int, token_dim: int, heads: int = 1, sn: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.key_dim, value_dim = head_dims(channels, heads)
        self.queries = AxisQueries(channels, heads, self.key_dim, sn)  # Wq_f, Wq_t
        self.tokens = TokenProjection(token_dim, heads, self.key_dim, value_dim, sn)  # Wk, Wv

    def forward(self, x: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        query_f, query_t = self.queries(x.mean(dim=3), x.mean(dim=2))  # [B, h, dk, F], [B, h, dk, T]
        keys, values = self.tokens(tokens)  # [B, h, dk, L], [B, h, dv, L]
        attn_f = masked_softmax(attention_logits(query_f, keys), mask)  # [B, h, F, L]
        attn_t = masked_softmax(attention_logits(query_t, keys), mask)  # [B, h, T, L]
        out_f = values @ attn_f.transpose(-1, -2)  # [B, h, dv, F]
        out_t = values @ attn_t.transpose(-1, -2)  # [B, h, dv, T]
        return merge_heads(out_f.unsqueeze(-1) + out_t.unsqueeze(-2))
