"""Which pre-trained checkpoints the pipeline uses, and what a stage says when one is missing.

Which Hugging Face repos (evidence in the report of issue 6 and ``text/clap.py``):

* ``clap_text`` -> ``laion/larger_clap_general``: the transformers conversion of LAION's
  ``music_speech_audioset_epoch_15_esc_89.98.pt`` (HTSAT-base, music + speech + AudioSet +
  LAION-Audio-630k), the paper's text encoder.
* ``clap_text_music_speech`` -> ``laion/larger_clap_music_and_speech``: the conversion of
  ``music_speech_epoch_15_esc_89.25.pt`` (no AudioSet); offered, not the default.
* ``clap_rerank`` -> ``laion/clap-htsat-unfused``: ``630k-audioset-best.pt`` (HTSAT-tiny),
  the re-ranker of docs/paper.md section 5.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from scenesynth import paths

HF_ENDPOINT = "https://huggingface.co"
DEFAULT_PRETRAINED_ROOT = Path(paths.PRETRAINED)
CHECKSUMS_FILE = "checksums.json"
SOURCE_FILE = "source.json"

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


PIPELINE_MODELS = ("clap_text", "clap_rerank", "hifigan_48k", "panns")


class MissingPretrained(RuntimeError):
    """A stage needs a pre-trained part that is not in its folder; the message names the part and
    the command that fetches it (:func:`fetch_command`)."""


def fetch_command(name: str, root: str | Path = paths.PRETRAINED) -> str:
    """The shell command that fetches pipeline model ``name`` into ``root/name``: it works when pasted."""
    return f"scenesynth fetch-pretrained --name {name} --out {root}"


def fetch_hint(name: str, root: str | Path = paths.PRETRAINED) -> str:
    """What to do about a missing ``name``: the command, or the Snakemake rule that runs it."""
    return f"run `{fetch_command(name, root)}` (or let Snakemake's rule `fetch_pretrained` do it)"


def needed_models(params: dict) -> dict[str, list[str]]:
    """Which pretrained folders each stage needs with these params (none for the offline stand-ins)."""
    return {
        "text": ["clap_text"] if params["text"]["encoder"] == "clap" else [],
        "generate": [name for name, used in (("clap_text", params["text"]["encoder"] == "clap"),
                                             ("hifigan_48k", params["generate"]["vocoder"] == "hifigan"),
                                             ("clap_rerank", params["generate"]["rerank"] == "clap")) if used],
        "evaluate": [name for name, used in (("panns", params["evaluate"]["fad_embedding"] == "panns_wavegram_logmel"),
                                             ("clap_rerank", params["evaluate"]["clap_score"])) if used],
    }
