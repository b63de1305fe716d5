"""Fetching pretrained checkpoints for offline use, and finding them again.

Why a folder per checkpoint with a ``checksums.json``: a cluster job must load the weights
with no network (``HF_HUB_OFFLINE=1``), from a folder that was fetched once, resumably, and
is known to be complete and untampered. The first fetch records sha256 + size of each file
(trust on first use, or the pinned hashes below when we know them); every later fetch
verifies against that record and never downloads a verified file again.

Which Hugging Face repos (evidence in the report of issue 6 and ``text/clap.py``):

* ``clap_text`` -> ``laion/larger_clap_general``: the transformers conversion of LAION's
  ``music_speech_audioset_epoch_15_esc_89.98.pt`` (HTSAT-base, music + speech + AudioSet +
  LAION-Audio-630k), the paper's text encoder.
* ``clap_text_music_speech`` -> ``laion/larger_clap_music_and_speech``: the conversion of
  ``music_speech_epoch_15_esc_89.25.pt`` (no AudioSet); offered, not the default.
* ``clap_rerank`` -> ``laion/clap-htsat-unfused``: ``630k-audioset-best.pt`` (HTSAT-tiny),
  the re-ranker of SPEC section 5.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from scenesynth import paths
from scenesynth.data.download import ChecksumMismatch, fetch_recorded, file_checksum, load_checksums
from scenesynth.data.hf_hub import resolve_url
from scenesynth.utils.atomic import write_json

log = logging.getLogger(__name__)

HF_ENDPOINT = "https://huggingface.co"
DEFAULT_PRETRAINED_ROOT = Path(paths.PRETRAINED)
CHECKSUMS_FILE = "checksums.json"
SOURCE_FILE = "source.json"
FETCH_HINT = "run `scenesynth fetch-pretrained {name}` (Snakemake rule `fetch_pretrained`)"

# The file list of the transformers-format LAION-CLAP repos (same for all three, checked on
# huggingface.co/laion/<repo>/tree/<revision>): model + config, the RoBERTa BPE tokenizer
# (fast tokenizer.json and the slow vocab/merges), and the audio feature extractor config.
CLAP_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                        "vocab.json", "merges.txt")
CLAP_FILES = ("config.json", "pytorch_model.bin", "preprocessor_config.json", *CLAP_TOKENIZER_FILES)
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # what ClapModel.from_pretrained reads


@dataclass(frozen=True)
class HfCheckpoint:
    """One pinned Hugging Face repo revision and the files we need from it."""

    repo: str
    revision: str
    files: tuple[str, ...] = CLAP_FILES
    pinned: dict[str, dict] = field(default_factory=dict)  # file -> {"sha256", "size"}; optional

    @property
    def weights_file(self) -> str:
        return next(f for f in self.files if f in WEIGHT_FILES)


CHECKPOINTS: dict[str, HfCheckpoint] = {
    "clap_text": HfCheckpoint(
        "laion/larger_clap_general", "ada0c23a36c4e8582805bb38fec3905903f18b41",
        # LFS pointer of pytorch_model.bin, seen in two independent mirrors of this revision.
        pinned={"pytorch_model.bin": {
            "sha256": "314eb00cce6ad68d25237b8446b659ccdb136ed4672c1bca470f142f72455026", "size": 776444665}},
    ),
    "clap_text_music_speech": HfCheckpoint(
        "laion/larger_clap_music_and_speech", "195c3a3e68faebb3e2088b9a79e79b43ddbda76b"),
    "clap_rerank": HfCheckpoint("laion/clap-htsat-unfused", "8fa0f1c6d0433df6e97c127f64b2a1d6c0dcda8a"),
}


def fetch_hf_folder(repo: str, revision: str, files: tuple[str, ...] | list[str], dest: str | os.PathLike,
                    endpoint: str = HF_ENDPOINT, checksums: dict | None = None) -> Path:
    """Fetch ``files`` of ``repo`` at ``revision`` into ``dest`` (a folder ``from_pretrained`` can load).

    ``checksums``: optional pinned ``{file: sha256 or {"sha256", "size"}}``. Writes
    ``dest/checksums.json`` (trust on first use) and ``dest/source.json`` (repo, revision).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    pinned = dict(checksums or {})
    for name in files:
        fetch_recorded(resolve_url(endpoint, repo, revision, name, repo_type="model"), dest / name,
                       dest / CHECKSUMS_FILE, pinned=pinned.get(name), progress=True)
    write_json(dest / SOURCE_FILE, {"repo": repo, "revision": revision, "files": list(files),
                                    "endpoint": endpoint})
    return dest


