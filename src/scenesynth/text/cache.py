"""The text-embedding cache, keyed by caption.

What is stored is what is cheap to store: per caption the token ids and the
512-d sentence vector, plus one 768-d vector per distinct token (a vocabulary
table). Word embeddings of a batch are then a table lookup, instead of keeping
77 x 768 floats per caption (SPEC section 2: the authors' word features are the
non-contextual input embeddings, so a per-token table is exact for them).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from scenesynth.text.batch import TextBatch
from scenesynth.utils.atomic import atomic_path, write_json

CAPTIONS_FILE = "captions.parquet"
VOCAB_FILE = "vocab.npz"
INFO_FILE = "info.json"


class TextEncoderUnavailable(RuntimeError):
    """The configured text encoder cannot run here; the message says what to get."""


def make_encoder(text_cfg: dict, seed: int):
    """Return the text encoder that params choose (never silently another one)."""
    if text_cfg["encoder"] == "hash":
        from scenesynth.text.hash_encoder import HashTextEncoder

        return HashTextEncoder(text_cfg["sentence_dim"], text_cfg["word_dim"], text_cfg["max_tokens"], seed)
    raise TextEncoderUnavailable(
        "text.encoder 'clap' needs the LAION-CLAP checkpoint (transformers ClapModel, SPEC.md section 2), "
        "which this version of the pipeline does not load yet. "
        "For the offline demo set `text.encoder: hash` (config/demo.yaml does)."
    )


def build_text_cache(captions: list[str], text_cfg: dict, seed: int, out_dir: str | Path) -> dict:
    """Encode every distinct caption once and write the cache folder; returns its info."""
    encoder = make_encoder(text_cfg, seed)
    unique = sorted(set(captions))
    token_ids = [encoder.tokenize(c) for c in unique]
    sentences = np.stack([encoder.sentence_vector(t) for t in token_ids]) if unique else np.zeros((0, text_cfg["sentence_dim"]))
    vocab = np.array(sorted({t for ids in token_ids for t in ids}), dtype=np.int64)
    vectors = encoder.word_vectors(vocab) if len(vocab) else np.zeros((0, text_cfg["word_dim"]), np.float32)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(
        {
            "caption": unique,
            "token_ids": [np.asarray(t, dtype=np.int32) for t in token_ids],
            "n_tokens": [len(t) for t in token_ids],
            "sentence": list(sentences.astype(np.float32)),
        }
    )
    with atomic_path(out_dir / CAPTIONS_FILE) as tmp:
        table.to_parquet(tmp, index=False)
    with atomic_path(out_dir / VOCAB_FILE, suffix=".npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, token_ids=vocab, vectors=vectors.astype(np.float32))
    info = {
        "encoder": encoder.name,
        "n_captions": len(unique),
        "n_vocab": int(len(vocab)),
        "sentence_dim": text_cfg["sentence_dim"],
        "word_dim": text_cfg["word_dim"],
        "max_tokens": text_cfg["max_tokens"],
        "word_source": text_cfg["word_source"],
        "seed": seed,
    }
    write_json(out_dir / INFO_FILE, info)
    return info


class TextCache:
    """Read side of the cache: captions -> :class:`TextBatch`."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        for name in (CAPTIONS_FILE, VOCAB_FILE, INFO_FILE):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder / name}: text cache incomplete (run `scenesynth text` first)")
        self.info = json.loads((folder / INFO_FILE).read_text())
        table = pd.read_parquet(folder / CAPTIONS_FILE)
        self.captions: list[str] = list(table["caption"])
        self.index = {c: i for i, c in enumerate(self.captions)}
        self.sentences = torch.from_numpy(np.stack(table["sentence"].to_numpy()).astype(np.float32))
        max_len = self.info["max_tokens"]
        ids = np.zeros((len(table), max_len), dtype=np.int64)
        vocab = np.load(folder / VOCAB_FILE)
        row_of = {int(t): r + 1 for r, t in enumerate(vocab["token_ids"])}  # row 0 = padding
        self.lengths = torch.tensor(table["n_tokens"].to_numpy(), dtype=torch.long)
        for i, tokens in enumerate(table["token_ids"]):
            ids[i, : len(tokens)] = [row_of[int(t)] for t in tokens]
        self.rows = torch.from_numpy(ids)
        table_vectors = np.concatenate([np.zeros((1, vocab["vectors"].shape[1]), np.float32), vocab["vectors"]])
        self.word_table = torch.from_numpy(table_vectors)

    @property
    def encoder(self) -> str:
        return self.info["encoder"]

    def batch(self, captions: list[str]) -> TextBatch:
        missing = [c for c in captions if c not in self.index]
        if missing:
            raise KeyError(f"caption not in the text cache (rebuild it): {missing[0]!r}")
        idx = torch.tensor([self.index[c] for c in captions], dtype=torch.long)
        rows = self.rows[idx]
        longest = int(self.lengths[idx].max())
        rows = rows[:, :longest]
        mask = torch.arange(longest)[None, :] < self.lengths[idx][:, None]
        words = self.word_table[rows]  # row 0 is the zero padding vector
        return TextBatch(self.sentences[idx], words, mask, idx)
