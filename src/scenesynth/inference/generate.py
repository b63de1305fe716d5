"""The generate stage: one 4 s, 32 kHz, 16-bit WAV per dev prompt and seed (docs/paper.md section 5).

Per prompt: `n_candidates` mels from the generator; with CLAP, all are vocoded,
the best kept by CLAP's audio-text similarity, then the best of `n_crops` random
`crop_seconds` crops, 48 -> 32 kHz. The offline demo uses Griffin-Lim and the
discriminator's global-to-sentence score (on the mels; one random crop); every
run records in generation.json which vocoder and re-ranker were used. Files are
written atomically and skipped when present, and each prompt's randomness
depends only on (seed, prompt), so an interrupted run resumes exactly.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
import torch.nn.functional as F
from tqdm import tqdm

from scenesynth import paths
from scenesynth.data.manifest import read_dev_prompts
from scenesynth.features.mel import MelFrontEnd
from scenesynth.inference.griffin_lim import griffin_lim
from scenesynth.inference.hifigan import load_hifigan
from scenesynth.inference.rerank import ClapReranker
from scenesynth.models import build_models
from scenesynth.pretrained.folder import checkpoint_record
from scenesynth.pretrained.models import needed_models
from scenesynth.text.prompts import PromptEncoder
from scenesynth.config import fingerprint
from scenesynth.utils.atomic import atomic_path, write_json, write_text
from scenesynth.utils.device import inference_device

log = logging.getLogger(__name__)


def load_model(model_path: str | Path, device: torch.device):
    saved = torch.load(model_path, map_location="cpu", weights_only=True)
    audio, text = saved["audio"], saved["text"]
    generator, discriminator = build_models(saved["model"], audio["n_mels"], audio["n_frames"],
                                            text["sentence_dim"], text["word_dim"])
    generator.load_state_dict(saved["generator"])
    discriminator.load_state_dict(saved["discriminator"])
    return generator.to(device).eval(), discriminator.to(device).eval(), saved


def make_vocoder(gen_cfg: dict, front_end: MelFrontEnd, pretrained: str | Path = paths.PRETRAINED,
                 device: torch.device | str = "cpu"):
    """``vocoder(mels [B, n_mels, T], seed) -> waves [B, samples]`` at the front end's rate."""
    if gen_cfg["vocoder"] == "griffin_lim":
        return lambda mels, seed: np.stack([griffin_lim(m, front_end, n_iter=gen_cfg["griffin_lim_iters"], seed=seed)
                                            for m in mels])
    vocoder = load_hifigan(Path(pretrained) / "hifigan_48k", device)  # MissingPretrained says how to fetch it
    vocoder.check_front_end(front_end.settings)
    return lambda mels, seed: np.asarray(vocoder(mels)).reshape(len(mels), -1)


def make_reranker(gen_cfg: dict, pretrained: str | Path = paths.PRETRAINED, device: torch.device | str = "cpu"):
    """The CLAP audio-text re-ranker, or None when params choose the discriminator's G2S score."""
    if gen_cfg["rerank"] != "clap":
        return None
    return ClapReranker(Path(pretrained) / "clap_rerank", device=str(device))


def discriminator_scores(discriminator, mels: torch.Tensor, text) -> torch.Tensor:
    """Global-to-sentence similarity of each candidate: the offline re-ranker."""
    out = discriminator(mels, text)
    return F.cosine_similarity(out.audio_embed, out.text_embed, dim=-1)


