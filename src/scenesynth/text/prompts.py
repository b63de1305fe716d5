"""Text conditioning for any prompt, made by the encoder a model was trained with.

Training reads captions from the text cache (text/cache.py), which holds the training set's
captions only. Generation takes prompts that were never in it (the challenge's dev prompts,
a user's own text), so it encodes them here, with the encoder the model file names: the same
kind, the same settings (caption normalisation and word mask included, text/caption_rules.py)
and, for CLAP, the same checkpoint (its sha256 is compared). A model
given another encoder would condition on vectors it has never seen and make silent noise, so
every difference is an error that names it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from scenesynth.text.batch import TextBatch
from scenesynth.text.cache import encode_sentences, make_encoder
from scenesynth.text.caption_rules import caption_text, word_mask

ENCODER_KEYS = ("encoder", "sentence_dim", "word_dim", "max_tokens", "word_source")


class EncoderMismatch(ValueError):
    """The text encoder at hand is not the one the model was trained with."""


def _weights_sha256(record: dict | None) -> str | None:
    return (record or {}).get("weights_sha256")


class PromptEncoder:
    """``batch(prompts) -> TextBatch`` with the encoder described by a model's ``text`` record
    (the text cache's info.json it was trained on)."""

    def __init__(self, text_info: dict, clap_folder: str | Path, device: str = "cpu"):
        cfg = {key: text_info[key] for key in ENCODER_KEYS}
        self.encoder = make_encoder(cfg, text_info["seed"], clap_folder, device)
        trained, here = _weights_sha256(text_info.get("checkpoint")), _weights_sha256(
            getattr(self.encoder, "checkpoint", None))
        if trained != here:
            raise EncoderMismatch(f"{clap_folder}: the {cfg['encoder']} checkpoint there (weights sha256 {here}) is "
                                  f"not the one the model was trained with ({trained})")
        for key, actual in (("sentence_dim", self.encoder.sentence_dim), ("word_dim", self.encoder.word_dim)):
            if actual != text_info[key]:
                raise EncoderMismatch(f"the model was trained on {text_info[key]}-d {key} vectors; "
                                      f"this {cfg['encoder']} encoder gives {actual}")
        self.info = text_info

    def batch(self, prompts: list[str]) -> TextBatch:
        """The conditioning of ``prompts`` (equal prompts get equal caption ids, as in training)."""
        if not prompts:
            raise ValueError("no prompts to encode")
        token_ids = [self.encoder.tokenize(caption_text(p, self.info)) for p in prompts]
        sentences = encode_sentences(self.encoder, token_ids)
        contextual = bool(getattr(self.encoder, "contextual_words", False))
        rows = [self.encoder.caption_word_vectors(ids) if contextual else self.encoder.word_vectors(np.asarray(ids))
                for ids in token_ids]
        longest = max(len(ids) for ids in token_ids)
        words = torch.zeros(len(prompts), longest, self.info["word_dim"])
        for b, vectors in enumerate(rows):
            words[b, : len(vectors)] = torch.from_numpy(np.asarray(vectors, dtype=np.float32))
        lengths = torch.tensor([len(ids) for ids in token_ids])
        mask = word_mask(lengths, longest, self.info)
        first = {p: i for i, p in reversed(list(enumerate(prompts)))}
        caption_ids = torch.tensor([first[p] for p in prompts], dtype=torch.long)
        return TextBatch(torch.from_numpy(sentences), words, mask, caption_ids)
