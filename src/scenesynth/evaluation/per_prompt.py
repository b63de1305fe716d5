"""Per-prompt scores: which prompts does the system get worst? (metrics/per_prompt.csv)

fadtk's ``--indiv`` gives each file a "FAD" from that file's own statistics; with one embedding
per clip (PANNs) a file has no covariance, so that number is degenerate (NaN under numpy 2; under
numpy 1 the fork's ``np.cov`` returned the variance of the 2048 numbers of the one vector, a
quantity with no meaning here). A Frechet distance needs a set. Per prompt, this module reports
instead plain distances in the FAD's own embedding space (the float16 vectors FAD uses; a clip's
vector is the mean of its rows), each averaged over the generation seeds (std beside it):

* ``own_reference_distance``: Euclidean distance to that prompt's own reference embedding, when the
  reference files pair with the prompt ids (the published file names are the prompt ids, or the
  reference is audio named after them); empty otherwise;
* ``reference_mean_distance``: Euclidean distance to the mean of the whole reference set, the clip's
  share of FAD's |mu1 - mu2|^2 term;
* ``nearest_reference``: the reference clip closest to it (its own prompt's, ideally);
* ``clap_score``: the clip's CLAP audio-text cosine (empty where no CLAP is fetched);
* ``predicted_foreground`` / ``predicted_background``: the demo's conditioning classifier's labels;
* ``z_spread``: the demo's spread of the generator's log-mels over the mel reading's noise vectors
  for this prompt, as a multiple of the spread of real clips of one kind (near 0: this prompt gets
  the same sound whatever the noise; conditioning.py's diversity is its mean over prompts).

``rank`` orders the prompts worst first: by own_reference_distance where it exists, otherwise by
reference_mean_distance (1 = worst).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scenesynth.evaluation.reference import Reference

COLUMNS = ("rank", "prompt_id", "caption", "background", "own_reference_distance", "own_reference_distance_std",
           "reference_mean_distance", "reference_mean_distance_std", "nearest_reference", "clap_score",
           "clap_score_std", "predicted_foreground", "predicted_background", "z_spread")


def _clip_vector(rows: np.ndarray) -> np.ndarray:
    return np.asarray(rows, dtype=np.float64).reshape(-1, np.asarray(rows).shape[-1]).mean(axis=0)


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return np.nan, np.nan
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def per_prompt_table(dev: pd.DataFrame, generated: dict[str, dict[str, np.ndarray]], reference: Reference,
                     clap: dict[str, dict[str, float]] | None = None,
                     predicted: dict[str, dict[str, str]] | None = None) -> pd.DataFrame:
    """One row per dev prompt. ``generated``: {seed: {prompt id: embedding rows}}; ``clap``: {seed: {prompt id:
    cosine}}; ``predicted``: {prompt id: {"foreground": ..., "background": ..., "z_spread": ...}} (the first seed's clips;
    the spread over the conditioning score's noise vectors)."""
    ref_keys = list(reference.keys)
    ref_matrix = np.stack([_clip_vector(v) for v in reference.vectors])
    ref_mean = ref_matrix.mean(axis=0)
    own = reference.by_key() if reference.paired else {}
    rows = []
    for key, caption, background in zip(dev["key"], dev["caption"], dev.get("background", ["none"] * len(dev))):
        clips = [_clip_vector(by_key[key]) for by_key in generated.values() if key in by_key]
        own_d = [float(np.linalg.norm(c - _clip_vector(own[key]))) for c in clips] if key in own else []
        mean_d = [float(np.linalg.norm(c - ref_mean)) for c in clips]
        nearest = ref_keys[int(np.argmin(np.linalg.norm(ref_matrix - clips[0], axis=1)))] if clips else ""
        scores = [s[key] for s in (clap or {}).values() if key in s]
        labels = (predicted or {}).get(key, {})
        row = {"prompt_id": key, "caption": caption, "background": background, "nearest_reference": nearest,
               "predicted_foreground": labels.get("foreground", ""), "predicted_background": labels.get("background", ""),
               "z_spread": labels.get("z_spread", np.nan)}
        for name, values in (("own_reference_distance", own_d), ("reference_mean_distance", mean_d),
                             ("clap_score", scores)):
            row[name], row[f"{name}_std"] = _mean_std(values)
        rows.append(row)
    table = pd.DataFrame(rows)
    badness = table["own_reference_distance"] if own else table["reference_mean_distance"]
    order = badness.fillna(-np.inf).rank(method="first", ascending=False).astype(int)
    table.insert(0, "rank", order)
    return table.sort_values(["rank"]).reset_index(drop=True)[list(COLUMNS)]