def random_crops(wave: np.ndarray, rate: int, seconds: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random `seconds` crops [n, samples] (zero-padded if the clip is shorter)."""
    n_crop = int(round(seconds * rate))
    wave = np.pad(wave, (0, max(0, n_crop - len(wave))))
    starts = rng.integers(0, len(wave) - n_crop + 1, size=n)
    return np.stack([wave[s : s + n_crop] for s in starts])


def to_output_rate(crop: np.ndarray, rate: int, out_rate: int, seconds: float) -> np.ndarray:
    """48 -> 32 kHz (soxr VHQ), exactly ``out_rate * seconds`` samples (128 000 for the challenge)."""
    out = soxr.resample(crop.astype(np.float32), rate, out_rate, quality="VHQ")
    n_out = int(round(seconds * out_rate))
    return np.pad(out, (0, max(0, n_out - len(out))))[:n_out]


def pick_clip(mels: torch.Tensor, caption: str, text_batch, discriminator, vocoder, reranker, gen_cfg: dict,
              rate: int, seed: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """docs/paper.md section 5 for one prompt: best candidate, then best crop; returns (clip at out rate, choice).

    With CLAP every candidate is vocoded and scored as audio, then `n_crops` crops of the best;
    with the discriminator (offline) the mels are scored and one random crop is taken, since
    D cannot score a 4 s crop of audio.
    """
    n = mels.shape[0]
    if reranker is None:
        scores = discriminator_scores(discriminator, mels, text_batch) if n > 1 else torch.zeros(1)
        best = int(torch.argmax(scores))
        wave = vocoder(mels[best : best + 1, 0].float().cpu().numpy(), seed)[0]
        crop_scores, crops = np.zeros(1), random_crops(wave, rate, gen_cfg["crop_seconds"], 1, rng)
    else:
        waves = vocoder(mels[:, 0].float().cpu().numpy(), seed)
        scores = torch.from_numpy(reranker.scores(waves, caption))
        best = int(torch.argmax(scores))
        crops = random_crops(waves[best], rate, gen_cfg["crop_seconds"], gen_cfg["n_crops"], rng)
        crop_scores = reranker.scores(crops, caption)
    crop = int(np.argmax(crop_scores))
    clip = to_output_rate(crops[crop], rate, gen_cfg["sample_rate"], gen_cfg["crop_seconds"])
    return clip, {"candidate": best, "score": float(scores[best]), "crop": crop, "crop_score": float(crop_scores[crop])}


def _discard_stale_outputs(out_dir: Path, inputs: list[Path], gen_cfg: dict) -> None:
    """Clips already present are reused only if made from these inputs (model, prompts) with these
    settings (and, for CLAP, the pre-trained checkpoints they record)."""
    hashes = [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in inputs]
    digest = fingerprint({"inputs": hashes, "generate": gen_cfg})
    marker = out_dir / ".generation_id"
    if marker.is_file() and marker.read_text().strip() != digest:
        log.info("%s holds clips of another model or settings: removing them", out_dir)
        for folder in out_dir.glob("seed*"):
            shutil.rmtree(folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(marker, digest + "\n")


@torch.no_grad()
def generate_dev_set(params: dict, model_path: str | Path, manifest: str | Path, out_dir: str | Path,
                     pretrained: str | Path = paths.PRETRAINED) -> dict:
    gen_cfg = params["generate"]
    device = inference_device(params)
    reranker = make_reranker(gen_cfg, pretrained, device)
    generator, discriminator, saved = load_model(model_path, device)
    prompts = PromptEncoder(saved["text"], Path(pretrained) / "clap_text", str(device))
    front_end = MelFrontEnd.from_params(saved["audio"])
    vocoder = make_vocoder(gen_cfg, front_end, pretrained, device)
    dev = read_dev_prompts(manifest)
    out_dir = Path(out_dir)
    _discard_stale_outputs(out_dir, [Path(model_path), Path(manifest)],
                           {**gen_cfg, "pretrained": params["pretrained"]})
    rate = front_end.settings.sample_rate
    started, n_done, chosen = time.perf_counter(), 0, {}
    for seed in gen_cfg["seeds"]:
        for index, row in tqdm(list(dev.iterrows()), desc=f"generate seed {seed}", unit="prompt", mininterval=2.0):
            path = out_dir / f"seed{seed}" / f"{row['key']}.wav"
            if path.is_file():
                continue
            gen = torch.Generator().manual_seed(seed * 1_000_003 + index)
            n = gen_cfg["n_candidates"]
            z = torch.randn(n, saved["model"]["z_dim"], generator=gen).to(device)
            text_batch = prompts.batch([row["caption"]] * n).to(device)
            mels = generator(z, text_batch)
            clip, choice = pick_clip(mels, row["caption"], text_batch, discriminator, vocoder, reranker, gen_cfg,
                                     rate, seed, np.random.default_rng([seed, index]))
            with atomic_path(path) as tmp:
                sf.write(tmp, np.clip(clip, -1.0, 1.0), gen_cfg["sample_rate"], subtype="PCM_16")
            chosen[f"seed{seed}/{row['key']}"] = choice
            n_done += 1
    elapsed = time.perf_counter() - started
    record = {
        "n_prompts": len(dev), "seeds": gen_cfg["seeds"], "n_candidates": gen_cfg["n_candidates"],
        "vocoder": gen_cfg["vocoder"], "rerank": gen_cfg["rerank"],
        "crop": (f"best of {gen_cfg['n_crops']} random {gen_cfg['crop_seconds']} s crops by CLAP" if reranker else
                 f"one random {gen_cfg['crop_seconds']} s crop (the discriminator cannot score audio crops)"),
        "sample_rate": gen_cfg["sample_rate"], "text_encoder": saved["text"]["encoder"], "model_step": saved["step"],
        "stand_ins": saved["stand_ins"],
        "pretrained": {name: checkpoint_record(Path(pretrained) / name) for name in needed_models(params)["generate"]},
        "choices": chosen,
    }
    timing = {"generated_this_run": n_done, "seconds_per_prompt": elapsed / n_done if n_done else None}
    write_json(out_dir / paths.TIMING_FILE, timing)
    write_json(out_dir / "generation.json", record)
    log.info("generated %d clips in %.1f s into %s", n_done, elapsed, out_dir)
    return {**record, **timing}
