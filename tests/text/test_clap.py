import json
import os
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scenesynth.pretrained.fetch import fetch_hf_folder
from scenesynth.pretrained.models import CHECKPOINTS, CLAP_FILES
from tiny_clap import write_tiny_clap_folder
from scenesynth.text.clap import ClapTextEncoder

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny ops; threads only contend on a busy machine
CAPTIONS = ["a dog barks with traffic in the background", "rain", "birds sing in the morning with a siren"]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return write_tiny_clap_folder(tmp_path_factory.mktemp("clap") / "tiny", seed=1)


@pytest.fixture(scope="module")
def reference(tiny_folder):
    """The same checkpoint loaded independently of the encoder, for cross-checks."""
    from transformers import AutoTokenizer, ClapModel

    return ClapModel.from_pretrained(str(tiny_folder)).eval(), AutoTokenizer.from_pretrained(str(tiny_folder))


def test_fetch_from_hub_layout_and_load_offline(tiny_folder, tmp_path, static_server, monkeypatch):
    ckpt = CHECKPOINTS["clap_text"]
    served = tmp_path / "hub" / ckpt.repo / "resolve" / ckpt.revision
    shutil.copytree(tiny_folder, served)
    base = static_server(tmp_path / "hub")
    dest = fetch_hf_folder(ckpt.repo, ckpt.revision, CLAP_FILES, tmp_path / "clap_text", endpoint=base)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # restored after the test
    encoder = ClapTextEncoder(dest, "input_embeddings", max_tokens=77)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    sums = json.loads((dest / "checksums.json").read_text())
    assert encoder.checkpoint == {"repo": ckpt.repo, "revision": ckpt.revision, "weights_file": "pytorch_model.bin",
                                  "weights_sha256": sums["pytorch_model.bin"]["sha256"],
                                  "sha256": {name: entry["sha256"] for name, entry in sums.items()}}
    assert encoder.sentence_vectors([encoder.tokenize("rain")]).shape == (1, 12)


def test_shapes_and_input_embeddings(tiny_folder, reference):
    model, tokenizer = reference
    encoder = ClapTextEncoder(tiny_folder, "input_embeddings", max_tokens=77)
    ids = [encoder.tokenize(c) for c in CAPTIONS]
    assert all(t[0] == tokenizer.bos_token_id and t[-1] == tokenizer.eos_token_id for t in ids)
    assert ids[0] == tokenizer(CAPTIONS[0])["input_ids"]
    sentences = encoder.sentence_vectors(ids)
    assert sentences.shape == (3, 12) and sentences.dtype == np.float32
    words = encoder.caption_word_vectors(ids[2])
    assert words.shape == (len(ids[2]), 16)
    table = model.text_model.embeddings.word_embeddings.weight.detach()
    assert np.array_equal(words, table[torch.tensor(ids[2])].numpy())
    assert np.array_equal(encoder.word_vectors(np.array(ids[0])), table[torch.tensor(ids[0])].numpy())


def test_sentence_is_unnormalised_projection_of_pooler(tiny_folder, reference):
    model, tokenizer = reference
    encoder = ClapTextEncoder(tiny_folder, "input_embeddings", max_tokens=77, batch_size=2)
    sentences = encoder.sentence_vectors([encoder.tokenize(c) for c in CAPTIONS])
    with torch.inference_mode():
        for caption, got in zip(CAPTIONS, sentences):
            tokens = tokenizer([caption], return_tensors="pt")  # one caption, no padding
            pooled = model.text_model(**tokens).pooler_output
            expected = model.text_projection(pooled)[0].numpy()
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
            normalised = model.get_text_features(**tokens).pooler_output[0]  # transformers' own path
            np.testing.assert_allclose(F.normalize(torch.from_numpy(got), dim=0).numpy(), normalised.numpy(), atol=1e-6)
    assert abs(np.linalg.norm(sentences[0]) - 1.0) > 1e-3  # not normalised (docs/paper.md section 2)


def test_last_hidden_state_is_contextual(tiny_folder, reference):
    model, tokenizer = reference
    encoder = ClapTextEncoder(tiny_folder, "last_hidden_state", max_tokens=77)
    assert encoder.contextual_words
    ids = encoder.tokenize(CAPTIONS[0])
    words = encoder.caption_word_vectors(ids)
    table = model.text_model.embeddings.word_embeddings.weight.detach()[torch.tensor(ids)].numpy()
    assert words.shape == table.shape and not np.allclose(words, table, atol=1e-2)
    with torch.inference_mode():
        expected = model.text_model(**tokenizer([CAPTIONS[0]], return_tensors="pt")).last_hidden_state[0].numpy()
    np.testing.assert_allclose(words, expected, rtol=1e-5, atol=1e-5)
    # batched with longer and shorter captions: the true length comes from the mask, padding ignored
    batches = list(encoder.iter_batches([encoder.tokenize(c) for c in CAPTIONS]))
    got = {i: w for indices, _, ws in batches for i, w in zip(indices, ws)}
    np.testing.assert_allclose(got[0], expected, rtol=1e-4, atol=1e-5)
    assert [got[i].shape[0] for i in range(3)] == [len(encoder.tokenize(c)) for c in CAPTIONS]


def test_truncation_determinism_and_errors(tiny_folder):
    short = ClapTextEncoder(tiny_folder, "input_embeddings", max_tokens=8)
    ids = short.tokenize(" ".join(CAPTIONS * 3))
    assert len(ids) == 8 and ids[-1] == short.tokenizer.eos_token_id
    again = ClapTextEncoder(tiny_folder, "input_embeddings", max_tokens=8)
    tokens = [short.tokenize(c) for c in CAPTIONS]
    assert np.array_equal(short.sentence_vectors(tokens), again.sentence_vectors(tokens))
    with pytest.raises(ValueError, match="max_tokens 200"):
        ClapTextEncoder(tiny_folder, "input_embeddings", max_tokens=200)
    with pytest.raises(ValueError, match="word_source"):
        ClapTextEncoder(tiny_folder, "pooler", max_tokens=8)
    with pytest.raises(FileNotFoundError, match="config.json"):
        ClapTextEncoder(tiny_folder.parent / "nowhere", "input_embeddings")
