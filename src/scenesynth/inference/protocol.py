"""The generation protocol of docs/paper.md section 5, one prompt at a time, and the parts it runs on.

Per prompt: `n_candidates` mels from the generator; with CLAP, all are vocoded, the best kept
by CLAP's audio-text similarity, then the best of `n_crops` random `crop_seconds` crops,
48 -> 32 kHz. Offline the discriminator's global-to-sentence score ranks the mels and one random
crop is taken (it cannot score audio crops). The dev-set stage (generate.py) and every user
prompt (synthesizer.py) go through these functions, so there is one protocol, not two copies.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import soxr
import torch
import torch.nn.functional as F

from scenesynth import paths
from scenesynth.features.mel import MelFrontEnd
from scenesynth.inference.griffin_lim import griffin_lim
from scenesynth.inference.hifigan import load_hifigan
from scenesynth.inference.rerank import ClapReranker
from scenesynth.models import build_models
from scenesynth.utils.torch_files import holds_code, holds_code_message, unreadable_detail

MODEL_KEYS = ("generator", "discriminator", "model", "audio", "text", "step", "stand_ins")


class ModelFileError(ValueError):
    """A model file is missing, unreadable or not one that `train` exported; the message names it."""


class VocoderMismatch(ValueError):
    """The vocoder cannot invert the mels of this model's front end: it would give noise, not audio."""


def _one_line(err: BaseException) -> str:
    return unreadable_detail(err, 200)


