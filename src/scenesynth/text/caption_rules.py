"""Two details of the authors' text conditioning that the report leaves out (docs/paper.md section 2).

* Captions are normalised before tokenising: a trailing full stop is dropped and the first letter
  upper-cased ("a dog barks." -> "A dog barks"), so that captions differing only so get the same
  tokens (``text.normalize_captions``).
* The word mask also hides ``</s>``: attention to words and the local-to-word loss see ``<s>`` and
  the caption's tokens, not the end marker (``text.mask_eos``).

Both are settings (the authors' choices by default), recorded in the text cache's info.json, and
applied from that record by the cache and by text/prompts.py alike, so training and generation
always agree. A record without them (an older cache or model) means both were off.
"""

from __future__ import annotations

import torch

SETTINGS = ("normalize_captions", "mask_eos")


def normalize_caption(caption: str) -> str:
    """Drop one trailing full stop and upper-case the first letter (surrounding space removed)."""
    text = caption.strip()
    if text.endswith("."):
        text = text[:-1].rstrip()
    return text[:1].upper() + text[1:]


def caption_text(caption: str, info: dict) -> str:
    """The text that is tokenised for ``caption`` under the settings recorded in ``info``."""
    return normalize_caption(caption) if info.get("normalize_captions", False) else caption


def word_mask(lengths: torch.Tensor, longest: int, info: dict) -> torch.Tensor:
    """[B, longest] True for the tokens the model may attend to: all of each caption's ``lengths``
    tokens, or all but the final ``</s>`` when ``info`` records ``mask_eos``."""
    visible = lengths - 1 if info.get("mask_eos", False) else lengths
    return torch.arange(longest)[None, :] < visible[:, None]