def fetch_file(url: str, dest: str | os.PathLike, sha256: str | None = None) -> Path:
    """Fetch a single-file checkpoint (Zenodo, GitHub releases); checksums go to ``dest``'s folder."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fetch_recorded(url, dest, dest.parent / CHECKSUMS_FILE, pinned=sha256, progress=True)
    return dest


def fetch_pretrained(name: str, root: str | os.PathLike = DEFAULT_PRETRAINED_ROOT,
                     endpoint: str = HF_ENDPOINT) -> Path:
    """Fetch one of :data:`CHECKPOINTS` into ``root/name`` (the CLI verb ``fetch-pretrained``)."""
    if name not in CHECKPOINTS:
        raise KeyError(f"unknown pretrained checkpoint {name!r}; known: {sorted(CHECKPOINTS)}")
    ckpt = CHECKPOINTS[name]
    return fetch_hf_folder(ckpt.repo, ckpt.revision, ckpt.files, Path(root) / name, endpoint, ckpt.pinned)


def verify_folder(folder: str | os.PathLike, full: bool = True) -> None:
    """Check every file recorded in ``checksums.json`` (size always, sha256 when ``full``)."""
    folder = Path(folder)
    problems = []
    for name, entry in load_checksums(folder / CHECKSUMS_FILE).items():
        path = folder / name
        if not path.exists():
            problems.append(f"{name} missing")
        elif path.stat().st_size != entry["size"]:
            problems.append(f"{name} has {path.stat().st_size} bytes, recorded {entry['size']}")
        elif full and file_checksum(path)["sha256"] != entry["sha256"]:
            problems.append(f"{name} sha256 differs from the recorded one")
    if problems:
        raise ChecksumMismatch(f"{folder}: " + "; ".join(problems) + " (delete the file and fetch it again)")


def missing_model_files(folder: str | os.PathLike, need_audio: bool = False) -> list[str]:
    """What a local transformers CLAP folder lacks for ``ClapModel`` + tokenizer (+ feature extractor)."""
    folder = Path(folder)
    missing = [] if (folder / "config.json").is_file() else ["config.json"]
    if not any((folder / w).is_file() for w in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES))
    slow_tokenizer = all((folder / f).is_file() for f in ("vocab.json", "merges.txt"))
    if not (folder / "tokenizer.json").is_file() and not slow_tokenizer:
        missing.append("tokenizer.json (or vocab.json + merges.txt)")
    if need_audio and not (folder / "preprocessor_config.json").is_file():
        missing.append("preprocessor_config.json")
    return missing


def checkpoint_record(folder: str | os.PathLike) -> dict:
    """Which checkpoint a folder holds: repo, revision and the weights' sha256 when recorded."""
    folder = Path(folder)
    source = json.loads((folder / SOURCE_FILE).read_text()) if (folder / SOURCE_FILE).is_file() else {}
    sums = load_checksums(folder / CHECKSUMS_FILE)
    weights = next((w for w in WEIGHT_FILES if (folder / w).is_file()), None)
    return {"folder": str(folder), "repo": source.get("repo"), "revision": source.get("revision"),
            "weights_file": weights, "weights_sha256": sums.get(weights, {}).get("sha256") if weights else None,
            "sha256": {name: entry.get("sha256") for name, entry in sorted(sums.items())}}