def load_model(model_path: str | Path, device: torch.device):
    """(EMA generator, discriminator, the file's record) of a model.pt that `train` exported.

    Weights only (torch.load(weights_only=True)); a missing, truncated or foreign file is a
    ModelFileError naming the file, never a traceback from deep inside torch."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise ModelFileError(f"{model_path}: model file not found")
    try:
        saved = torch.load(model_path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if holds_code(err):  # torch's own text goes on to suggest weights_only=False: not quoted
            raise ModelFileError(f"{holds_code_message(model_path)}; a model that `scenesynth train` exported "
                                 f"holds weights and settings only") from err
        raise ModelFileError(f"{model_path}: not a readable model file ({_one_line(err)})") from err
    except Exception as err:  # noqa: BLE001 - torch's unpickler fails on foreign bytes with any error type
        raise ModelFileError(f"{model_path}: not a readable model file ({_one_line(err)})") from err
    missing = [key for key in MODEL_KEYS if not isinstance(saved, dict) or key not in saved]
    if missing:
        raise ModelFileError(f"{model_path}: not a model exported by `scenesynth train` (no {', '.join(missing)})")
    audio, text = saved["audio"], saved["text"]
    try:
        generator, discriminator = build_models(saved["model"], audio["n_mels"], audio["n_frames"],
                                                text["sentence_dim"], text["word_dim"])
        generator.load_state_dict(saved["generator"])
        discriminator.load_state_dict(saved["discriminator"])
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{model_path}: its weights do not fit its own settings ({_one_line(err)})") from err
    # model files before "loss" was recorded were trained with the paper's objective, G2S included
    discriminator.g2s_trained = float(saved.get("loss", {}).get("g2s", 1.0)) > 0
    return generator.to(device).eval(), discriminator.to(device).eval(), saved


def make_vocoder(gen_cfg: dict, front_end: MelFrontEnd, pretrained: str | Path = paths.PRETRAINED,
                 device: torch.device | str = "cpu"):
    """``vocoder(mels [B, n_mels, T], seed) -> waves [B, samples]`` at the front end's rate.

    Griffin-Lim inverts any front end exactly; the HiFi-GAN only the one it was trained on, so
    another front end is a VocoderMismatch (e.g. the demo's 64-mel model given the 256-mel HiFi-GAN)."""
    if gen_cfg["vocoder"] == "griffin_lim":
        return lambda mels, seed: np.stack([griffin_lim(m, front_end, n_iter=gen_cfg["griffin_lim_iters"], seed=seed)
                                            for m in mels])
    vocoder = load_hifigan(Path(pretrained) / "hifigan_48k", device)  # MissingPretrained says how to fetch it
    try:
        vocoder.check_front_end(front_end.settings)
    except ValueError as err:
        raise VocoderMismatch(f"{err}; Griffin-Lim (vocoder griffin_lim) inverts any front end") from err
    return lambda mels, seed: np.asarray(vocoder(mels)).reshape(len(mels), -1)


def make_reranker(gen_cfg: dict, pretrained: str | Path = paths.PRETRAINED, device: torch.device | str = "cpu"):
    """The CLAP audio-text re-ranker, or None when the discriminator's G2S score ranks the candidates."""
    if gen_cfg["rerank"] != "clap":
        return None
    return ClapReranker(Path(pretrained) / "clap_rerank", device=str(device))


def discriminator_scores(discriminator, mels: torch.Tensor, text) -> torch.Tensor:
    """Global-to-sentence similarity of each candidate: the offline re-ranker. A model trained without the G2S
    loss (loss.g2s 0: hinge alone, as the demo) has untrained G2S heads, whose similarity would pick at random:
    its D's logit ranks instead (the hinge trained it, and its projection term reads the sentence)."""
    out = discriminator(mels, text)
    if not getattr(discriminator, "g2s_trained", True):
        return out.logit
    return F.cosine_similarity(out.audio_embed, out.text_embed, dim=-1)


def random_crops(wave: np.ndarray, rate: int, seconds: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random `seconds` crops [n, samples]. A crop longer than the clip is an error: padding would
    hand the user digital silence as part of the clip they asked for."""
    n_crop = int(round(seconds * rate))
    if n_crop > len(wave):
        raise ValueError(f"a {seconds:g} s crop of a {len(wave) / rate:g} s clip: generate.crop_seconds is longer "
                         f"than the model's clips (crops are never padded)")
    starts = rng.integers(0, len(wave) - n_crop + 1, size=n)
    return np.stack([wave[s : s + n_crop] for s in starts])


def to_output_rate(crop: np.ndarray, rate: int, out_rate: int, seconds: float) -> np.ndarray:
    """48 -> 32 kHz (soxr VHQ), exactly ``out_rate * seconds`` samples (128 000 for the challenge)."""
    out = soxr.resample(crop.astype(np.float32), rate, out_rate, quality="VHQ")
    n_out = int(round(seconds * out_rate))
    return np.pad(out, (0, max(0, n_out - len(out))))[:n_out]


def best_candidate(mels: torch.Tensor, caption: str, text_batch, discriminator, vocoder, reranker,
                   seed: int) -> tuple[np.ndarray, dict]:
    """(the best candidate's waveform, {candidate, score, scores}): the highest score wins.

    With CLAP every candidate is vocoded and scored as audio; with the discriminator the mels are
    scored and only the winner is vocoded. A single candidate is not scored (scores None)."""
    n = mels.shape[0]
    if reranker is None:
        scores = discriminator_scores(discriminator, mels, text_batch).float().cpu().numpy() if n > 1 else None
        best = int(np.argmax(scores)) if scores is not None else 0
        wave = vocoder(mels[best : best + 1, 0].float().cpu().numpy(), seed)[0]
    else:
        waves = vocoder(mels[:, 0].float().cpu().numpy(), seed)
        scores = np.asarray(reranker.scores(waves, caption), dtype=np.float64)
        best = int(np.argmax(scores))
        wave = waves[best]
    listed = None if scores is None else [float(s) for s in scores]
    return wave, {"candidate": best, "score": None if listed is None else listed[best], "scores": listed}


def best_crop(wave: np.ndarray, caption: str, reranker, gen_cfg: dict, rate: int,
              rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """(the best `crop_seconds` crop at the output rate, {crop, crop_score, crop_scores}).

    CLAP scores `n_crops` random crops and the highest wins; without CLAP one random crop is taken."""
    if reranker is None:
        crops, scores = random_crops(wave, rate, gen_cfg["crop_seconds"], 1, rng), None
        crop = 0
    else:
        crops = random_crops(wave, rate, gen_cfg["crop_seconds"], gen_cfg["n_crops"], rng)
        scores = np.asarray(reranker.scores(crops, caption), dtype=np.float64)
        crop = int(np.argmax(scores))
    clip = to_output_rate(crops[crop], rate, gen_cfg["sample_rate"], gen_cfg["crop_seconds"])
    listed = None if scores is None else [float(s) for s in scores]
    return clip, {"crop": crop, "crop_score": None if listed is None else listed[crop], "crop_scores": listed}


def pick_clip(mels: torch.Tensor, caption: str, text_batch, discriminator, vocoder, reranker, gen_cfg: dict,
              rate: int, seed: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """docs/paper.md section 5 for one prompt: best candidate, then best crop; returns (clip at out rate, choice)."""
    wave, choice = best_candidate(mels, caption, text_batch, discriminator, vocoder, reranker, seed)
    clip, crop_choice = best_crop(wave, caption, reranker, gen_cfg, rate, rng)
    return clip, {**choice, **crop_choice}
