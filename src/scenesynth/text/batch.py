"""The text conditioning that flows from the text cache into the GAN."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TextBatch:
    """Conditioning for a batch of B captions.

    sentence:    [B, S] float, sentence embedding (512-d for CLAP).
    words:       [B, L, W] float, one embedding per token (768-d for CLAP), zero past the length.
    word_mask:   [B, L] bool, True for real tokens, False for padding.
    caption_ids: [B] long, equal ids <=> identical caption text (the SC loss needs this).
    """

    sentence: torch.Tensor
    words: torch.Tensor
    word_mask: torch.Tensor
    caption_ids: torch.Tensor

    def to(self, device: torch.device | str) -> "TextBatch":
        return TextBatch(
            self.sentence.to(device),
            self.words.to(device),
            self.word_mask.to(device),
            self.caption_ids.to(device),
        )

    def __len__(self) -> int:
        return int(self.sentence.shape[0])
