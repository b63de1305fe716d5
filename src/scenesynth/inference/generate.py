"""The generate stage: one 4 s, 32 kHz, 16-bit WAV per dev prompt and seed (docs/paper.md section 5).

A loop over the dev prompts and seeds around the shared core (synthesizer.py's `render`, the
protocol of protocol.py), with the vocoder, re-ranker and candidates that params' `generate`
section chooses; every run records in generation.json which were used. Files are written
atomically and skipped when present, and each prompt's randomness depends only on (seed,
prompt index), so an interrupted run resumes exactly.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from scenesynth import paths
from scenesynth.config import fingerprint
from scenesynth.data.manifest import read_dev_prompts
from scenesynth.inference.synthesizer import Synthesizer
from scenesynth.pretrained.folder import checkpoint_record
from scenesynth.pretrained.models import needed_models
from scenesynth.utils.atomic import atomic_path, write_json, write_text
from scenesynth.utils.device import inference_device

log = logging.getLogger(__name__)


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


def generate_dev_set(params: dict, model_path: str | Path, manifest: str | Path, out_dir: str | Path,
                     pretrained: str | Path = paths.PRETRAINED) -> dict:
    gen_cfg = params["generate"]
    synth = Synthesizer(model_path, params, device=inference_device(params), vocoder=gen_cfg["vocoder"],
                        rerank=gen_cfg["rerank"], candidates=gen_cfg["n_candidates"], format="challenge",
                        seconds=gen_cfg["crop_seconds"], pretrained=pretrained)  # scored at this length: never capped
    dev = read_dev_prompts(manifest)
    out_dir = Path(out_dir)
    _discard_stale_outputs(out_dir, [Path(model_path), Path(manifest)],
                           {**gen_cfg, "pretrained": params["pretrained"]})
    started, n_done, chosen = time.perf_counter(), 0, {}
    for seed in gen_cfg["seeds"]:
        for index, row in tqdm(list(dev.iterrows()), desc=f"generate seed {seed}", unit="prompt", mininterval=2.0):
            path = out_dir / f"seed{seed}" / f"{row['key']}.wav"
            if path.is_file():
                continue
            clip, choice = synth.render(row["caption"], seed, stream=index)
            with atomic_path(path) as tmp:
                sf.write(tmp, clip, gen_cfg["sample_rate"], subtype="PCM_16")
            chosen[f"seed{seed}/{row['key']}"] = choice
            n_done += 1
    elapsed = time.perf_counter() - started
    record = {
        "n_prompts": len(dev), "seeds": gen_cfg["seeds"], "n_candidates": gen_cfg["n_candidates"],
        "vocoder": gen_cfg["vocoder"], "rerank": gen_cfg["rerank"],
        "crop": (f"best of {gen_cfg['n_crops']} random {gen_cfg['crop_seconds']} s crops by CLAP" if synth.reranker else
                 f"one random {gen_cfg['crop_seconds']} s crop (the discriminator cannot score audio crops)"),
        "sample_rate": gen_cfg["sample_rate"], "text_encoder": synth.model_info["text"]["encoder"],
        "model_step": synth.model_info["step"], "stand_ins": synth.model_info["stand_ins"],
        "pretrained": {name: checkpoint_record(Path(pretrained) / name) for name in needed_models(params)["generate"]},
        "choices": chosen,
    }
    timing = {"generated_this_run": n_done, "seconds_per_prompt": elapsed / n_done if n_done else None}
    write_json(out_dir / paths.TIMING_FILE, timing)
    write_json(out_dir / "generation.json", record)
    log.info("generated %d clips in %.1f s into %s", n_done, elapsed, out_dir)
    return {**record, **timing}
