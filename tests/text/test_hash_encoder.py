"""The offline text stand-ins: `hash` and `hash_content`."""

import numpy as np

from scenesynth.text.cache import make_encoder

SETTINGS = {"sentence_dim": 512, "word_dim": 768, "max_tokens": 77}


def encoders():
    return (make_encoder({**SETTINGS, "encoder": "hash"}, seed=3),
            make_encoder({**SETTINGS, "encoder": "hash_content"}, seed=3))


def cosine(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_hash_content_reads_content_words_and_keeps_the_tokens_and_word_vectors_of_hash():
    plain, content = encoders()
    assert (plain.name, content.name) == ("hash", "hash_content")
    caption = "an engine humming with water in the background"
    tokens = content.tokenize(caption)
    assert tokens == plain.tokenize(caption)
    assert np.array_equal(content.word_vectors(np.asarray(tokens)), plain.word_vectors(np.asarray(tokens)))
    glue_only_differs = content.tokenize("the engine humming, and water")
    assert np.allclose(content.sentence_vector(tokens), content.sentence_vector(glue_only_differs))
    assert not np.allclose(plain.sentence_vector(tokens), plain.sentence_vector(glue_only_differs))


def test_hash_content_keeps_prompts_of_different_sounds_apart():
    plain, content = encoders()
    a, b = "an engine humming with water in the background", "a bird chirping with water in the background"
    cos = {name: cosine(enc.sentence_vector(enc.tokenize(a)), enc.sentence_vector(enc.tokenize(b)))
           for name, enc in (("hash", plain), ("hash_content", content))}
    assert cos["hash_content"] < cos["hash"] - 0.2, cos
    only_glue = content.tokenize("in the background")
    assert np.allclose(content.sentence_vector(only_glue), plain.sentence_vector(only_glue))  # nothing left: all words
