"""The evaluate stage: FAD over generation seeds, per category, and the conditioning score.

FAD compares the generated dev clips with the dev reference clips through the
embedding named in params; the output says whether that embedding is the
paper's (PANNs Wavegram-Logmel) or the offline stand-in, whose numbers are not
comparable with the paper's 42.075 and the baseline's 61.276, which are written
beside it for reference.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import soxr

from scenesynth import paths
from scenesynth.data.manifest import LABEL_COLUMNS, read_manifest
from scenesynth.audio_io import AudioReadError, load_mono
from scenesynth.evaluation.conditioning import conditioning_features, score_features
from scenesynth.evaluation.embeddings import embed_clips, get_embedding
from scenesynth.evaluation.headline import HEADLINE_FILE, write_headline
from scenesynth.evaluation.frechet import frechet_distance, gaussian_stats
from scenesynth.tracking import log_to_run, stand_ins
from scenesynth.utils.atomic import write_json
from scenesynth.utils.device import inference_device

log = logging.getLogger(__name__)
PAPER_EMBEDDING = "panns_wavegram_logmel"
MAX_CLASSIFIER_CLIPS = 600


def _load_at(paths: list[str], rate: int) -> list[np.ndarray]:
    waves = []
    for path in paths:
        wave, source_rate = load_mono(path)
        waves.append(wave if source_rate == rate else soxr.resample(wave, source_rate, rate, quality="HQ"))
    return waves


def load_readable(table: pd.DataFrame, rate: int) -> tuple[pd.DataFrame, list[np.ndarray], list[dict]]:
    """Load each row's audio at ``rate``, once; unreadable rows are left out and reported (as the
    resample stage does). Returns (kept rows, their waves, skipped rows with reasons)."""
    keep, waves, skipped = [], [], []
    for i, path in enumerate(table["path"]):
        try:
            waves.append(_load_at([path], rate)[0])
            keep.append(i)
        except AudioReadError as err:
            skipped.append({"key": table["key"].iloc[i], "path": path, "reason": str(err)})
            log.warning("%s: skipped (%s)", path, err)
    return table.iloc[keep].reset_index(drop=True), waves, skipped


def generated_paths(folder: Path, keys: list[str]) -> list[str]:
    missing = [k for k in keys if not (folder / f"{k}.wav").is_file()]
    if missing:
        raise FileNotFoundError(f"{folder / (missing[0] + '.wav')}: generated clip missing "
                                f"({len(missing)} of {len(keys)}); run the generate stage")
    return [str(folder / f"{k}.wav") for k in keys]


def fad_metrics(params: dict, dev: pd.DataFrame, references: list[np.ndarray], generated_dir: Path,
                rate: int, pretrained: str | Path = paths.PRETRAINED) -> tuple[dict, dict]:
    """FAD for every seed (mean, std) and per background category; returns (metrics, generated waves)."""
    name = params["evaluate"]["fad_embedding"]
    checkpoint = Path(pretrained) / "panns" / params["pretrained"]["panns"]["file"] if name == PAPER_EMBEDDING else None
    embedding = get_embedding(name, checkpoint=checkpoint, device=inference_device(params))
    keys = list(dev["key"])
    ref_emb = embed_clips(embedding, references, rate)
    ref_stats = gaussian_stats(ref_emb)
    per_seed, waves_by_seed, per_category = {}, {}, {}
    categories = dev["background"] if "background" in dev else None
    for seed in params["generate"]["seeds"]:
        waves = _load_at(generated_paths(generated_dir / f"seed{seed}", keys), rate)
        waves_by_seed[seed] = waves
        gen_emb = embed_clips(embedding, waves, rate)
        per_seed[str(seed)] = frechet_distance(*gaussian_stats(gen_emb), *ref_stats)
        if categories is not None:
            for category in sorted(set(categories)):
                rows = np.flatnonzero(np.asarray(categories) == category)
                if len(rows) >= 2:
                    value = frechet_distance(*gaussian_stats(gen_emb[rows]), *gaussian_stats(ref_emb[rows]))
                    per_category.setdefault(category, []).append(value)
    values = np.array(list(per_seed.values()))
    metrics = {
        "fad_mean": float(values.mean()),
        "fad_std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "fad_per_seed": per_seed,
        "fad_per_category": {c: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0}
                             for c, v in per_category.items()},
        "embedding": embedding.name,
        "stand_in": embedding.name != PAPER_EMBEDDING,
        # only the paper's training data (its dev prompts come with it): not the demo, not a custom folder
        "comparable_to_paper": embedding.name == PAPER_EMBEDDING and params["data"]["source"] == "audiocaps_wavcaps",
        "n_prompts": len(keys),
        "n_seeds": len(per_seed),
        "baseline_fad": params["evaluate"]["baseline_fad"],
        "paper_fad": params["evaluate"]["paper_fad"],
    }
    return metrics, waves_by_seed


def conditioning_metrics(params: dict, manifest: pd.DataFrame, dev: pd.DataFrame, references: list[np.ndarray],
                         waves_by_seed: dict, rate: int) -> dict | None:
    """Foreground/background accuracy of a classifier trained on real clips, on the generated clips."""
    if not all(c in manifest for c in LABEL_COLUMNS) or manifest["foreground"].isna().any():
        log.info("no foreground/background labels in the manifest: conditioning score skipped")
        return None
    train, train_waves, skipped = load_readable(manifest[manifest["split"] == "train"].sort_values("key"), rate)
    if len(train) > MAX_CLASSIFIER_CLIPS:
        train = train.sample(MAX_CLASSIFIER_CLIPS, random_state=params["seed"]).sort_values("key")
        train_waves = [train_waves[i] for i in train.index]
    train_features = conditioning_features(train_waves, rate)
    seed = params["generate"]["seeds"][0]
    labels = (list(train["foreground"]), list(train["background"]))
    dev_labels = (list(dev["foreground"]), list(dev["background"]))
    generated = score_features(train_features, *labels, conditioning_features(waves_by_seed[seed], rate),
                               *dev_labels, seed=params["seed"])
    real = score_features(train_features, *labels,
                          conditioning_features(references, rate), *dev_labels,
                          seed=params["seed"])
    return {"generated": generated, "real_dev": {k: real[k] for k in ("fg_accuracy", "bg_accuracy")},
            "generation_seed": seed, "skipped_training_clips": skipped}


def evaluate(params: dict, generated: str | Path, manifest: str | Path, metrics_dir: str | Path,
             run_dir: str | Path, pretrained: str | Path = paths.PRETRAINED) -> dict:
    generated, metrics_dir = Path(generated), Path(metrics_dir)
    table = read_manifest(manifest)
    rate = params["generate"]["sample_rate"]
    dev, references, skipped_refs = load_readable(table[table["split"] == "dev"].sort_values("key"), rate)
    if len(dev) < 2:
        raise ValueError(f"{manifest}: FAD needs at least 2 dev prompts, found {len(dev)}")
    fad_result, waves_by_seed = fad_metrics(params, dev, references, generated, rate, pretrained)
    fad_result["stand_ins"] = stand_ins(params)
    fad_result["skipped_references"] = skipped_refs
    write_json(metrics_dir / "fad.json", fad_result)
    flat = {"fad_mean": fad_result["fad_mean"], "fad_std": fad_result["fad_std"]}
    cond = (conditioning_metrics(params, table, dev, references, waves_by_seed, rate)
            if params["evaluate"]["conditioning"] else None)
    cond_result = cond if cond is not None else {"skipped": "no labels or evaluate.conditioning is false"}
    write_json(metrics_dir / "conditioning.json", cond_result)
    write_headline(params, metrics_dir)
    if cond is not None:
        g = cond["generated"]
        flat.update({"cond_fg_accuracy": g["fg_accuracy"], "cond_fg_chance": g["fg_chance"],
                     "cond_bg_accuracy": g["bg_accuracy"], "cond_bg_chance": g["bg_chance"],
                     "cond_real_fg_accuracy": cond["real_dev"]["fg_accuracy"]})
    log_to_run(params, run_dir, flat, [metrics_dir / name for name in ("fad.json", "conditioning.json", HEADLINE_FILE)])
    log.info("FAD (%s) %.3f +- %.3f; %s", fad_result["embedding"], flat["fad_mean"], flat["fad_std"],
             {k: round(v, 3) for k, v in flat.items() if k.startswith("cond")})
    return {"fad": fad_result, "conditioning": cond_result}
