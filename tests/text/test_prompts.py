"""Prompts outside the text cache are encoded exactly as the cache encodes them, by the same encoder."""

import pytest
import torch

from scenesynth.pretrained.models import MissingPretrained
from scenesynth.text.cache import TextCache, build_text_cache
from scenesynth.text.prompts import EncoderMismatch, PromptEncoder


def test_prompt_batch_equals_the_cache_batch_of_the_same_captions(tiny_data):
    cache = TextCache(tiny_data["text"])
    captions = cache.captions[:3] + cache.captions[:1]
    expected = cache.batch(captions)
    got = PromptEncoder(cache.info, tiny_data["root"] / "no_clap_needed").batch(captions)
    torch.testing.assert_close(got.sentence, expected.sentence)
    torch.testing.assert_close(got.words, expected.words)
    assert torch.equal(got.word_mask, expected.word_mask)
    assert got.caption_ids[0] == got.caption_ids[3] and len(set(got.caption_ids[:3].tolist())) == 3


def test_a_prompt_never_seen_in_training_gets_its_own_vectors(tiny_data):
    cache = TextCache(tiny_data["text"])
    encoder = PromptEncoder(cache.info, tiny_data["root"])
    new, known = encoder.batch(["a completely new prompt", cache.captions[0]]).sentence
    assert not torch.allclose(new, known)


def test_another_clap_checkpoint_is_refused(tmp_path):
    from tiny_clap import write_tiny_clap_folder

    cfg = {"encoder": "clap", "max_tokens": 77, "sentence_dim": 12, "word_dim": 16, "word_source": "input_embeddings",
       "normalize_captions": False, "mask_eos": False}
    trained_with = write_tiny_clap_folder(tmp_path / "a" / "clap_text", seed=0)
    info = build_text_cache({"text": cfg, "seed": 0}, ["a dog barks"], tmp_path / "cache", pretrained_dir=trained_with)
    batch = PromptEncoder(info, trained_with).batch(["a dog barks", "rain on a roof"])
    torch.testing.assert_close(batch.sentence[:1], TextCache(tmp_path / "cache").batch(["a dog barks"]).sentence)
    other = write_tiny_clap_folder(tmp_path / "b" / "clap_text", seed=1)
    with pytest.raises(EncoderMismatch, match="not the one the model was trained with"):
        PromptEncoder(info, other)
    with pytest.raises(MissingPretrained, match="fetch-pretrained --name clap_text"):
        PromptEncoder(info, tmp_path / "absent" / "clap_text")
