"""`axial` attention: separate time attention and frequency attention, summed (docs/paper.md section 3).

The paper counts this baseline's attention matrices as T^2 + F^2, which is only true when one T x T
matrix is shared by every frequency row and one F x F matrix by every time column. So, like TF-SCA,
the queries/keys come from the axis summaries (time: X_t = mean over F, frequency: X_f = mean over T)
and the weights are applied to the full value map:
    out[:, f, t] = sum_t' A_t[t, t'] V[:, f, t'] + sum_f' A_f[f, f'] V[:, f', t].
(Per-row axial attention in the style of Ho et al. 2019 would need F*T^2 + T*F^2 instead.)

Cross-attention "along each axis" against text tokens has no axis to separate on the text side:
frequency queries X_f and time queries X_t each attend to the tokens and the two outputs are summed
over the grid. That is the same computation as TF-SCA's cross-attention (the "swap" only concerns
self-attention), so the class reuses it; the impl choice matters for ASA only.
"""

from __future__ import annotations

import torch
from torch import nn

from scenesynth.models.attention_base import Conv1x1, attention_logits, head_dims, merge_heads, split_heads
from scenesynth.models.attention_tfsca import AxisQueries, TFSCACrossAttention


class AxialSelfAttention(nn.Module):
    """Time attention (T x T, shared over f) plus frequency attention (F x F, shared over t)."""

    def __init__(self, channels: int, heads: int = 1, sn: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.key_dim, _ = head_dims(channels, heads)
        self.queries = AxisQueries(channels, heads, self.key_dim, sn)
        self.keys = AxisQueries(channels, heads, self.key_dim, sn)
        self.value = Conv1x1(channels, channels, sn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        freq_summary, time_summary = x.mean(dim=3), x.mean(dim=2)
        query_f, query_t = self.queries(freq_summary, time_summary)
        key_f, key_t = self.keys(freq_summary, time_summary)
        attn_t = torch.softmax(attention_logits(query_t, key_t), dim=-1)  # [B, h, T, T]
        attn_f = torch.softmax(attention_logits(query_f, key_f), dim=-1)  # [B, h, F, F]
        values = split_heads(self.value(x), self.heads)  # [B, h, dv, F, T]
        # einsum, not broadcast matmul: a broadcast matmul's backward would expand A_t / A_f per channel.
        along_time = torch.einsum("bhcfs,bhts->bhcft", values, attn_t)  # [B, h, dv, F, T]
        along_freq = torch.einsum("bhcgt,bhfg->bhcft", values, attn_f)  # [B, h, dv, F, T]
        return merge_heads(along_time + along_freq)


class AxialCrossAttention(TFSCACrossAttention):
    """Per-axis cross-attention to text tokens; identical to TF-SCA's cross form (see module doc)."""
