"""An offline, deterministic stand-in for the CLAP text encoder.

It has CLAP's output shapes (512-d sentence, 768-d per token, <= 77 tokens with
<s> and </s>) and some of its structure: each word maps to a fixed random vector
(like RoBERTa's non-contextual input embeddings) and the sentence vector is a
fixed projection of the mean word vector, so captions that share words get
similar sentence vectors. It knows no semantics: it exists so that the pipeline
runs and is testable without network or weights. Outputs record its name.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

NAME = "hash"
VOCAB_SIZE = 50265  # RoBERTa's, so token ids live in the same range as CLAP's
BOS, EOS = "<s>", "</s>"
_TOKEN = re.compile(r"[a-z0-9']+|[^\sa-z0-9]")


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


class HashTextEncoder:
    name = NAME

    def __init__(self, sentence_dim: int = 512, word_dim: int = 768, max_tokens: int = 77, seed: int = 0):
        self.sentence_dim = sentence_dim
        self.word_dim = word_dim
        self.max_tokens = max_tokens
        self.seed = seed
        rng = np.random.default_rng([seed, 0x5E17])
        self._projection = rng.standard_normal((word_dim, sentence_dim)) / np.sqrt(word_dim)

    def tokenize(self, caption: str) -> list[int]:
        words = [BOS, *_TOKEN.findall(caption.lower())][: self.max_tokens - 1] + [EOS]
        return [_stable_int(w) % VOCAB_SIZE for w in words]

    def word_vectors(self, token_ids: np.ndarray) -> np.ndarray:
        """[n] ids -> [n, word_dim] float32; a pure function of (seed, id)."""
        out = np.empty((len(token_ids), self.word_dim), dtype=np.float32)
        for row, token in enumerate(token_ids):
            out[row] = np.random.default_rng([self.seed, int(token)]).standard_normal(self.word_dim)
        return out

    def sentence_vector(self, token_ids: list[int]) -> np.ndarray:
        mean_word = self.word_vectors(np.asarray(token_ids)).mean(axis=0)
        return (mean_word @ self._projection).astype(np.float32)


# Function words of English captions (and the demo templates' glue): they are in most captions
# whatever the sound, so a plain mean over the caption's words is dominated by them.
STOP_WORDS = frozenset("""
a an the this that these those some someone something of in on at by for from into onto over under
with without while and or but as to is are be being been can could heard hear there here it its
quiet room sound sounds background <s> </s> , . ; : ! ?
""".split())


class ContentHashTextEncoder(HashTextEncoder):
    """``hash_content``: the ``hash`` stand-in whose sentence vector reads content words only.

    Tokens and word vectors are those of ``hash`` (word attention and the word losses see the
    same); the sentence vector is the projection of the mean over the words not in STOP_WORDS (all
    words if none is left). With ``hash`` the glue every demo caption shares ("a ... with ... in the
    background", <s>, </s>) makes prompts of different sounds nearly parallel (mean cosine 0.60
    between different foregrounds, 0.09 here), which gives the generator's sentence-conditioned
    norms little to tell them apart by. Still a stand-in: no meaning, only which words.
    """

    name = "hash_content"

    def sentence_vector(self, token_ids: list[int]) -> np.ndarray:
        stop = {_stable_int(w) % VOCAB_SIZE for w in STOP_WORDS}
        content = [t for t in token_ids if t not in stop] or list(token_ids)
        return super().sentence_vector(content)
