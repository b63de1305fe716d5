import numpy as np
import pytest
import torch

from scenesynth.text.cache import TextCache, TextEncoderUnavailable, build_text_cache, make_encoder
from scenesynth.text.hash_encoder import HashTextEncoder

CFG = {"encoder": "hash", "max_tokens": 8, "sentence_dim": 16, "word_dim": 12, "word_source": "input_embeddings"}


def test_hash_encoder_is_deterministic_and_shaped():
    a, b = HashTextEncoder(16, 12, 8, seed=3), HashTextEncoder(16, 12, 8, seed=3)
    ids = a.tokenize("A dog barks, loudly.")
    assert ids == b.tokenize("a dog barks, loudly.")
    assert len(ids) == 8  # <s> a dog barks , loudly . </s>
    assert np.array_equal(a.sentence_vector(ids), b.sentence_vector(ids))
    assert a.sentence_vector(ids).shape == (16,)
    assert a.word_vectors(np.array(ids)).shape == (8, 12)
    assert not np.array_equal(a.sentence_vector(ids), HashTextEncoder(16, 12, 8, seed=4).sentence_vector(ids))


def test_long_captions_are_truncated_with_end_token():
    enc = HashTextEncoder(16, 12, max_tokens=5)
    ids = enc.tokenize("one two three four five six seven")
    assert len(ids) == 5 and ids[-1] == enc.tokenize("")[-1]


def test_shared_words_give_closer_sentences():
    enc = HashTextEncoder(64, 48, 77)
    s = [enc.sentence_vector(enc.tokenize(c)) for c in
         ("a siren with traffic in the background", "a siren with water in the background", "knocking")]
    cos = lambda x, y: float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))  # noqa: E731
    assert cos(s[0], s[1]) > cos(s[0], s[2])


def test_cache_round_trip_and_batches(tmp_path):
    captions = ["a dog barks", "rain falls", "a dog barks", "wind"]
    info = build_text_cache(captions, CFG, seed=0, out_dir=tmp_path)
    assert info["n_captions"] == 3 and info["encoder"] == "hash"
    cache = TextCache(tmp_path)
    batch = cache.batch(["a dog barks", "wind", "a dog barks"])
    assert batch.sentence.shape == (3, 16)
    assert batch.words.shape == (3, 5, 12)  # longest caption: <s> a dog barks </s>
    assert batch.word_mask.tolist() == [[True] * 5, [True] * 3 + [False] * 2, [True] * 5]
    assert batch.caption_ids[0] == batch.caption_ids[2] != batch.caption_ids[1]
    assert torch.all(batch.words[1, 3:] == 0)
    enc = make_encoder(CFG, 0)
    expected = enc.word_vectors(np.array(enc.tokenize("wind")))
    assert np.allclose(batch.words[1, :3].numpy(), expected)
    assert np.allclose(batch.sentence[1].numpy(), enc.sentence_vector(enc.tokenize("wind")))


def test_cache_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="text cache incomplete"):
        TextCache(tmp_path)
    build_text_cache(["x"], CFG, 0, tmp_path)
    with pytest.raises(KeyError, match="not in the text cache"):
        TextCache(tmp_path).batch(["y"])
    with pytest.raises(TextEncoderUnavailable, match="text.encoder: hash"):
        make_encoder(dict(CFG, encoder="clap"), 0)


def test_cache_is_deterministic(tmp_path):
    build_text_cache(["b c", "a"], CFG, 1, tmp_path / "one")
    build_text_cache(["a", "b c"], CFG, 1, tmp_path / "two")
    for name in ("captions.parquet", "vocab.npz", "info.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
