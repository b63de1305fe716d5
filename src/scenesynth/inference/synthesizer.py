"""Use a trained model: prompts in, audio out. ``from scenesynth import Synthesizer``.

A Synthesizer loads a model file once (generator, discriminator, the record of what it was
trained with), the text encoder that record names (text/prompts.py), the re-ranker and the
vocoder, then turns any prompt into a clip with the protocol of docs/paper.md section 5
(protocol.py). The dev-set stage (generate.py), `scenesynth synthesize` and `scenesynth serve`
all call `render`, so the challenge's clips and a user's are made by the same code.

Reproducible by construction: a clip's randomness (the candidates' noise, the crops) is drawn
from (seed, stream) alone. For user prompts the stream is a hash of the prompt text, so the
same prompt and seed give the same bytes whichever list, file or web page it came from; the
dev set keeps its prompt index as the stream, so its clips are those it always made.
"""

from __future__ import annotations

import hashlib
import logging
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from scenesynth import paths
from scenesynth.config import complete_params, load_params
from scenesynth.features.mel import MelFrontEnd
from scenesynth.fetch.download import sha256_file
from scenesynth.inference.protocol import (ModelFileError, VocoderMismatch, best_candidate, load_model,
                                           make_reranker, make_vocoder, pick_clip)
from scenesynth.pretrained.folder import missing_model_files
from scenesynth.text.prompts import PromptEncoder
from scenesynth.utils.device import resolve_device

log = logging.getLogger(__name__)

FORMATS = ("challenge", "full")          # crop_seconds at generate.sample_rate | the whole clip at the vocoder's rate
RERANKERS = ("auto", "clap", "discriminator")
VOCODERS = ("hifigan", "griffin_lim")
MAX_SEED = 2**32 - 1


class PromptError(ValueError):
    """A prompt that cannot be synthesised (empty, too long, control characters); the message says which."""


# Invisible format characters that change a prompt's bytes (and so its clip) without changing how it
# looks: refused by name. ZWJ and ZWNJ are kept: scripts such as Persian and Devanagari spell with them.
_SPELLING_FORMAT_CHARS = {"\u200c", "\u200d"}
_VISIBLE = ("L", "N", "P", "S")  # Unicode major categories of characters that show: letters, numbers, ...


def check_prompt(prompt, max_chars: int, label: str = "the prompt") -> str:
    """The prompt as it is used (NFC, without surrounding white space), or a PromptError that names the
    problem in one line (never echoing a huge or unprintable prompt back).

    What looks the same must be the same request: composed and decomposed accents are unified (NFC);
    control characters, invisible format characters (zero-width space, a byte-order mark) and a prompt
    with nothing visible in it are refused, since they would make a different clip of the same text."""
    if not isinstance(prompt, str):
        raise PromptError(f"{label} is not text but {type(prompt).__name__}")
    text = unicodedata.normalize("NFC", prompt).strip()
    if not text:
        raise PromptError(f"{label} is empty")
    if len(text) > max_chars:
        raise PromptError(f"{label} has {len(text)} characters; at most {max_chars} are accepted "
                          f"(synthesize.max_prompt_chars; the text encoder reads its first tokens only)")
    for position, char in enumerate(text, start=1):
        category = unicodedata.category(char)
        if category == "Cc":
            raise PromptError(f"{label} contains the control character U+{ord(char):04X} at character {position}")
        if category in ("Cf", "Co", "Cn", "Cs") and char not in _SPELLING_FORMAT_CHARS:
            raise PromptError(f"{label} contains the invisible or unassigned character U+{ord(char):04X} "
                              f"({unicodedata.name(char, 'unnamed')}) at character {position}")
    if not any(unicodedata.category(char)[0] in _VISIBLE for char in text):
        raise PromptError(f"{label} has no visible character (only spaces or marks)")
    return text


