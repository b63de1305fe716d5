"""The experiment's headline: the few numbers `dvc exp show` compares, in one small metrics file.

The stage files (metrics/train.json, fad.json, conditioning.json) hold everything, per seed and
per category; shown as DVC metrics they made `dvc exp show` a hundred columns wide, with FAD
somewhere past the edge of the terminal. This file holds what a reader compares first: FAD (mean
and std over seeds, and its real-vs-real floor), the conditioning score beside its chance level and the real clips' ceiling,
the per-kind accuracy of both readings with the worst kind named, the diversity and peak excess, the
CLAP score where there is one, the training length, and what the run used (overlay, data
source, stand-ins), so that a row of the table says which settings produced it even for a run
that Snakemake made outside DVC.
"""

from __future__ import annotations

import json
from pathlib import Path

from scenesynth.utils.atomic import write_json

HEADLINE_FILE = "headline.json"


def _read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def pick(source: dict, dotted: str):
    """``source["a"]["b"]`` for ``"a.b"`` (``"a.0"``: a list's first item), or None where the path is not there."""
    value = source
    for part in dotted.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif not isinstance(value, dict) or part not in value:
            return None
        else:
            value = value[part]
    return value


# headline key -> (stage file, dotted path inside it)
HEADLINE = {
    "fad_mean": ("fad.json", "fad_mean"),
    "fad_std": ("fad.json", "fad_std"),
    "fad_boot_std": ("fad.json", "fad_bootstrap.std"),  # how much FAD moves with the prompts (bootstrap.py)
    "fad_ci_low": ("fad.json", "fad_bootstrap.interval.0"),
    "fad_ci_high": ("fad.json", "fad_bootstrap.interval.1"),
    "fad_embedding": ("fad.json", "embedding"),
    "fad_floor": ("fad.json", "real_floor.fd_mean"),
    "fad_over_floor": ("fad.json", "fad_over_floor"),
    "clap_score": ("clap_score.json", "clap_score_mean"),
    "clap_score_std": ("clap_score.json", "clap_score_std"),
    "cond_fg_accuracy": ("conditioning.json", "generated.fg_accuracy"),
    "cond_fg_chance": ("conditioning.json", "generated.fg_chance"),
    "cond_bg_accuracy": ("conditioning.json", "generated.bg_accuracy"),
    "cond_bg_chance": ("conditioning.json", "generated.bg_chance"),
    "cond_fg_ceiling": ("conditioning.json", "ceiling.fg_accuracy"),
    "cond_bg_ceiling": ("conditioning.json", "ceiling.bg_accuracy"),
    "cond_fg_worst_kind": ("conditioning.json", "generated.fg_worst_kind"),
    "cond_bg_worst_kind": ("conditioning.json", "generated.bg_worst_kind"),
    "cond_fg_per_kind": ("conditioning.json", "generated.fg_per_kind"),
    "cond_bg_per_kind": ("conditioning.json", "generated.bg_per_kind"),
    "cond_audio_fg_per_kind": ("conditioning.json", "audio.generated.fg_per_kind"),
    "cond_audio_bg_per_kind": ("conditioning.json", "audio.generated.bg_per_kind"),
    "cond_audio_fg_worst_kind": ("conditioning.json", "audio.generated.fg_worst_kind"),
    "cond_diversity": ("conditioning.json", "diversity.ratio"),
    "cond_peak_excess": ("conditioning.json", "peaks.excess"),
    "train_steps": ("train.json", "steps"),
    "train_best_step": ("train.json", "best_step"),  # the periodic evaluation's best (train.select_by)
}


def write_headline(params: dict, metrics_dir: str | Path) -> dict:
    """Collect the headline from the stage files in ``metrics_dir`` into ``headline.json``; a number
    a run does not have (no CLAP, no labels) is left out rather than shown as a made-up value."""
    metrics_dir = Path(metrics_dir)
    files = {name: _read(metrics_dir / name) for name in {source for source, _ in HEADLINE.values()}}
    headline = {key: value for key, (source, dotted) in HEADLINE.items()
                if (value := pick(files[source], dotted)) is not None}
    headline["ran_with"] = {"overlay": str(params["overlay"]), "data_source": params["data"]["source"],
                            "text_encoder": params["text"]["encoder"], "vocoder": params["generate"]["vocoder"]}
    write_json(metrics_dir / HEADLINE_FILE, headline)
    return headline
