"""The text-embedding cache, keyed by caption.

What is stored is what is cheap to store: per caption the token ids and the
512-d sentence vector, plus one 768-d vector per distinct token (a vocabulary
table). Word embeddings of a batch are then a table lookup, instead of keeping
77 x 768 floats per caption (docs/paper.md section 2: the authors' word features are the
non-contextual input embeddings, so a per-token table is exact for them).

Contextual word vectors (CLAP with ``word_source: last_hidden_state``) differ per
caption, so for them the cache also holds ``words.npy``: one float16 row per token of
every caption, captions in table order (a ragged array; offsets are the cumulative
token counts). ``info.json`` says which store is in use (``word_store``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from scenesynth.data.manifest import CAPTIONS, read_manifest
from scenesynth.pretrained.folder import missing_model_files
from scenesynth.pretrained.models import DEFAULT_PRETRAINED_ROOT, MissingPretrained, fetch_hint
from scenesynth.text.batch import TextBatch
from scenesynth.text.caption_rules import SETTINGS as CAPTION_SETTINGS
from scenesynth.text.caption_rules import caption_text, word_mask
from scenesynth.text.clap import ClapTextEncoder
from scenesynth.text.hash_encoder import ContentHashTextEncoder, HashTextEncoder
from scenesynth.utils.atomic import atomic_path, write_json

CAPTIONS_FILE = "captions.parquet"
VOCAB_FILE = "vocab.npz"
WORDS_FILE = "words.npy"
INFO_FILE = "info.json"
DEFAULT_CLAP_TEXT_DIR = DEFAULT_PRETRAINED_ROOT / "clap_text"
VOCAB_TABLE, PER_CAPTION = "vocab_table", "per_caption"


def make_encoder(text_cfg: dict, seed: int, pretrained_dir: str | Path | None = None, device: str = "cpu"):
    """Return the text encoder that params choose (never silently another one)."""
    if text_cfg["encoder"] in ("hash", "hash_content"):
        stand_in = HashTextEncoder if text_cfg["encoder"] == "hash" else ContentHashTextEncoder
        return stand_in(text_cfg["sentence_dim"], text_cfg["word_dim"], text_cfg["max_tokens"], seed)
    if text_cfg["encoder"] != "clap":
        raise ValueError(f"text.encoder {text_cfg['encoder']!r} is not one of clap, hash, hash_content")
    folder = Path(pretrained_dir) if pretrained_dir is not None else DEFAULT_CLAP_TEXT_DIR
    missing = missing_model_files(folder) if folder.is_dir() else ["the whole folder"]
    if missing:
        raise MissingPretrained(
            f"{folder}: text.encoder 'clap' needs the LAION-CLAP checkpoint there (transformers ClapModel, "
            f"docs/paper.md section 2) but {', '.join(missing)} is missing; {fetch_hint('clap_text', folder.parent)}. "
            "For the offline demo set `text.encoder: hash` (config/demo.yaml does)."
        )
    return ClapTextEncoder(folder, text_cfg["word_source"], text_cfg["max_tokens"], device=device)


def _check_dims(encoder, text_cfg: dict) -> None:
    for key, actual in (("sentence_dim", encoder.sentence_dim), ("word_dim", encoder.word_dim)):
        if actual != text_cfg[key]:
            raise ValueError(f"params text.{key} is {text_cfg[key]} but the {encoder.name} encoder gives {actual}; "
                             "set it to match the checkpoint")


def encode_sentences(encoder, token_ids: list[list[int]], words_path: Path | None = None) -> np.ndarray:
    """Sentence vectors [N, S]; with ``words_path``, also write the per-caption word rows there."""
    sentences = np.zeros((len(token_ids), encoder.sentence_dim), dtype=np.float32)
    if not hasattr(encoder, "iter_batches"):  # the hash stand-in: one caption at a time
        for i, ids in enumerate(token_ids):
            sentences[i] = encoder.sentence_vector(ids)
        return sentences
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in token_ids])]).astype(np.int64)
    rows = None
    if words_path is not None:
        rows = np.lib.format.open_memmap(words_path, mode="w+", dtype=np.float16,
                                         shape=(int(offsets[-1]), encoder.word_dim))
    for indices, batch_sentences, words in encoder.iter_batches(token_ids, with_words=rows is not None):
        sentences[indices] = batch_sentences
        for i, vectors in zip(indices, words or []):
            half = vectors.astype(np.float16)
            if not np.isfinite(half).all():
                raise ValueError(f"word vectors of caption {i} overflow float16 (|x| > 65504)")
            rows[offsets[i]: offsets[i + 1]] = half
    if rows is not None:
        rows.flush()
        del rows
    return sentences


def build_manifest_text_cache(params: dict, manifest: str | Path, out_dir: str | Path,
                              pretrained_dir: str | Path | None = None) -> dict:
    """The `text` stage: the cache of every caption of every training clip of a manifest (all of a clip's
    captions train; dev prompts are encoded at generation, text/prompts.py)."""
    table = read_manifest(manifest)
    captions = [caption for clip in table.loc[table["split"] == "train", CAPTIONS] for caption in clip]
    if not captions:
        raise ValueError(f"{manifest}: no training captions (no row with split == 'train')")
    return build_text_cache(params, captions, out_dir, pretrained_dir)


def build_text_cache(params: dict, captions: list[str], out_dir: str | Path, pretrained_dir: str | Path | None = None,
                     device: str = "cpu") -> dict:
    """Encode every distinct caption once with the encoder of ``text`` (seeded by ``seed``) and write
    the cache folder; returns its info."""
    text_cfg, seed = params["text"], params["seed"]
    encoder = make_encoder(text_cfg, seed, pretrained_dir, device)
    _check_dims(encoder, text_cfg)
    per_caption = bool(getattr(encoder, "contextual_words", False))
    unique = sorted(set(captions))
    token_ids = [encoder.tokenize(caption_text(c, text_cfg)) for c in unique]

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if per_caption:
        with atomic_path(out_dir / WORDS_FILE, suffix=".npy") as tmp:
            sentences = encode_sentences(encoder, token_ids, tmp)
    else:
        sentences = encode_sentences(encoder, token_ids, None)
        (out_dir / WORDS_FILE).unlink(missing_ok=True)  # a stale per-caption store must not linger
    vocab = np.array(sorted({t for ids in token_ids for t in ids}), dtype=np.int64)
    vectors = encoder.word_vectors(vocab) if len(vocab) else np.zeros((0, text_cfg["word_dim"]), np.float32)

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
        "checkpoint": getattr(encoder, "checkpoint", None),
        "n_captions": len(unique),
        "n_vocab": int(len(vocab)),
        "sentence_dim": text_cfg["sentence_dim"],
        "word_dim": text_cfg["word_dim"],
        "max_tokens": text_cfg["max_tokens"],
        "word_source": text_cfg["word_source"],
        "word_store": PER_CAPTION if per_caption else VOCAB_TABLE,
        "seed": seed,
        **{key: text_cfg[key] for key in CAPTION_SETTINGS},
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
        self.word_rows = None
        if self.info.get("word_store", VOCAB_TABLE) == PER_CAPTION:
            if not (folder / WORDS_FILE).is_file():
                raise FileNotFoundError(f"{folder / WORDS_FILE}: text cache incomplete (run `scenesynth text` again)")
            self.word_rows = np.load(folder / WORDS_FILE, mmap_mode="r")  # read per batch, not held in memory
            self.offsets = np.concatenate([[0], np.cumsum(self.lengths.numpy())]).astype(np.int64)
            if self.word_rows.shape[0] != self.offsets[-1]:
                raise ValueError(f"{folder / WORDS_FILE}: {self.word_rows.shape[0]} rows but the captions have "
                                 f"{self.offsets[-1]} tokens; rebuild the text cache")

    @property
    def encoder(self) -> str:
        return self.info["encoder"]

    def batch(self, captions: list[str]) -> TextBatch:
        missing = [c for c in captions if c not in self.index]
        if missing:
            raise KeyError(f"caption not in the text cache (rebuild it): {missing[0]!r}")
        idx = torch.tensor([self.index[c] for c in captions], dtype=torch.long)
        longest = int(self.lengths[idx].max())
        mask = word_mask(self.lengths[idx], longest, self.info)
        if self.word_rows is None:
            words = self.word_table[self.rows[idx, :longest]]  # row 0 is the zero padding vector
        else:
            words = torch.zeros((len(captions), longest, self.word_rows.shape[1]), dtype=torch.float32)
            for b, i in enumerate(idx.tolist()):
                start, stop = self.offsets[i], self.offsets[i + 1]
                words[b, : stop - start] = torch.from_numpy(np.asarray(self.word_rows[start:stop], dtype=np.float32))
        return TextBatch(self.sentences[idx], words, mask, idx)