def check_prompts(prompts: Sequence[str], max_chars: int, labels: Sequence[str] | None = None) -> list[str]:
    """Every prompt checked before any work starts (one bad prompt stops all, nothing half-done)."""
    if not prompts:
        raise PromptError("no prompts given")
    if labels is None:
        labels = ["the prompt"] if len(prompts) == 1 else [f"prompt {i}" for i in range(1, len(prompts) + 1)]
    return [check_prompt(prompt, max_chars, label) for prompt, label in zip(prompts, labels)]


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed {str(seed)[:40]!r} is not an integer from 0 to {MAX_SEED}")
    return int(seed)


def prompt_stream(prompt: str) -> int:
    """The random stream of a user prompt: a function of its text alone."""
    return int.from_bytes(hashlib.sha256(prompt.encode("utf-8")).digest()[:4], "big")


def _choose(value, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"{what} {str(value)[:40]!r} is not one of {', '.join(allowed)}")
    return value


def check_settings(params: dict, format: str | None = None, rerank: str | None = None, candidates: int | None = None,
                   seconds: float | None = None, device: str | torch.device | None = None):
    """(format, re-ranker, candidates, device) as asked or from params, each checked without loading
    anything: the CLI calls this before it sweeps or writes (cli.py), the Synthesizer before it loads."""
    cfg = params["synthesize"]
    chosen_format = _choose(format or cfg["format"], FORMATS, "format")
    chosen_rerank = _choose(rerank or cfg["rerank"], RERANKERS, "re-ranker")
    n_candidates = params["generate"]["n_candidates"] if candidates is None else candidates
    if isinstance(n_candidates, bool) or not isinstance(n_candidates, int) or n_candidates < 1:
        raise ValueError(f"candidates must be a whole number >= 1, got {n_candidates!r}")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                                or not 0 < seconds < float("inf")):
        raise ValueError(f"seconds must be a positive number, got {str(seconds)[:40]!r}")
    return chosen_format, chosen_rerank, n_candidates, resolve_device(device or cfg["device"])


def recorded_vocoder(saved: dict) -> str | None:
    """The vocoder the model's front end was made for, as its file names it: `vocoder`, or among the
    stand-ins for files exported before that key existed."""
    return saved.get("vocoder") or (saved.get("stand_ins") or {}).get("generate.vocoder")


def model_vocoder(saved: dict, model_path: str | Path) -> str:
    """The recorded vocoder; a file that names none must be told (it is never guessed)."""
    name = recorded_vocoder(saved)
    if name not in VOCODERS:
        raise ModelFileError(f"{model_path}: the model file does not say which vocoder its front end is for; "
                             f"name one (--vocoder, or vocoder= in Python: {', '.join(VOCODERS)})")
    return name


def _warn_if_trained_with_another_overlay(model_path: Path, saved: dict, params: dict, gen_cfg: dict) -> None:
    """The model file records the overlay it was trained with; the protocol's settings (candidates,
    Griffin-Lim iterations) come from the params in use. Say so when the two differ, with the figures."""
    trained = str((saved.get("stand_ins") or {}).get("overlay"))
    used = str(params.get("overlay"))
    if trained == used:
        return
    figures = f"{gen_cfg['n_candidates']} candidates"
    if gen_cfg["vocoder"] == "griffin_lim":
        figures += f", {gen_cfg['griffin_lim_iters']} Griffin-Lim iterations"
    hint = f"; add --overlay {trained} for the settings it was made with" if trained not in ("None", "") else ""
    source = "params without an overlay" if used in ("None", "") else f"overlay {used}"
    log.warning("%s was trained with overlay %s; these settings come from %s: %s%s",
                model_path, trained, source, figures, hint)


class Synthesis(NamedTuple):
    """What a call returns: one clip per prompt, in order."""

    audio: np.ndarray      # [n_prompts, samples] float32 in [-1, 1]
    sample_rate: int
    records: list[dict]    # per clip: prompt, seed, the candidate (and crop) scores and which won


