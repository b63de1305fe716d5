"""The LAION-CLAP text encoder (docs/paper.md section 2), through transformers' ``ClapModel``.

Outputs, per caption: the 512-d sentence embedding ``text_projection(pooler_output)`` of the
RoBERTa text branch, unnormalised (the authors' later code), and one 768-d vector per token
(at most ``max_tokens`` = 77 with <s> and </s>; the true length is the attention mask's):

* ``input_embeddings`` (default, the authors' choice): rows of RoBERTa's input token-embedding
  table for the ids. Non-contextual, so the text cache can store one vector per distinct token.
* ``last_hidden_state``: the contextual output of the last layer; differs per caption, so the
  cache stores it per caption.

Which checkpoint is the paper's ``music_speech_audioset_epoch_15_esc_89.98.pt``: the
transformers conversion ``laion/larger_clap_general``. Evidence (no official mapping table
exists; LAION-AI/CLAP#172, the checkpoint author: "the file was not uploaded by myself"):
its config.json records the conversion source ``/home/yoach/tmp/clap/larger_clap_music_speech_general``
and its card says "trained on general audio, music and speech" (= music + speech + AudioSet),
whereas ``laion/larger_clap_music_and_speech`` records ``.../larger_clap_music_speech`` (=
``music_speech_epoch_15_esc_89.25.pt``, no AudioSet) and ``laion/larger_clap_music``
records ``.../larger_clap_music``. All three are HTSAT-base (depths 2-2-12-2, width 128);
the text branch is RoBERTa-base either way. See ``scenesynth.pretrained.CHECKPOINTS``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from scenesynth.pretrained.clap import load_clap_model, offline_transformers
from scenesynth.pretrained.folder import checkpoint_record, missing_model_files

NAME = "clap"
WORD_SOURCES = ("input_embeddings", "last_hidden_state")


class ClapTextEncoder:
    """Tokenize captions and embed them with the CLAP text branch, in batches, deterministically."""

    name = NAME

    def __init__(self, folder: str | Path, word_source: str = "input_embeddings", max_tokens: int = 77,
                 device: str = "cpu", batch_size: int = 64):
        if word_source not in WORD_SOURCES:
            raise ValueError(f"text.word_source {word_source!r} is not one of {WORD_SOURCES}")
        folder = Path(folder)
        missing = missing_model_files(folder)
        if missing:
            raise FileNotFoundError(f"{folder}: not a complete CLAP folder, missing {', '.join(missing)}")
        transformers = offline_transformers()
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = load_clap_model(folder, device, parts=("text",))
        self.text_model, self.projection = model.text_model, model.text_projection  # the audio branch is dropped
        config = model.config.text_config
        longest = config.max_position_embeddings - config.pad_token_id - 1  # RoBERTa positions start after pad
        if max_tokens > longest:
            raise ValueError(f"text.max_tokens {max_tokens} exceeds what {folder} can embed ({longest})")
        self.word_source = word_source
        self.max_tokens = max_tokens
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.sentence_dim = int(config.projection_dim)
        self.word_dim = int(config.hidden_size)
        self.pad_id = int(self.tokenizer.pad_token_id)
        self.checkpoint = {k: v for k, v in checkpoint_record(folder).items() if k != "folder"}

    @property
    def contextual_words(self) -> bool:
        """True when word vectors depend on the whole caption (the cache must store them per caption)."""
        return self.word_source == "last_hidden_state"

    def tokenize(self, caption: str) -> list[int]:
        """RoBERTa BPE ids with <s> ... </s>, truncated to ``max_tokens`` (as laion_clap does)."""
        return list(self.tokenizer(caption, truncation=True, max_length=self.max_tokens)["input_ids"])

    @torch.inference_mode()
    def word_vectors(self, token_ids: np.ndarray) -> np.ndarray:
        """[n] ids -> [n, word_dim] float32 rows of RoBERTa's input embedding table (non-contextual)."""
        table = self.text_model.embeddings.word_embeddings.weight
        ids = torch.as_tensor(np.asarray(token_ids, dtype=np.int64), device=table.device)
        return table[ids].float().cpu().numpy()

    @torch.inference_mode()
    def _forward(self, batch: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lengths = torch.tensor([len(ids) for ids in batch])
        ids = torch.full((len(batch), int(lengths.max())), self.pad_id, dtype=torch.long)
        for row, tokens in enumerate(batch):
            ids[row, : len(tokens)] = torch.tensor(tokens)
        mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()
        out = self.text_model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))
        sentence = self.projection(out.pooler_output)  # docs/paper.md section 2: unnormalised
        return sentence.float().cpu(), out.last_hidden_state.float().cpu(), mask.sum(dim=1)

    def iter_batches(self, token_ids: list[list[int]], with_words: bool | None = None
                     ) -> Iterator[tuple[list[int], np.ndarray, list[np.ndarray] | None]]:
        """Yield ``(indices, sentences [b, S], contextual words [L_i, W] per caption or None)``.

        Captions are batched in order of length (little padding), ties by index, so the
        batches and hence the floats are the same on every run.
        """
        with_words = self.contextual_words if with_words is None else with_words
        order = sorted(range(len(token_ids)), key=lambda i: (len(token_ids[i]), i))
        for start in range(0, len(order), self.batch_size):
            indices = order[start: start + self.batch_size]
            sentence, hidden, lengths = self._forward([token_ids[i] for i in indices])
            words = [hidden[row, : int(n)].numpy() for row, n in enumerate(lengths)] if with_words else None
            yield indices, sentence.numpy(), words

    def sentence_vectors(self, token_ids: list[list[int]]) -> np.ndarray:
        """[N] token-id lists -> [N, sentence_dim] float32."""
        out = np.zeros((len(token_ids), self.sentence_dim), dtype=np.float32)
        for indices, sentences, _ in self.iter_batches(token_ids, with_words=False):
            out[indices] = sentences
        return out

    def sentence_vector(self, token_ids: list[int]) -> np.ndarray:
        """One caption's sentence vector (the HashTextEncoder interface)."""
        return self.sentence_vectors([token_ids])[0]

    def caption_word_vectors(self, token_ids: list[int]) -> np.ndarray:
        """[L, word_dim] word vectors of one caption from the configured word source."""
        if not self.contextual_words:
            return self.word_vectors(np.asarray(token_ids))
        _, _, words = next(self.iter_batches([token_ids], with_words=True))
        return words[0]
