"""The per-clip embedding cache: float16 per clip, keyed by content, a rerun embeds nothing new."""

import numpy as np
import soundfile as sf

from scenesynth.evaluation.clip_prep import ClipRecipe, prepare_clip
from scenesynth.evaluation.embedding_cache import EmbeddingCache


class CountingEmbedding:
    """Deterministic 3-d 'embedding' (mean, std, max) that counts the clips it sees."""

    name = "counting"

    def __init__(self):
        self.seen = 0

    def embed_batch(self, waves):
        self.seen += len(waves)
        return np.stack([[w.mean(), w.std(), np.abs(w).max() + 1e-4] for w in waves]).astype(np.float64)


def clip(path, seed):
    sf.write(path, np.random.default_rng(seed).uniform(-0.5, 0.5, 8000).astype(np.float32), 32_000, subtype="PCM_16")
    return path


def cache_for(root, embedding, identity=None):
    return EmbeddingCache(root, embedding, identity or {"embedding": embedding.name},
                          lambda p: prepare_clip(p, ClipRecipe()))


def test_a_rerun_embeds_nothing_and_gives_the_same_float16_rows(tmp_path):
    paths = [clip(tmp_path / f"{i}.wav", i) for i in range(5)]
    embedding = CountingEmbedding()
    first = cache_for(tmp_path / "cache", embedding).embeddings(paths)
    assert embedding.seen == 5 and all(v.dtype == np.float16 and v.shape == (1, 3) for v in first)
    fresh = embedding.embed_batch([prepare_clip(p, ClipRecipe()) for p in paths])
    assert np.array_equal(np.concatenate(first), fresh.astype(np.float32).astype(np.float16))
    again = cache_for(tmp_path / "cache", embedding)
    second = again.embeddings(paths)
    assert embedding.seen == 10 and again.embedded == 0  # 5 + the direct call above; the rerun embedded none
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not [p for p in (tmp_path / "cache").rglob(".*") if p.is_file()]  # no temporary files left


def test_a_changed_clip_or_another_checkpoint_is_embedded_again(tmp_path):
    paths = [clip(tmp_path / f"{i}.wav", i) for i in range(3)]
    cache = cache_for(tmp_path / "cache", CountingEmbedding())
    cache.embeddings(paths)
    clip(paths[1], 99)  # same name, other audio: fadtk's name-keyed cache would answer with the old vector
    changed = cache_for(tmp_path / "cache", CountingEmbedding())
    changed.embeddings(paths)
    assert changed.embedded == 1
    other_weights = cache_for(tmp_path / "cache", CountingEmbedding(), {"embedding": "counting", "weights": "v2"})
    other_weights.embeddings(paths)
    assert other_weights.embedded == 3 and len(list((tmp_path / "cache").iterdir())) == 2