class Synthesizer:
    """Load once, then ``synth(["a siren wailing", ...], seed=0) -> Synthesis(audio, sample_rate, records)``.

    Settings not given here come from params (``params.yaml`` and its overlay, or a loaded dict):
    ``synthesize.*`` (seed, format, rerank, device, prompt limit) and the protocol's ``generate.*``
    (candidates, crops, Griffin-Lim iterations, output rate). The vocoder defaults to the one the
    model file names; ``rerank="auto"`` means CLAP when ``<pretrained>/clap_rerank`` is there, else
    the discriminator's score.
    """

    def __init__(self, model: str | Path, params: Mapping | str | Path = "params.yaml", *,
                 overlay: str | Path | None = None, device: str | torch.device | None = None,
                 vocoder: str | None = None, rerank: str | None = None, candidates: int | None = None,
                 format: str | None = None, seconds: float | None = None, pretrained: str | Path = paths.PRETRAINED):
        params = (complete_params(dict(params), overlay) if isinstance(params, Mapping)
                  else load_params(params, overlay))
        cfg, gen_cfg = params["synthesize"], params["generate"]
        self.format, rerank, n_candidates, self.device = check_settings(params, format, rerank, candidates, seconds,
                                                                        device)
        self.max_prompt_chars, self.default_seed = cfg["max_prompt_chars"], cfg["seed"]
        self.pretrained, self.model_path = Path(pretrained), Path(model)

        self.generator, self.discriminator, saved = load_model(self.model_path, self.device)
        self.model_info = {key: value for key, value in saved.items() if key not in ("generator", "discriminator")}
        self.model_sha256 = sha256_file(self.model_path)
        self.front_end = MelFrontEnd.from_params(saved["audio"])
        self.rate = self.front_end.settings.sample_rate
        trained_for = model_vocoder(saved, self.model_path) if vocoder is None else None
        vocoder = _choose(vocoder or trained_for, VOCODERS, "vocoder")
        if rerank == "auto":
            clap_missing = missing_model_files(self.pretrained / "clap_rerank", need_audio=True)
            rerank = "discriminator" if clap_missing else "clap"
        self.gen_cfg = {**gen_cfg, "vocoder": vocoder, "rerank": rerank, "n_candidates": n_candidates,
                        "crop_seconds": self._crop_seconds(gen_cfg["crop_seconds"], seconds)}
        _warn_if_trained_with_another_overlay(self.model_path, saved, params, self.gen_cfg)
        self.prompts = PromptEncoder(saved["text"], self.pretrained / "clap_text", str(self.device))
        self.reranker = make_reranker(self.gen_cfg, self.pretrained, self.device)
        try:
            self.vocoder = make_vocoder(self.gen_cfg, self.front_end, self.pretrained, self.device)
        except VocoderMismatch as err:
            raise VocoderMismatch(f"{self.model_path}: a model made for the {recorded_vocoder(saved)} vocoder: "
                                  f"{err}") from err
        log.info("loaded %s (step %s, %s text encoder) on %s: %s vocoder, %s re-ranking of %d candidates, %s format",
                 self.model_path, saved["step"], saved["text"]["encoder"], self.device, vocoder, rerank, n_candidates,
                 self.format)

    @property
    def model_seconds(self) -> float:
        """Length of the clips the model makes (its front end's window)."""
        settings = self.front_end.settings
        return settings.n_frames * settings.hop_length / self.rate

    def _crop_seconds(self, configured: float, asked: float | None) -> float:
        """The challenge crop: ``asked`` (--seconds) when it fits the model's clip, an error when it does
        not (a crop is never padded with silence); unasked, generate.crop_seconds capped at the model's
        clip, which the model file's front end fixes (the demo's model makes 2.56 s, not the paper's 4 s)."""
        whole = self.model_seconds
        if asked is not None:
            if asked > whole + 1e-9:
                raise ValueError(f"seconds {asked:g}: longer than the {whole:g} s clips {self.model_path} makes "
                                 f"(its front end: {self.front_end.settings.n_frames} frames of hop "
                                 f"{self.front_end.settings.hop_length} at {self.rate} Hz); a crop is never padded")
            return float(asked)
        if configured > whole + 1e-9:
            if self.format == "challenge":  # the whole clip is what `full` gives anyway
                log.warning("%s makes %g s clips: generate.crop_seconds %g does not fit, so each clip is the "
                            "whole %g s (--seconds chooses a shorter crop)", self.model_path, whole, configured, whole)
            return whole
        return float(configured)

    @property
    def sample_rate(self) -> int:
        return self.gen_cfg["sample_rate"] if self.format == "challenge" else self.rate

    @property
    def seconds(self) -> float:
        """Length of every clip: the challenge's crop, or the model's whole clip."""
        if self.format == "challenge":
            return float(self.gen_cfg["crop_seconds"])
        return self.front_end.settings.n_frames * self.front_end.settings.hop_length / self.rate

    def describe(self) -> dict:
        """What makes a clip what it is, besides its prompt and seed: recorded beside every output."""
        g = self.gen_cfg
        settings = {"format": self.format, "sample_rate": self.sample_rate, "seconds": self.seconds,
                    "vocoder": g["vocoder"], "rerank": g["rerank"], "n_candidates": g["n_candidates"],
                    "device": str(self.device)}
        if g["vocoder"] == "griffin_lim":
            settings["griffin_lim_iters"] = g["griffin_lim_iters"]
        if self.format == "challenge" and g["rerank"] == "clap":
            settings["n_crops"] = g["n_crops"]
        info = self.model_info
        return {**settings, "model": {"path": str(self.model_path), "sha256": self.model_sha256, "step": info["step"],
                                      "text_encoder": info["text"]["encoder"], "stand_ins": info["stand_ins"]}}

    @torch.no_grad()
    def render(self, prompt: str, seed: int, stream: int) -> tuple[np.ndarray, dict]:
        """One clip (float32 in [-1, 1] at `sample_rate`) and how it was chosen; its randomness is
        (seed, stream) alone. The shared core: no validation here (see __call__)."""
        n = self.gen_cfg["n_candidates"]
        noise = torch.Generator().manual_seed(seed * 1_000_003 + stream)
        z = torch.randn(n, self.model_info["model"]["z_dim"], generator=noise).to(self.device)
        text = self.prompts.batch([prompt] * n).to(self.device)
        mels = self.generator(z, text)
        if self.format == "challenge":
            clip, choice = pick_clip(mels, prompt, text, self.discriminator, self.vocoder, self.reranker,
                                     self.gen_cfg, self.rate, seed, np.random.default_rng([seed, stream]))
        else:
            clip, choice = best_candidate(mels, prompt, text, self.discriminator, self.vocoder, self.reranker, seed)
        return np.clip(clip, -1.0, 1.0).astype(np.float32), choice

    def check(self, prompts: str | Sequence[str], seed: int | None = None) -> tuple[list[str], int]:
        """The prompts as they will be used and the seed, or a one-line error before any work starts."""
        listed = list(prompts) if isinstance(prompts, Sequence) and not isinstance(prompts, str) else [prompts]
        return check_prompts(listed, self.max_prompt_chars), check_seed(self.default_seed if seed is None else seed)

    def __call__(self, prompts: str | Sequence[str], seed: int | None = None) -> Synthesis:
        checked, seed = self.check(prompts, seed)
        clips, records = [], []
        for prompt in checked:
            clip, choice = self.render(prompt, seed, prompt_stream(prompt))
            clips.append(clip)
            records.append({"prompt": prompt, "seed": seed, **choice})
        return Synthesis(np.stack(clips), self.sample_rate, records)