def offline_transformers():
    """Import transformers for loading local folders only (never touching the network)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    import transformers

    transformers.utils.logging.disable_progress_bar()
    return transformers


def load_clap_model(folder: str | os.PathLike, device: str = "cpu", parts: tuple[str, ...] = ("text", "audio")):
    """``ClapModel`` from a local folder, in eval mode; refuses silently re-initialised weights."""
    transformers = offline_transformers()
    model, info = transformers.ClapModel.from_pretrained(str(folder), local_files_only=True,
                                                         output_loading_info=True)
    prefixes = tuple(p for part in parts for p in (f"{part}_model.", f"{part}_projection."))
    buffers = {name for name, _ in model.named_buffers()}
    missing = sorted(k for k in info["missing_keys"] if k.startswith(prefixes) and k not in buffers)
    if missing or info["mismatched_keys"]:
        raise ChecksumMismatch(f"{folder}: the checkpoint lacks or mis-shapes weights the model needs "
                               f"({(missing or sorted(info['mismatched_keys']))[:5]} ...); fetch it again")
    return model.to(device).eval()


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


# ----------------------------------------------------------------------------- the pipeline's models

PIPELINE_MODELS = ("clap_text", "clap_rerank", "hifigan_48k", "panns")


def fetch_for_pipeline(name: str, params: dict, root: str | os.PathLike = DEFAULT_PRETRAINED_ROOT) -> Path:
    """Fetch the model the pipeline calls ``name`` into ``root/name``, as params.yaml's `pretrained` says.

    Every folder ends with a ``source.json`` (what was fetched, from where), the rule's output.
    """
    cfg, dest = params["pretrained"], Path(root) / name
    if name in ("clap_text", "clap_rerank"):
        ckpt = CHECKPOINTS[cfg[name]]
        _forget_other_source(dest, ckpt.repo, ckpt.revision)
        return fetch_hf_folder(ckpt.repo, ckpt.revision, ckpt.files, dest, cfg["hf_endpoint"], ckpt.pinned)
    if name == "hifigan_48k":
        vocoder = cfg["hifigan_48k"]
        _forget_other_source(dest, vocoder["repo"], vocoder["revision"])
        return fetch_hf_folder(vocoder["repo"], vocoder["revision"], [vocoder["file"]], dest, cfg["hf_endpoint"])
    if name == "panns":
        from scenesynth.data.zenodo import fetch_record

        panns = cfg["panns"]
        fetch_record(cfg["zenodo_api"], panns["record"], dest, keys=[panns["file"]])  # md5 from Zenodo
        write_json(dest / SOURCE_FILE, {"zenodo_record": panns["record"], "files": [panns["file"]],
                                        "api": cfg["zenodo_api"]})
        return dest
    raise KeyError(f"unknown pretrained model {name!r}; the pipeline uses {list(PIPELINE_MODELS)}")


def _forget_other_source(dest: Path, repo: str, revision: str) -> None:
    """A folder fetched from another repo/revision is emptied first: its checksums describe other files."""
    source = dest / SOURCE_FILE
    if not source.is_file():
        return
    previous = json.loads(source.read_text())
    if (previous.get("repo"), previous.get("revision")) != (repo, revision):
        log.warning("%s holds %s@%s; replacing it with %s@%s", dest, previous.get("repo"), previous.get("revision"),
                    repo, revision)
        for path in dest.iterdir():
            if path.is_file():
                path.unlink()


def needed_models(params: dict) -> dict[str, list[str]]:
    """Which pretrained folders each stage needs with these params (none for the offline stand-ins)."""
    return {
        "text": ["clap_text"] if params["text"]["encoder"] == "clap" else [],
        "generate": [name for name, used in (("hifigan_48k", params["generate"]["vocoder"] == "hifigan"),
                                             ("clap_rerank", params["generate"]["rerank"] == "clap")) if used],
        "evaluate": ["panns"] if params["evaluate"]["fad_embedding"] == "panns_wavegram_logmel" else [],
    }
