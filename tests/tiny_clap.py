"""A random-weight, tiny LAION-CLAP folder in the real repo layout: the offline stand-in for the
fetched `clap_text` / `clap_rerank` checkpoints in tests (and in benchmarks/generate.py, for the
tokenizer files)."""

from __future__ import annotations

import os
from pathlib import Path

from scenesynth.pretrained.clap import offline_transformers
from scenesynth.utils.atomic import write_json

TINY_CORPUS = ("a dog barks with traffic in the background", "rain falls on a roof with water in the background",
               "people talk with crowd in the background", "a siren wails", "birds sing in the morning")


def write_tiny_clap_folder(dest: str | os.PathLike, seed: int = 0, corpus: tuple[str, ...] = TINY_CORPUS) -> Path:
    """A random-weight, tiny CLAP in the real repo layout (:data:`CLAP_FILES`), for offline tests.

    Same files and formats as the laion repos: ``pytorch_model.bin`` (a torch state dict),
    ``config.json``, a RoBERTa byte-level BPE tokenizer (tokenizer.json, vocab.json,
    merges.txt, ...) trained on ``corpus``, and a default ``ClapFeatureExtractor`` config
    with the unfused checkpoint's settings. It knows nothing: it only exercises the code.
    """
    import torch
    from tokenizers import ByteLevelBPETokenizer

    transformers = offline_transformers()
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # RoBERTa's ids 0..4
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(corpus), vocab_size=400, min_frequency=1, special_tokens=specials,
                            show_progress=False)
    bpe.save_model(str(dest))  # vocab.json + merges.txt
    tokenizer = transformers.RobertaTokenizer(vocab=str(dest / "vocab.json"), merges=str(dest / "merges.txt"))
    tokenizer.save_pretrained(str(dest))  # tokenizer.json + tokenizer_config.json
    write_json(dest / "special_tokens_map.json",
               {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
                "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"})
    config = transformers.ClapConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=80),
        audio_config=dict(patch_embeds_hidden_size=8, depths=[1, 1], num_attention_heads=[1, 2],
                          hidden_size=16, window_size=8),
        projection_dim=12)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = transformers.ClapModel(config)
    torch.save(model.state_dict(), dest / "pytorch_model.bin")
    config.save_pretrained(str(dest))
    transformers.ClapFeatureExtractor(frequency_min=50, truncation="rand_trunc").save_pretrained(str(dest))
    return dest
