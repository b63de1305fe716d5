"""The evaluate stage (`scenesynth evaluate`): score a folder of clips against the dev set as the
organisers of DCASE 2024 Task 7 scored it, plus a CLAP score and per-prompt scores.

Any folder works, not only this pipeline's: ``<prompt id>.wav`` files (another system's outputs),
or ``seed<N>/`` folders of them (the generate stage's layout, one FAD per generation seed; mean and
std over seeds are reported). Each clip goes through the organisers' preparation (clip_prep.py:
mono, 32 kHz, 16-bit round trip, exactly 4 s), is embedded once (embedding_cache.py: float16, per
clip, a rerun embeds nothing new) and the FAD is the fork's (frechet.py: statistics merged per
file, eigenvalue square root, sqrtm cross-check, 1e-6 fallback) against the dev set's reference
(reference.py: the published PANNs embeddings, or reference audio). The output says whether the
number is comparable with the paper's 42.075 and the baseline's 61.276, written beside it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from scenesynth import paths
from scenesynth.data.manifest import read_dev_prompts
from scenesynth.evaluation.clap_score import clap_score, not_computed
from scenesynth.evaluation.bootstrap import fad_bootstrap
from scenesynth.evaluation.clip_prep import ClipRecipe, prepare_clip
from scenesynth.evaluation.conditioning import conditioning_line, per_kind_line
from scenesynth.evaluation.conditioning_score import (
    NOISE_STREAM,
    conditioning_metrics,
    labelled_clips,
    mlflow_metrics,
)
from scenesynth.evaluation.embedding_cache import EmbeddingCache
from scenesynth.evaluation.embeddings import get_embedding
from scenesynth.evaluation.fd_floor import floor_line, real_floor
from scenesynth.evaluation.headline import HEADLINE_FILE, write_headline
from scenesynth.evaluation.generated import generated_sets, left_out_lines
from scenesynth.evaluation.frechet import frechet_distance, merged_statistics, organisers_frechet
from scenesynth.evaluation.per_prompt import per_prompt_table
from scenesynth.evaluation.reference import Reference, load_reference
from scenesynth.evaluation.resynth_reference import read_reference
from scenesynth.tracking import log_to_run, stand_ins
from scenesynth.utils.atomic import atomic_path, write_json
from scenesynth.utils.device import inference_device

log = logging.getLogger(__name__)
PAPER_EMBEDDING = "panns_wavegram_logmel"
PAPER_CLIP_SECONDS = 4.0
SCORER_VERSION = 1  # bump when the clip preparation changes: cached embeddings are then recomputed


def fad_metrics(params: dict, dev: pd.DataFrame, reference: Reference, generated: dict[str, dict[str, np.ndarray]]
                ) -> dict:
    """FAD per seed (the organisers' computation), mean and std over seeds, and per background category
    (when the reference files pair with the prompts)."""
    ref_mean, ref_cov, _ = merged_statistics(reference.vectors)
    per_seed, checks, per_category = {}, {}, {}
    own = reference.by_key() if reference.paired else {}
    for seed, by_key in generated.items():
        mean, cov, _ = merged_statistics(list(by_key.values()))
        per_seed[seed], checks[seed] = organisers_frechet(mean, cov, ref_mean, ref_cov,
                                                          sqrtm_check=params["evaluate"]["sqrtm_check"])
        for category in sorted(set(dev["background"])) if own and "background" in dev else []:
            keys = [k for k, c in zip(dev["key"], dev["background"]) if c == category and k in own]
            if len(keys) >= 2:
                value = frechet_distance(*merged_statistics([by_key[k] for k in keys])[:2],
                                         *merged_statistics([own[k] for k in keys])[:2])
                per_category.setdefault(category, []).append(value)
    values = np.array(list(per_seed.values()))
    return {
        "fad_mean": float(values.mean()), "fad_std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "fad_per_seed": per_seed, "fd_checks": checks,
        "fad_per_category": {c: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0}
                             for c, v in per_category.items()},
        "fad_per_category_note": (None if own and "background" in dev else
                                  "the reference files do not pair with the prompt ids" if not own else
                                  "the dev prompts have no background category (not the demo)"),
    }


def _comparable(params: dict, embedding, reference: Reference) -> bool:
    """The paper's number needs the paper's embedding at full width, the published reference, 4 s clips."""
    return (embedding.name == PAPER_EMBEDDING and getattr(embedding, "width_divisor", 1) == 1
            and reference.kind == "published_embeddings" and params["data"]["source"] == "audiocaps_wavcaps"
            and params["evaluate"]["clip_seconds"] == PAPER_CLIP_SECONDS)


def metric_lines(fad: dict, clap: dict, conditioning: dict, per_prompt: Path, table: pd.DataFrame) -> list[str]:
    """What `scenesynth evaluate` prints: one line per metric."""
    note = "comparable with the paper" if fad["comparable_to_paper"] else "NOT comparable with the paper"
    lines = [f"FAD ({fad['embedding']}, {note}): {fad['fad_mean']:.3f} +- {fad['fad_std']:.3f} over "
             f"{fad['n_seeds']} seed(s) x {fad['n_prompts']} prompts, against {fad['reference']['description']} "
             f"[paper {fad['paper_fad']}, baseline {fad['baseline_fad']}]"]
    if fad.get("real_floor"):
        lines.append(floor_line(fad))
    lines.append(f"CLAP score ({clap['model']}): {clap['clap_score_mean']:.4f} +- {clap['clap_score_std']:.4f}"
                 if clap["computed"] else f"CLAP score: not computed ({clap['reason']})")
    if "generated" in conditioning:
        lines += [conditioning_line(conditioning), per_kind_line(conditioning)]
    worst = table.iloc[0]
    lines.append(f"per-prompt scores: {per_prompt} (worst first; worst: {worst['prompt_id']} {worst['caption']!r})")
    return lines


class Scorer:
    """What scoring needs, loaded once: the dev prompts, the FAD embedding and its caches, the dev
    set's reference and, where the data has labels, the real clips the conditioning readers are fitted
    on. `scenesynth evaluate` scores one folder with it; training's periodic evaluation
    (training/periodic_eval.py) scores a folder every `train.eval_every` steps with the same object,
    so the two cannot drift apart. ``audio_reading`` False leaves out the conditioning's Griffin-Lim
    audio reading (its readers are refitted on resynthesised clips at every call); ``noise_stream`` picks
    the mel reading's noise vectors (training's evaluation reads its own: a step it keeps as the best is
    then scored on vectors it was not chosen on)."""

    def __init__(self, params: dict, manifest: str | Path, pretrained: str | Path = paths.PRETRAINED,
                 train_manifest: str | Path | None = None, cache: str | Path = paths.EMBEDDING_CACHE,
                 generated_cache: str | Path | None = None, audio_reading: bool = True,
                 noise_stream: int = NOISE_STREAM, resynth_reference: str | Path | None = None):
        cfg = params["evaluate"]
        self.params, self.pretrained, self.audio_reading = params, Path(pretrained), audio_reading
        self.noise_stream = noise_stream
        self.resynth = read_reference(resynth_reference) if resynth_reference is not None and audio_reading else None
        dev = read_dev_prompts(manifest)
        self.embedding = get_embedding(cfg["fad_embedding"], device=inference_device(params),
                                       checkpoint=(self.pretrained / "panns" / params["pretrained"]["panns"]["file"]
                                                   if cfg["fad_embedding"] == PAPER_EMBEDDING else None))
        self.recipe = ClipRecipe(seconds=cfg["clip_seconds"])
        identity = {**self.embedding.identity(), "clip": self.recipe.identity(), "scorer_version": SCORER_VERSION}
        self.ref_cache = EmbeddingCache(cache, self.embedding, identity, lambda p: prepare_clip(p, ClipRecipe()))
        self.reference = load_reference(manifest, dev, self.embedding, self.ref_cache)
        self.dev = dev if self.reference.kind != "audio" else dev[dev["key"].isin(self.reference.keys)].reset_index(drop=True)
        self.gen_cache = EmbeddingCache(generated_cache or cache, self.embedding, identity,
                                        lambda p: prepare_clip(p, self.recipe))
        self.real = labelled_clips(params, train_manifest, self.dev) if cfg["conditioning"] else None
        self.ref_mean, self.ref_cov, _ = merged_statistics(self.reference.vectors)
        self._floor_inputs = (train_manifest, identity, cache)
        self._floor: dict | None = None

    @property
    def floor(self) -> dict | None:
        """The FAD's floor: real training clips scored like a generated set (fd_floor.py); computed at the
        first FAD only (it does not depend on the generator), None without a training manifest."""
        train_manifest, identity, cache = self._floor_inputs
        if self._floor is None and train_manifest is not None:
            self._floor = real_floor(self.params, train_manifest, len(self.dev), self.reference, self.embedding,
                                     identity, cache, self.recipe)
        return self._floor

    @property
    def keys(self) -> list[str]:
        return list(self.dev["key"])

    def score(self, sets: dict[str, dict[str, Path]], model: str | Path | None = None) -> dict:
        """FAD (with its bootstrap), CLAP score, conditioning and per-prompt table of ``sets``
        ({seed: {prompt id: clip}}); ``flat`` holds the numbers under their MLflow names."""
        params, cfg = self.params, self.params["evaluate"]
        vectors = {seed: dict(zip(clips, self.gen_cache.embeddings(list(clips.values())))) for seed, clips in sets.items()}
        fad = fad_metrics(params, self.dev, self.reference, vectors)
        fad["fad_bootstrap"] = fad_bootstrap({seed: np.concatenate([by_key[k] for k in self.keys])
                                              for seed, by_key in vectors.items()},
                                             self.ref_mean, self.ref_cov, cfg["fad_bootstrap"], params["seed"])
        fad.update({
            "embedding": self.embedding.name, "width_divisor": getattr(self.embedding, "width_divisor", None),
            "stand_in": self.embedding.name != PAPER_EMBEDDING,
            "comparable_to_paper": _comparable(params, self.embedding, self.reference),
            "n_prompts": len(self.dev), "n_seeds": len(sets), "baseline_fad": cfg["baseline_fad"],
            "paper_fad": cfg["paper_fad"],
            "reference": {**self.reference.record, "description": self.reference.description},
            "scorer": {**self.recipe.identity(), "clip_seconds": cfg["clip_seconds"], "embedding_dtype": "float16",
                       "statistics": "mean and covariance (n - 1), merged file by file",
                       "fd": "trace sqrt from eigenvalues; sqrtm cross-check; 1e-6 on the diagonals if not finite",
                       "organisers_resampler": "torchaudio Kaiser sinc (docs/paper.md section 6)"},
            "skipped_references": self.reference.skipped,
            "stand_ins": stand_ins(params)})
        floor = self.floor
        if floor is not None:
            fad.update(real_floor=floor, fad_over_floor=fad["fad_mean"] / floor["fd_mean"]
                       if floor["fd_mean"] > 0 else float("nan"))
        captions = dict(zip(self.dev["key"], self.dev["caption"]))
        clap, clap_per_seed = (clap_score(self.pretrained, inference_device(params), sets, captions)
                               if cfg["clap_score"] else
                               (not_computed("evaluate.clap_score is false: no CLAP checkpoint is used (the demo "
                                             "fetches none)"), None))
        cond, predicted = (conditioning_metrics(params, self.real, self.dev, next(iter(sets.values())), model,
                                                self.pretrained, audio=self.audio_reading, stream=self.noise_stream,
                                                reference=self.resynth)
                           if self.real is not None and model is not None else (None, None))
        if cond is not None:
            cond["generation_seed"] = next(iter(sets))
        table = per_prompt_table(self.dev, vectors, self.reference, clap_per_seed, predicted)
        conditioning = cond if cond is not None else {"skipped": "no labels or evaluate.conditioning is false"}
        flat = {"fad_mean": fad["fad_mean"], "fad_std": fad["fad_std"]}
        if floor is not None:
            flat.update(fad_floor=floor["fd_mean"], fad_over_floor=fad["fad_over_floor"])
        if "std" in fad["fad_bootstrap"]:
            boot = fad["fad_bootstrap"]
            flat.update(fad_boot_std=boot["std"], fad_ci_low=boot["interval"][0], fad_ci_high=boot["interval"][1])
        if clap["computed"]:
            flat.update(clap_score_mean=clap["clap_score_mean"], clap_score_std=clap["clap_score_std"])
        if cond is not None:
            flat.update(mlflow_metrics(cond))
        return {"fad": fad, "clap": clap, "conditioning": conditioning, "per_prompt": table, "flat": flat}

    def mel_reading(self, model: str | Path, prompts: pd.DataFrame | None = None) -> dict[str, float]:
        """The conditioning score's mel reading and diversity alone (no clips, no vocoder), under its
        MLflow names, of the dev prompts or of ``prompts`` (captions with labels); {} without labels
        (training's periodic evaluation with `train.eval_fad` false)."""
        if self.real is None:
            return {}
        cond, _ = conditioning_metrics(self.params, self.real, self.dev if prompts is None else prompts, {}, model,
                                       self.pretrained, audio=False, stream=self.noise_stream)
        return mlflow_metrics(cond)


def evaluate(params: dict, generated: str | Path, manifest: str | Path, metrics_dir: str | Path,
             run_dir: str | Path | None = None, pretrained: str | Path = paths.PRETRAINED,
             train_manifest: str | Path | None = None, cache: str | Path = paths.EMBEDDING_CACHE,
             model: str | Path | None = None, resynth_reference: str | Path | None = None) -> dict:
    """Write metrics/fad.json, clap_score.json, per_prompt.csv and conditioning.json; print one line per
    metric; log them to the training's MLflow run when ``run_dir`` is given. ``resynth_reference``: the
    resynth-reference stage's file (the audio reading's real clips, already resynthesised)."""
    generated, metrics_dir = Path(generated), Path(metrics_dir)
    scorer = Scorer(params, manifest, pretrained, train_manifest, cache, resynth_reference=resynth_reference)
    sets, left_out = generated_sets(generated, scorer.keys)
    scores = scorer.score(sets, model)
    fad, clap, conditioning, table = scores["fad"], scores["clap"], scores["conditioning"], scores["per_prompt"]
    fad["generated"] = {"folder": str(generated), "seeds": list(sets), "left_out": left_out}

    write_json(metrics_dir / "fad.json", fad)
    write_json(metrics_dir / "clap_score.json", clap)
    with atomic_path(metrics_dir / "per_prompt.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    write_json(metrics_dir / "conditioning.json", conditioning)
    write_headline(params, metrics_dir)
    if run_dir is not None:
        log_to_run(params, run_dir, scores["flat"], [metrics_dir / name for name in
                                                     ("fad.json", "clap_score.json", "per_prompt.csv",
                                                      "conditioning.json", HEADLINE_FILE)])
    embedded = scorer.ref_cache.embedded + scorer.gen_cache.embedded  # not in fad.json: a rerun must write the same bytes
    log.info("embeddings: %d computed, the rest from the cache %s", embedded, scorer.gen_cache.folder)
    for line in [*metric_lines(fad, clap, conditioning, metrics_dir / "per_prompt.csv", table),
                 *left_out_lines(left_out)]:
        print(line, flush=True)
    return {"fad": fad, "clap": clap, "per_prompt": table, "conditioning": conditioning, "embedded": embedded}
