import numpy as np
import pandas as pd
import pytest
import torch

from scenesynth.data.manifest import write_manifest
from scenesynth.pretrained.models import MissingPretrained
from scenesynth.text.cache import TextCache, build_manifest_text_cache, build_text_cache, make_encoder
from scenesynth.text.hash_encoder import HashTextEncoder

CFG = {"encoder": "hash", "max_tokens": 8, "sentence_dim": 16, "word_dim": 12, "word_source": "input_embeddings",
       "normalize_captions": False, "mask_eos": False}


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
    info = build_text_cache({"text": CFG, "seed": 0}, captions, tmp_path)
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
    build_text_cache({"text": CFG, "seed": 0}, ["x"], tmp_path)
    with pytest.raises(KeyError, match="not in the text cache"):
        TextCache(tmp_path).batch(["y"])
    with pytest.raises(MissingPretrained, match="text.encoder: hash"):
        make_encoder(dict(CFG, encoder="clap"), 0, pretrained_dir=tmp_path / "no_checkpoint")


def test_cache_is_deterministic(tmp_path):
    build_text_cache({"text": CFG, "seed": 1}, ["b c", "a"], tmp_path / "one")
    build_text_cache({"text": CFG, "seed": 1}, ["a", "b c"], tmp_path / "two")
    for name in ("captions.parquet", "vocab.npz", "info.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


CLAP_CFG = {"encoder": "clap", "max_tokens": 77, "sentence_dim": 12, "word_dim": 16, "word_source": "input_embeddings",
       "normalize_captions": False, "mask_eos": False}
CLAP_CAPTIONS = ["a dog barks with traffic in the background", "rain", "birds sing in the morning", "rain"]


@pytest.fixture(scope="module")
def tiny_clap(tmp_path_factory):
    from tiny_clap import write_tiny_clap_folder

    return write_tiny_clap_folder(tmp_path_factory.mktemp("clap") / "tiny", seed=2)


def test_clap_cache_with_input_embeddings(tmp_path, tiny_clap, single_thread):
    from scenesynth.text.clap import ClapTextEncoder

    info = build_text_cache({"text": CLAP_CFG, "seed": 0}, CLAP_CAPTIONS, tmp_path, pretrained_dir=tiny_clap)
    assert info["encoder"] == "clap" and info["word_store"] == "vocab_table" and info["n_captions"] == 3
    assert info["checkpoint"]["weights_file"] == "pytorch_model.bin" and info["word_source"] == "input_embeddings"
    assert not (tmp_path / "words.npy").exists()
    batch = TextCache(tmp_path).batch(["rain", "birds sing in the morning"])
    encoder = ClapTextEncoder(tiny_clap, "input_embeddings", 77)
    ids = [encoder.tokenize(c) for c in ("rain", "birds sing in the morning")]
    assert batch.words.shape == (2, len(ids[1]), 16) and batch.word_mask.sum(1).tolist() == [len(i) for i in ids]
    assert np.allclose(batch.words[0, : len(ids[0])].numpy(), encoder.word_vectors(np.array(ids[0])))
    assert torch.all(batch.words[0, len(ids[0]):] == 0)
    np.testing.assert_allclose(batch.sentence.numpy(), encoder.sentence_vectors(ids), rtol=1e-5, atol=1e-6)


def test_clap_cache_with_contextual_words(tmp_path, tiny_clap, single_thread):
    from scenesynth.text.clap import ClapTextEncoder

    cfg = dict(CLAP_CFG, word_source="last_hidden_state")
    info = build_text_cache({"text": cfg, "seed": 0}, CLAP_CAPTIONS, tmp_path, pretrained_dir=tiny_clap)
    assert info["word_store"] == "per_caption" and (tmp_path / "words.npy").is_file()
    captions = ["birds sing in the morning", "a dog barks with traffic in the background", "rain"]
    batch = TextCache(tmp_path).batch(captions)
    encoder = ClapTextEncoder(tiny_clap, "last_hidden_state", 77)
    for row, caption in enumerate(captions):
        expected = encoder.caption_word_vectors(encoder.tokenize(caption))
        n = expected.shape[0]
        assert int(batch.word_mask[row].sum()) == n
        np.testing.assert_allclose(batch.words[row, :n].numpy(), expected, rtol=2e-3, atol=2e-3)  # float16 store
        assert torch.all(batch.words[row, n:] == 0)
    # same captions, same bytes; switching back to the table store removes the per-caption file
    build_text_cache({"text": cfg, "seed": 0}, list(reversed(CLAP_CAPTIONS)), tmp_path / "again", pretrained_dir=tiny_clap)
    for name in ("captions.parquet", "vocab.npz", "words.npy", "info.json"):
        assert (tmp_path / name).read_bytes() == (tmp_path / "again" / name).read_bytes()
    build_text_cache({"text": CLAP_CFG, "seed": 0}, CLAP_CAPTIONS, tmp_path, pretrained_dir=tiny_clap)
    assert not (tmp_path / "words.npy").exists() and TextCache(tmp_path).word_rows is None


def test_clap_cache_errors(tmp_path, tiny_clap):
    with pytest.raises(MissingPretrained, match="fetch-pretrained --name clap_text") as error:
        build_text_cache({"text": CLAP_CFG, "seed": 0}, ["x"], tmp_path / "out", pretrained_dir=tmp_path / "absent")
    assert str(tmp_path / "absent") in str(error.value)
    with pytest.raises(ValueError, match="text.sentence_dim is 512"):
        build_text_cache({"text": dict(CLAP_CFG, sentence_dim=512), "seed": 0}, ["x"], tmp_path / "out", pretrained_dir=tiny_clap)
    build_text_cache({"text": dict(CLAP_CFG, word_source="last_hidden_state"), "seed": 0}, ["x"], tmp_path / "out",
                     pretrained_dir=tiny_clap)
    (tmp_path / "out" / "words.npy").unlink()
    with pytest.raises(FileNotFoundError, match="words.npy"):
        TextCache(tmp_path / "out")


def test_the_text_stage_caches_every_caption_of_every_training_clip(tmp_path):
    table = pd.DataFrame({"key": ["a", "b", "d"], "path": ["a.wav", "b.wav", "d.wav"], "caption": ["a1", "b1", "d1"],
                          "captions": [["a1", "a2", "a3"], ["b1"], ["d1", "d2"]], "source": "test",
                          "duration": 1.0, "sample_rate": 16000, "split": ["train", "train", "dev"]})
    write_manifest(table, tmp_path / "manifest.parquet")
    info = build_manifest_text_cache({"text": CFG, "seed": 0}, tmp_path / "manifest.parquet", tmp_path / "cache")
    assert info["n_captions"] == 4 and sorted(TextCache(tmp_path / "cache").captions) == ["a1", "a2", "a3", "b1"]


def test_the_text_stage_caches_the_training_captions_only(tmp_path, tiny_params, tiny_data):
    from scenesynth.data.manifest import read_manifest
    from scenesynth.text.cache import build_manifest_text_cache

    table = read_manifest(tiny_data["raw"])
    info = build_manifest_text_cache(tiny_params, tiny_data["raw"], tmp_path / "text")
    assert info["n_captions"] == table.loc[table["split"] == "train", "caption"].nunique()
    cached = set(TextCache(tmp_path / "text").captions)
    assert not cached & (set(table.loc[table["split"] == "dev", "caption"]) - set(table.loc[table["split"] == "train",
                                                                                             "caption"]))
