"""The authors' caption normalisation and </s>-hiding word mask: settings, recorded, applied alike."""

import torch

from scenesynth.text.cache import TextCache, build_text_cache
from scenesynth.text.caption_rules import normalize_caption
from scenesynth.text.prompts import PromptEncoder

CFG = {"encoder": "hash", "max_tokens": 16, "sentence_dim": 16, "word_dim": 12, "word_source": "input_embeddings"}
CAPTIONS = ["a dog barks.", "A dog barks", "rain falls on a roof with water in the background"]


def cache(tmp_path, normalize: bool, mask_eos: bool) -> TextCache:
    params = {"text": {**CFG, "normalize_captions": normalize, "mask_eos": mask_eos}, "seed": 3}
    build_text_cache(params, CAPTIONS, tmp_path / f"{normalize}{mask_eos}")
    return TextCache(tmp_path / f"{normalize}{mask_eos}")


def test_normalize_caption():
    assert normalize_caption("a dog barks.") == "A dog barks"
    assert normalize_caption("  people talk . ") == "People talk"
    assert normalize_caption("Wait...") == "Wait.."  # one full stop, as the authors' code drops
    assert normalize_caption("") == ""


def test_normalisation_makes_captions_that_differ_only_so_identical(tmp_path):
    on, off = cache(tmp_path, True, False), cache(tmp_path, False, False)
    assert (on.info["normalize_captions"], off.info["normalize_captions"]) == (True, False)
    batch_on, batch_off = on.batch(CAPTIONS[:2]), off.batch(CAPTIONS[:2])
    torch.testing.assert_close(batch_on.sentence[0], batch_on.sentence[1])
    assert not torch.allclose(batch_off.sentence[0], batch_off.sentence[1])  # "a" vs "A" and the "." token


def test_the_word_mask_hides_the_end_token_in_the_cache_and_for_new_prompts_alike(tmp_path):
    hidden, shown = cache(tmp_path, True, True), cache(tmp_path, True, False)
    assert hidden.info["mask_eos"] is True
    lengths = shown.batch(CAPTIONS).word_mask.sum(dim=1)
    assert torch.equal(hidden.batch(CAPTIONS).word_mask.sum(dim=1), lengths - 1)
    encoded = PromptEncoder(hidden.info, tmp_path / "no_clap").batch(CAPTIONS)
    assert torch.equal(encoded.word_mask, hidden.batch(CAPTIONS).word_mask)
    torch.testing.assert_close(encoded.sentence, hidden.batch(CAPTIONS).sentence)
    older = {key: value for key, value in hidden.info.items() if key not in ("mask_eos", "normalize_captions")}
    assert torch.equal(PromptEncoder(older, tmp_path / "no_clap").batch(CAPTIONS[2:]).word_mask.sum(dim=1),
                       lengths[2:])  # a model trained before these settings existed: nothing hidden
