"""The generate stage: one 4 s, 32 kHz, 16-bit WAV per dev prompt and seed (SPEC.md section 5).

Per prompt: `n_candidates` mels from the generator, the best kept by the
re-ranker, the vocoder, a random `crop_seconds` crop, 48 -> 32 kHz. The offline
demo uses Griffin-Lim and the discriminator's global-to-sentence score; every
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

from scenesynth.data.manifest import read_manifest
from scenesynth.features.mel import MelFrontEnd
from scenesynth.models import build_models
from scenesynth.text.cache import TextCache
from scenesynth.config import fingerprint
from scenesynth.utils.atomic import atomic_path, write_json, write_text

log = logging.getLogger(__name__)


class VocoderUnavailable(RuntimeError):
    """The configured vocoder cannot run here; the message says what to get."""


class RerankerUnavailable(RuntimeError):
    """The configured re-ranker cannot run here; the message says what to get."""


def load_model(model_path: str | Path, device: torch.device):
    saved = torch.load(model_path, map_location="cpu", weights_only=True)
    audio, text = saved["audio"], saved["text"]
    generator, discriminator = build_models(saved["model"], audio["n_mels"], audio["n_frames"],
                                            text["sentence_dim"], text["word_dim"])
    generator.load_state_dict(saved["generator"])
    discriminator.load_state_dict(saved["discriminator"])
    return generator.to(device).eval(), discriminator.to(device).eval(), saved


def make_vocoder(gen_cfg: dict, front_end: MelFrontEnd):
    if gen_cfg["vocoder"] == "griffin_lim":
        from scenesynth.inference.griffin_lim import griffin_lim

        return lambda mel, seed: griffin_lim(mel, front_end, n_iter=gen_cfg["griffin_lim_iters"], seed=seed)
    raise VocoderUnavailable(
        "generate.vocoder 'hifigan' needs the pre-trained 48 kHz HiFi-GAN (SPEC.md section 1), which this "
        "version of the pipeline does not load yet. For the offline demo set `generate.vocoder: griffin_lim`."
    )


def discriminator_scores(discriminator, mels: torch.Tensor, text) -> torch.Tensor:
    """Global-to-sentence similarity of each candidate: the offline re-ranker."""
    out = discriminator(mels, text)
    return F.cosine_similarity(out.audio_embed, out.text_embed, dim=-1)


def crop_and_resample(wave: np.ndarray, rate: int, seconds: float, out_rate: int,
                      rng: np.random.Generator) -> np.ndarray:
    """A random `seconds` crop (zero-padded if the clip is shorter), resampled to exactly out_rate*seconds."""
    n_crop = int(round(seconds * rate))
    if len(wave) > n_crop:
        start = int(rng.integers(0, len(wave) - n_crop + 1))
        wave = wave[start : start + n_crop]
    wave = np.pad(wave, (0, max(0, n_crop - len(wave))))
    out = soxr.resample(wave.astype(np.float32), rate, out_rate, quality="VHQ")
    n_out = int(round(seconds * out_rate))
    return np.pad(out, (0, max(0, n_out - len(out))))[:n_out]


def _discard_stale_outputs(out_dir: Path, inputs: list[Path], gen_cfg: dict) -> None:
    """Clips already present are reused only if made from these inputs (model, text cache,
    prompts) with these settings."""
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
def generate_dev_set(params: dict, model_path: str | Path, text: str | Path, manifest: str | Path,
                     out_dir: str | Path) -> dict:
    gen_cfg = params["generate"]
    if gen_cfg["rerank"] == "clap":
        raise RerankerUnavailable(
            "generate.rerank 'clap' needs the LAION-CLAP HTSAT-tiny checkpoint (SPEC.md section 5), which this "
            "version of the pipeline does not load yet. Set `generate.rerank: discriminator` (offline).")
    device = torch.device("cuda" if torch.cuda.is_available() and params["train"]["device"] != "cpu" else "cpu")
    generator, discriminator, saved = load_model(model_path, device)
    cache = TextCache(text)
    if cache.encoder != saved["text"]["encoder"]:
        raise ValueError(f"{text}: text encoder {cache.encoder!r} differs from the one the model was trained "
                         f"with ({saved['text']['encoder']!r})")
    front_end = MelFrontEnd.from_config(saved["audio"])
    vocoder = make_vocoder(gen_cfg, front_end)
    dev = read_manifest(manifest)
    dev = dev[dev["split"] == "dev"].sort_values("key").reset_index(drop=True)
    if dev.empty:
        raise ValueError(f"{manifest}: no dev prompts (split == 'dev')")
    out_dir = Path(out_dir)
    _discard_stale_outputs(out_dir, [Path(model_path), Path(text) / "captions.parquet", Path(manifest)], gen_cfg)
    started, n_done, chosen = time.perf_counter(), 0, {}
    for seed in gen_cfg["seeds"]:
        for index, row in tqdm(list(dev.iterrows()), desc=f"generate seed {seed}", unit="prompt", mininterval=2.0):
            path = out_dir / f"seed{seed}" / f"{row['key']}.wav"
            if path.is_file():
                continue
            gen = torch.Generator().manual_seed(seed * 1_000_003 + index)
            n = gen_cfg["n_candidates"]
            z = torch.randn(n, saved["model"]["z_dim"], generator=gen).to(device)
            text_batch = cache.batch([row["caption"]] * n).to(device)
            mels = generator(z, text_batch)
            scores = discriminator_scores(discriminator, mels, text_batch) if n > 1 else torch.zeros(1)
            best = int(torch.argmax(scores))
            wave = vocoder(mels[best, 0].float().cpu().numpy(), seed)
            rng = np.random.default_rng([seed, index])
            clip = crop_and_resample(wave, front_end.settings.sample_rate, gen_cfg["crop_seconds"],
                                     gen_cfg["sample_rate"], rng)
            with atomic_path(path) as tmp:
                sf.write(tmp, np.clip(clip, -1.0, 1.0), gen_cfg["sample_rate"], subtype="PCM_16")
            chosen[f"seed{seed}/{row['key']}"] = {"candidate": best, "score": float(scores[best])}
            n_done += 1
    elapsed = time.perf_counter() - started
    record = {
        "n_prompts": len(dev), "seeds": gen_cfg["seeds"], "n_candidates": gen_cfg["n_candidates"],
        "vocoder": gen_cfg["vocoder"], "rerank": gen_cfg["rerank"],
        "crop": f"one random {gen_cfg['crop_seconds']} s crop (crop re-ranking needs CLAP)",
        "sample_rate": gen_cfg["sample_rate"], "text_encoder": cache.encoder, "model_step": saved["step"],
        "stand_ins": saved["stand_ins"], "generated_this_run": n_done,
        "seconds_per_prompt": elapsed / n_done if n_done else None, "choices": chosen,
    }
    write_json(out_dir / "generation.json", record)
    log.info("generated %d clips in %.1f s into %s", n_done, elapsed, out_dir)
    return record
