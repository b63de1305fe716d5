"""Conditioning score: does a generated clip sound like the foreground and background it was asked for?

FAD says whether generated audio is close to real audio as a set; it does not say whether the clip
for "a siren wailing with traffic in the background" has a siren and traffic in it. Here one
classifier learns the foreground kind and another the background kind from REAL training clips,
and is then asked to label the generated ones; its accuracy against the prompts' labels is the
score, reported beside chance (the majority rate of the dev labels) and beside its ceiling (the
same classifier on the real dev clips).

The score must measure the generator, not the vocoder. A classifier trained on clean audio and
applied to Griffin-Lim audio reads the vocoder's artifacts as classes (real dev clips sent through
the demo's front end and Griffin-Lim scored 0.43 / 0.67 there, which made that "ceiling" useless).
So there are two readings, each with its own ceiling:

- ``mel`` (the headline): the classifier reads log-mels, trained on the training shards' log-mels
  and applied to the generator's log-mels, before any vocoder. Ceiling: the real dev clips'
  log-mels through the same front end.
- ``audio``: the classifier reads the ``logmel_stats`` embedding of audio, trained on real training
  clips resynthesised through the same vocoder stand-in (front end -> Griffin-Lim) and written as
  the generate stage writes its clips (its output rate, 16-bit), and applied to the generate
  stage's clips. Ceiling: the real dev clips resynthesised alike.

Features of a log-mel [F, T] (``mel_features``): the per-bin mean, the per-bin standard deviation
and the per-bin mean absolute frame-to-frame change over time (3F values): level, spectral shape,
how steady or transient each band is; the clip length does not matter. The classifier is
scikit-learn's standardised multinomial logistic regression with L2 regularisation (C = 0.1):
convex, deterministic, no random seed.

Diversity (``diversity``): several noise vectors for one prompt should give several sounds, as
several real clips of one kind differ. In the standardised feature space of the mel reading, the
mean pairwise distance between the generated clips of one prompt, averaged over prompts, divided
by the same figure for real training clips of one (foreground, background) kind: about 1 is a
real-like spread, near 0 is mode collapse (every z gives the same sound). ``per_group_ratio`` gives
each prompt's own spread on the same scale (metrics/per_prompt.csv's ``z_spread``).

Peaks (``peaks``): every clip is peak-normalised (its loudest sample at 0.5), which pins a real clip's loudest
log-mel value within a few tenths of a nat for each kind; a generator that makes its loudest moment louder than
real clips of its kind does not show in per-bin means, but after a vocoder and the same normalisation that
moment sets the level and the rest of the clip drops (issue 19: chirps then read as ticks). ``excess`` is the
generated clips' loudest value minus the real training clips' mean loudest value of the same foreground kind,
averaged over clips (0 for a real-like peak), with both means per kind.

Per kind (``fg_per_kind``, ``fg_worst_kind``, ``fg_confusion``): the mean accuracy hides a kind the
generator never makes (sustained sounds learnt, impulsive ones not), so each reading also gives the
accuracy per asked-for kind, the worst kind, and what each kind was heard as.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

REGULARISATION_C = 0.1


def mel_features(mels) -> np.ndarray:
    """[N, F, T] log-mels (or a list of [F, T_i]) -> [N, 3F]: per-bin mean, std, mean |delta| over time."""
    rows = []
    for mel in mels:
        mel = np.asarray(mel, dtype=np.float64)
        if mel.ndim != 2 or mel.shape[1] < 2:
            raise ValueError(f"a log-mel must be [bins, frames >= 2], got shape {mel.shape}")
        rows.append(np.concatenate([mel.mean(axis=1), mel.std(axis=1), np.abs(np.diff(mel, axis=1)).mean(axis=1)]))
    if not rows:
        raise ValueError("no log-mels")
    return np.stack(rows)


def majority_rate(labels) -> float:
    """Share of the most common label: the accuracy of the best audio-blind constant answer.

    Chosen as "chance" over 1/K because it is the stronger and therefore honest floor: on a
    balanced set the two are equal, on an unbalanced one 1/K flatters any classifier that has
    merely learnt the label frequencies.
    """
    labels = list(labels)
    if not labels:
        raise ValueError("no labels")
    return Counter(labels).most_common(1)[0][1] / len(labels)


_FITTED: dict[tuple, Pipeline] = {}  # the same real clips are read at every evaluation of a training run
FITTED_KEPT = 4


def fit_reader(features: np.ndarray, labels) -> Pipeline:
    """The classifier of one task (foreground or background kind), fitted on real clips; a fit of the same
    clips and labels is reused (the fit is deterministic, and training's evaluation reads the same real
    clips every time: it was a third of an evaluation's time)."""
    labels = [str(label) for label in labels]
    key = (hashlib.sha256(np.ascontiguousarray(features).tobytes()).hexdigest(), features.shape, tuple(labels))
    if key not in _FITTED:
        while len(_FITTED) >= FITTED_KEPT:
            _FITTED.pop(next(iter(_FITTED)))
        _FITTED[key] = _fit(features, labels)
    return _FITTED[key]


def _fit(features: np.ndarray, labels: list[str]) -> Pipeline:
    if len(features) != len(labels) or not labels:
        raise ValueError(f"{len(features)} feature rows but {len(labels)} labels")
    if len(set(labels)) < 2:
        raise ValueError(f"the real clips have one label only ({labels[0]!r}): nothing to tell apart")
    if not np.all(np.isfinite(features)):
        raise ValueError("features contain NaN or inf")
    return make_pipeline(StandardScaler(), LogisticRegression(C=REGULARISATION_C, max_iter=5000)).fit(features, labels)


def per_kind(expected, predicted) -> tuple[dict[str, float], dict[str, dict[str, int]]]:
    """Accuracy per asked-for kind, and what each kind was heard as (counts of the predicted labels).

    A mean accuracy hides a kind the generator never makes: six kinds at 1.0, 1.0, 0.9, 0.7, 0.1
    and 0.0 average 0.62. The confusion says what it makes instead (knocking heard as engine)."""
    accuracy: dict[str, float] = {}
    confusion: dict[str, dict[str, int]] = {}
    for kind in sorted(set(expected)):
        heard = [p for e, p in zip(expected, predicted) if e == kind]
        accuracy[kind] = float(np.mean([p == kind for p in heard]))
        confusion[kind] = dict(sorted(Counter(heard).items(), key=lambda item: (-item[1], item[0])))
    return accuracy, confusion


def worst_kind(accuracy: dict[str, float]) -> str:
    """The kind with the lowest accuracy (the first in name order among equals)."""
    return min(sorted(accuracy), key=lambda kind: accuracy[kind])


def _task(reader: Pipeline, features: np.ndarray, labels) -> dict:
    predicted = [str(p) for p in reader.predict(features)]
    labels = [str(label) for label in labels]
    accuracy, confusion = per_kind(labels, predicted)
    return {"accuracy": float(np.mean([p == e for p, e in zip(predicted, labels)])),
            "chance": majority_rate(labels), "predicted": predicted, "per_kind": accuracy, "confusion": confusion}


def reading(train_features: np.ndarray, train_fg, train_bg, generated: np.ndarray, generated_fg, generated_bg,
            ceiling: np.ndarray | None = None, ceiling_fg=None, ceiling_bg=None) -> dict:
    """Foreground and background accuracy of readers fitted on real clips, on the generated clips
    (one row per generated clip and its prompt's labels) and, as the ceiling, on the real dev clips
    (``ceiling`` with ``ceiling_fg``/``ceiling_bg``)."""
    generated_fg, generated_bg = list(generated_fg), list(generated_bg)
    if len(generated) != len(generated_fg) or len(generated) != len(generated_bg):
        raise ValueError(f"{len(generated)} generated rows but {len(generated_fg)}/{len(generated_bg)} labels")
    result: dict = {"generated": {}, "ceiling": {}}
    for task, train_labels, labels, real_labels in (("fg", train_fg, generated_fg, ceiling_fg),
                                                    ("bg", train_bg, generated_bg, ceiling_bg)):
        reader = fit_reader(train_features, train_labels)
        scored = _task(reader, generated, labels)
        result["generated"].update({f"{task}_accuracy": scored["accuracy"], f"{task}_chance": scored["chance"],
                                    f"{task}_per_kind": scored["per_kind"],
                                    f"{task}_worst_kind": worst_kind(scored["per_kind"]),
                                    f"{task}_confusion": scored["confusion"],
                                    f"{task}_predicted": scored["predicted"],
                                    f"{task}_classes": [str(c) for c in reader.classes_]})
        if ceiling is not None:
            real = _task(reader, ceiling, real_labels)
            result["ceiling"].update({f"{task}_accuracy": real["accuracy"], f"{task}_per_kind": real["per_kind"]})
    return result


def _mean_pairwise_distance(rows: np.ndarray) -> float:
    """Mean Euclidean distance between all pairs of rows, per feature (an RMS distance)."""
    diffs = rows[:, None, :] - rows[None, :, :]
    distances = np.sqrt((diffs ** 2).mean(axis=-1))
    n = len(rows)
    return float(distances.sum() / (n * (n - 1)))


def diversity(train_features: np.ndarray, generated_groups: list[np.ndarray], real_groups: list[np.ndarray]) -> dict:
    """Spread of the generated clips of one prompt against the spread of real clips of one kind.

    ``generated_groups``: per prompt, the features of its clips for several z; ``real_groups``: per
    (foreground, background) kind, the features of its real training clips. Both are standardised
    with the real training features' statistics."""
    scaler = StandardScaler().fit(train_features)

    def spread(groups):
        values = [_mean_pairwise_distance(scaler.transform(g)) for g in groups if len(g) >= 2]
        if not values:
            raise ValueError("diversity needs groups of at least two clips")
        return float(np.mean(values))

    generated, real = spread(generated_groups), spread(real_groups)
    per_group = [_mean_pairwise_distance(scaler.transform(g)) / real if len(g) >= 2 and real > 0 else float("nan")
                 for g in generated_groups]
    return {"generated": generated, "real": real, "ratio": generated / real if real > 0 else float("nan"),
            "per_group_ratio": per_group,
            "definition": "mean pairwise RMS distance of standardised mel features within a prompt (generated, "
                          "several z) / within a (foreground, background) kind (real training clips)"}


def peaks(generated: list[np.ndarray] | np.ndarray, generated_fg, real: list[np.ndarray], real_fg) -> dict:
    """Each generated clip's loudest log-mel value against the real clips' of its foreground kind (module
    docstring): {"excess", "generated_per_kind", "real_per_kind"}."""
    def mean_by_kind(tops: list[float], kinds: list[str]) -> dict[str, float]:
        by_kind: dict[str, list[float]] = {}
        for top, kind in zip(tops, kinds):
            by_kind.setdefault(kind, []).append(top)
        return {kind: float(np.mean(values)) for kind, values in sorted(by_kind.items())}

    gen_tops, gen_kinds = [float(np.max(mel)) for mel in generated], [str(kind) for kind in generated_fg]
    real_mean = mean_by_kind([float(np.max(mel)) for mel in real], [str(kind) for kind in real_fg])
    excess = [top - real_mean[kind] for top, kind in zip(gen_tops, gen_kinds) if kind in real_mean]
    generated_mean = mean_by_kind(gen_tops, gen_kinds)
    return {"excess": float(np.mean(excess)) if excess else float("nan"),
            "generated_per_kind": generated_mean,
            "real_per_kind": {kind: value for kind, value in real_mean.items() if kind in generated_mean},
            "definition": "loudest log-mel value of a clip; excess = generated minus the real training clips' mean "
                          "of the same foreground kind, averaged over generated clips"}


def conditioning_line(cond: dict) -> str:
    """The conditioning score in one line: each reading beside its chance and its ceiling."""
    g, c = cond["generated"], cond["ceiling"]
    line = (f"conditioning (mel reading, {g['n_z']} z per prompt): foreground {g['fg_accuracy']:.3f} (chance "
            f"{g['fg_chance']:.3f}, ceiling {c['fg_accuracy']:.3f}), background {g['bg_accuracy']:.3f} (chance "
            f"{g['bg_chance']:.3f}, ceiling {c['bg_accuracy']:.3f}); diversity {cond['diversity']['ratio']:.2f} x real")
    if "generated" in cond["audio"]:
        a, ac = cond["audio"]["generated"], cond["audio"]["ceiling"]
        line += (f"; audio reading: foreground {a['fg_accuracy']:.3f} (ceiling {ac['fg_accuracy']:.3f}), "
                 f"background {a['bg_accuracy']:.3f} (ceiling {ac['bg_accuracy']:.3f})")
    return line


def per_kind_line(cond: dict) -> str:
    """Per-kind accuracy of both readings in one line, worst kind named: 'foreground per kind (mel / audio):
    alarm 0.90 / 0.70, ...; worst: knocking (mel), clock (audio)'. Empty without per-kind results."""
    readings = [("mel", cond["generated"])]
    if "generated" in cond.get("audio", {}):
        readings.append(("audio", cond["audio"]["generated"]))
    parts = []
    for task, label in (("fg", "foreground"), ("bg", "background")):
        kinds = [r.get(f"{task}_per_kind") for _, r in readings]
        if not kinds[0]:
            continue
        names = " / ".join(name for name, _ in readings)
        values = ", ".join(f"{kind} " + " / ".join(f"{k.get(kind, float('nan')):.2f}" for k in kinds)
                           for kind in kinds[0])
        worst = ", ".join(f"{r[f'{task}_worst_kind']} ({name})" for name, r in readings)
        parts.append(f"{label} per kind ({names}): {values}; worst: {worst}")
    return "; ".join(parts)
