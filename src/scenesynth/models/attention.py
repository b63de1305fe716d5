"""Single / double / triple attention stages (docs/paper.md section 3, paper section 2.3 and Figure 3).

Kinds: audio self-attention (ASA, "self"), audio-to-sentence cross-attention (A2S-CA, "sentence",
the sentence is one token, L = 1) and audio-to-word cross-attention (A2W-CA, "word", padded words
masked). Modes: single = ASA; double = A2S + A2W; triple = ASA + A2S + A2W.
Implementations: "full" (attention_full.py), "axial" (attention_axial.py), "tfsca" (attention_tfsca.py).

Stage form (one learnt scalar gate per kind, all initialised at 0):
    out = X + Mix(concat_k(gamma_k * attn_k(X)))
Mix is a bias-free SN 1x1 conv from (#kinds * C) to C channels, so with every gamma_k = 0 the stage
is exactly the identity, as SAGAN's gamma = 0 start. The gates still receive gradient at 0
(d out / d gamma_k = Mix_k attn_k(X)), so the stage opens during training.

Note on A2S: with a single key the softmax over L is identically 1, so A2S reduces to adding a
projection of the sentence (the same at every position; TF-SCA adds it twice, O_f + O_t), and its
query/key projections receive exactly zero gradient. That is what docs/paper.md section 3 prescribes (L = 1).
"""

from __future__ import annotations

import torch
from torch import nn

from scenesynth.models.attention_axial import AxialCrossAttention, AxialSelfAttention
from scenesynth.models.attention_full import FullCrossAttention, FullSelfAttention
from scenesynth.models.attention_tfsca import TFSCACrossAttention, TFSCASelfAttention
from scenesynth.models.layers import sn_conv2d
from scenesynth.text.batch import TextBatch

IMPLEMENTATIONS: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {
    "full": (FullSelfAttention, FullCrossAttention),
    "axial": (AxialSelfAttention, AxialCrossAttention),
    "tfsca": (TFSCASelfAttention, TFSCACrossAttention),
}
MODE_KINDS: dict[str, tuple[str, ...]] = {
    "single": ("self",),
    "double": ("sentence", "word"),
    "triple": ("self", "sentence", "word"),
}
KINDS = ("self", "sentence", "word")


def build_attention(kind: str, impl: str, channels: int, heads: int, sentence_dim: int, word_dim: int,
                    sn: bool = True) -> nn.Module:
    """One attention module of the given kind ("self", "sentence", "word") and implementation."""
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"unknown attention implementation {impl!r}; expected one of {sorted(IMPLEMENTATIONS)}")
    self_cls, cross_cls = IMPLEMENTATIONS[impl]
    if kind == "self":
        return self_cls(channels, heads, sn)
    if kind == "sentence":
        return cross_cls(channels, sentence_dim, heads, sn)
    if kind == "word":
        return cross_cls(channels, word_dim, heads, sn)
    raise ValueError(f"unknown attention kind {kind!r}; expected one of {KINDS}")


class AttentionStage(nn.Module):
    """Gated residual stage combining the kinds of one mode (see the module docstring for the form)."""

    def __init__(self, channels: int, mode: str, impl: str, sentence_dim: int, word_dim: int,
                 heads: int = 1, sn: bool = True) -> None:
        super().__init__()
        if mode not in MODE_KINDS:
            raise ValueError(f"unknown attention mode {mode!r}; expected one of {sorted(MODE_KINDS)}")
        self.mode, self.impl = mode, impl
        self.kinds = MODE_KINDS[mode]
        self.attentions = nn.ModuleDict(
            {kind: build_attention(kind, impl, channels, heads, sentence_dim, word_dim, sn) for kind in self.kinds}
        )
        self.gates = nn.Parameter(torch.zeros(len(self.kinds)))
        self.mix = sn_conv2d(len(self.kinds) * channels, channels, 1, bias=False, sn=sn)

    def attend(self, kind: str, x: torch.Tensor, text: TextBatch | None) -> torch.Tensor:
        module = self.attentions[kind]
        if kind == "self":
            return module(x)
        if text is None:
            raise ValueError(f"a {self.mode!r} attention stage needs the text conditioning")
        if kind == "sentence":
            return module(x, text.sentence.unsqueeze(1), None)
        return module(x, text.words, text.word_mask)

    def forward(self, x: torch.Tensor, text: TextBatch | None = None) -> torch.Tensor:
        gated = [gate * self.attend(kind, x, text) for kind, gate in zip(self.kinds, self.gates)]
        return x + self.mix(torch.cat(gated, dim=1))

    def extra_repr(self) -> str:
        return f"mode={self.mode}, impl={self.impl}, kinds={self.kinds}"
