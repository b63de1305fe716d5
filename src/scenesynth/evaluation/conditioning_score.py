"""The demo's conditioning score, end to end: which clips each reading sees, and its ceiling.

conditioning.py holds the readers (features, classifier, diversity); this module feeds them.

- mel reading (the headline, ``generated`` / ``ceiling``): readers fitted on the real training
  clips' log-mels (the shards' front end, ``clip_to_mel``); applied to the generator's own log-mels,
  ``evaluate.conditioning_z`` noise vectors per dev prompt (the model file's EMA generator, noise
  from ``seed``), before any vocoder, so the score measures the generator alone. Ceiling: the real
  dev clips' log-mels.
- audio reading (``audio``): readers fitted on ``conditioning_resynth_clips`` training clips sent
  through front end -> Griffin-Lim -> the generate stage's output (``generate.sample_rate``, 16-bit)
  -> front end, applied to the generate stage's clips (first seed) through the same front end.
  Ceiling: the real dev clips resynthesised alike. This one sees what a listener hears, vocoder and
  file format included, without reading the vocoder's artifacts as classes. (The output rate
  matters: at 32 kHz nothing is left above 16 kHz, the demo's top mel bin, so the readers are
  fitted on clips that lack it too.)
- diversity: the generator's spread over z for one prompt against real clips of one kind.
- peaks: the generator's loudest log-mel value against real clips' of the same kind (``peaks.excess``).

Only frames that hold audio are read (``true_frames``), so zero padding is never a feature.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import soxr
import torch

from scenesynth.audio_io import AudioReadError, load_mono
from scenesynth.data.manifest import LABEL_COLUMNS, read_manifest
from scenesynth.evaluation.conditioning import diversity, mel_features, peaks, reading
from scenesynth.features.mel import MelFrontEnd
from scenesynth.inference.griffin_lim import griffin_lim
from scenesynth.inference.protocol import load_model, to_output_rate
from scenesynth.text.prompts import PromptEncoder

log = logging.getLogger(__name__)

# MLflow metric name -> dotted path in conditioning.json
CONDITIONING_METRICS = {
    **{f"cond_{task}_{what}": f"generated.{task}_{what}" for task in ("fg", "bg") for what in ("accuracy", "chance")},
    **{f"cond_{task}_ceiling": f"ceiling.{task}_accuracy" for task in ("fg", "bg")},
    "cond_diversity": "diversity.ratio",
    "cond_peak_excess": "peaks.excess",
    **{f"cond_audio_{task}_{part}": f"audio.{where}.{task}_accuracy" for task in ("fg", "bg")
       for part, where in (("accuracy", "generated"), ("ceiling", "ceiling"))},
}
KIND_METRICS = {"cond_{task}_kind_{kind}": "generated.{task}_per_kind",
                "cond_audio_{task}_kind_{kind}": "audio.generated.{task}_per_kind"}


def mlflow_metrics(cond: dict) -> dict[str, float]:
    """conditioning.json's numbers under their MLflow names: the fixed table, the mean of the mel reading's
    foreground and background accuracy (``cond_mean_accuracy``: a step chosen on the foreground alone can
    lose its background), the mel reading's worst foreground kind (``cond_fg_worst_kind_accuracy``: a
    mean can hide a kind a run has lost), and one metric per kind and reading (``cond_fg_kind_clock``,
    ``cond_audio_fg_kind_clock``); absent parts are left out."""
    from scenesynth.evaluation.headline import pick

    flat = {name: value for name, dotted in CONDITIONING_METRICS.items() if (value := pick(cond, dotted)) is not None}
    if "cond_fg_accuracy" in flat and "cond_bg_accuracy" in flat:  # both readings in one number (train.select_by)
        flat["cond_mean_accuracy"] = (flat["cond_fg_accuracy"] + flat["cond_bg_accuracy"]) / 2
    if per_kind := pick(cond, "generated.fg_per_kind"):
        flat["cond_fg_worst_kind_accuracy"] = min(per_kind.values())
    for name, dotted in KIND_METRICS.items():
        for task in ("fg", "bg"):
            for kind, value in (pick(cond, dotted.format(task=task)) or {}).items():
                flat[name.format(task=task, kind=kind)] = value
    return flat


GENERATOR_BATCH = 64  # noise vectors per forward pass of the generator
MAX_CLASSIFIER_CLIPS = 600  # per task; the demo has 480 training clips
NOISE_STREAM = 7_919  # the score's noise is its own, apart from generate's candidates
# Training's periodic evaluation reads other noise vectors than the final score: a step chosen as the best
# (train.export: best) is then scored on noise it was not chosen on (the dev prompts are still the same)
SELECTION_NOISE_STREAM = 7_927


def at_rate(wave: np.ndarray, source_rate: int, rate: int) -> np.ndarray:
    """``wave`` at ``rate`` (soxr HQ), as every clip a reading reads is brought to the front end's rate."""
    return wave if source_rate == rate else soxr.resample(wave, source_rate, rate, quality="HQ")


def load_at(path: str | Path, rate: int) -> np.ndarray:
    return at_rate(*load_mono(path), rate)


def real_mels(table: pd.DataFrame, front_end: MelFrontEnd) -> tuple[pd.DataFrame, list[np.ndarray], list[dict]]:
    """Each row's audio through the front end, cut to its true frames; unreadable rows are left out
    and reported (as the resample stage does). Returns (kept rows, their log-mels, skipped)."""
    rate = front_end.settings.sample_rate
    keep, mels, skipped = [], [], []
    for i, path in enumerate(table["path"]):
        try:
            mel, frames = front_end.clip_to_mel(load_at(path, rate))
        except (AudioReadError, ValueError) as err:
            skipped.append({"key": table["key"].iloc[i], "path": path, "reason": str(err)})
            log.warning("%s: skipped (%s)", path, err)
            continue
        keep.append(i)
        mels.append(mel[:, : max(frames, 2)].astype(np.float32))
    return table.iloc[keep].reset_index(drop=True), mels, skipped


def as_written(wave: np.ndarray, rate: int, out_rate: int) -> np.ndarray:
    """A vocoded clip as the generate stage writes it and the audio reading reads it back: ``out_rate``
    (soxr VHQ, as protocol.to_output_rate), clipped, 16-bit WAV, then at ``rate`` again (``at_rate``, as
    ``load_at``)."""
    clip = np.clip(to_output_rate(wave, rate, out_rate, len(wave) / rate), -1.0, 1.0)
    buffer = io.BytesIO()
    sf.write(buffer, clip, out_rate, format="WAV", subtype="PCM_16")
    buffer.seek(0)
    return at_rate(sf.read(buffer, dtype="float32")[0], out_rate, rate)


def resynthesised(mels: list[np.ndarray], front_end: MelFrontEnd, iters: int,
                  out_rate: int | None = None) -> list[np.ndarray]:
    """log-mel -> Griffin-Lim (-> the generate stage's file at ``out_rate``, when given) -> front end again:
    what a clip looks like after the demo's vocoder."""
    out = []
    for i, mel in enumerate(mels):
        wave = griffin_lim(mel, front_end, n_iter=iters, seed=i)
        if out_rate is not None:
            wave = as_written(wave, front_end.settings.sample_rate, out_rate)
        again, frames = front_end.clip_to_mel(wave)
        out.append(again[:, : max(min(frames, mel.shape[1]), 2)].astype(np.float32))
    return out


@torch.no_grad()
def generator_mels(model_path: str | Path, captions: list[str], n_z: int, seed: int,
                   pretrained: str | Path, stream: int = NOISE_STREAM) -> np.ndarray:
    """[P, Z, n_mels, n_frames]: the model's log-mels for each caption and ``n_z`` noise vectors."""
    generator, _, saved = load_model(model_path, torch.device("cpu"))
    prompts = PromptEncoder(saved["text"], Path(pretrained) / "clap_text", "cpu")
    noise = torch.Generator().manual_seed(seed * 1_000_003 + stream)
    z = torch.randn(len(captions), n_z, saved["model"]["z_dim"], generator=noise)
    per_batch = max(1, GENERATOR_BATCH // n_z)  # whole prompts per forward pass: one per prompt was 3x slower
    rows = []
    for start in range(0, len(captions), per_batch):
        part = list(captions[start:start + per_batch])
        text = prompts.batch([caption for caption in part for _ in range(n_z)])
        rows.append(generator(z[start:start + len(part)].flatten(0, 1), text)[:, 0].float().numpy())
    mels = np.concatenate(rows)
    return mels.reshape(len(captions), n_z, *mels.shape[1:])


def _labels(table: pd.DataFrame) -> tuple[list[str], list[str]]:
    return [str(v) for v in table["foreground"]], [str(v) for v in table["background"]]


@dataclass
class RealClips:
    """The real clips both readings are fitted and bounded on, as log-mels cut to their true frames."""

    train: pd.DataFrame
    train_mels: list[np.ndarray]
    dev: pd.DataFrame  # the dev rows whose audio could be read (the ceiling's clips)
    dev_mels: list[np.ndarray]
    skipped: list[dict]


def load_real_clips(params: dict, train: pd.DataFrame, dev: pd.DataFrame) -> RealClips:
    """Training rows (at most MAX_CLASSIFIER_CLIPS, drawn with ``seed``) and dev rows through the front end."""
    front_end = MelFrontEnd.from_params(params["audio"])
    train = train.sort_values("key")
    if len(train) > MAX_CLASSIFIER_CLIPS:
        train = train.sample(MAX_CLASSIFIER_CLIPS, random_state=params["seed"]).sort_values("key")
    train, train_mels, skipped = real_mels(train.reset_index(drop=True), front_end)
    real_dev, dev_mels, _ = real_mels(dev, front_end)
    return RealClips(train, train_mels, real_dev, dev_mels, skipped)


def mel_reading(params: dict, real: RealClips, dev: pd.DataFrame, model_path: str | Path,
                pretrained: str | Path, stream: int = NOISE_STREAM) -> dict:
    """The headline reading of a model file: ``generated`` (with per-clip ``fg/bg_predicted``, prompt
    by prompt, ``n_z`` each), ``ceiling``, ``diversity`` and ``peaks``; ``stream`` picks the noise vectors."""
    n_z = params["evaluate"]["conditioning_z"]
    train_x, (train_fg, train_bg) = mel_features(real.train_mels), _labels(real.train)
    dev_fg, dev_bg = _labels(dev)
    ceiling_fg, ceiling_bg = _labels(real.dev)
    generated = generator_mels(model_path, list(dev["caption"]), n_z, params["seed"], pretrained, stream)
    generated = np.maximum(generated, np.log(params["audio"]["log_clamp"]))  # the floor every real log-mel has
    clips, clip_fg = generated.reshape(-1, *generated.shape[2:]), np.repeat(dev_fg, n_z)  # prompt by prompt, n_z each
    gen_x = mel_features(clips)
    out = reading(train_x, train_fg, train_bg, gen_x, clip_fg, np.repeat(dev_bg, n_z),
                  ceiling=mel_features(real.dev_mels), ceiling_fg=ceiling_fg, ceiling_bg=ceiling_bg)
    kinds = real.train.groupby(["foreground", "background"]).indices.values()
    out["diversity"] = diversity(train_x, [gen_x[i * n_z:(i + 1) * n_z] for i in range(len(dev))],
                                 [train_x[list(rows)] for rows in kinds])
    out["generated"].update(n_prompts=len(dev), n_z=n_z)
    out["peaks"] = peaks(clips, clip_fg, real.train_mels, train_fg)
    return out


def labelled_clips(params: dict, train_manifest: str | Path | None, dev: pd.DataFrame) -> RealClips | None:
    """The real clips the readers are fitted and bounded on, or None without labels (loaded once: the
    evaluate stage and training's periodic evaluation score against the same clips)."""
    if train_manifest is None:
        log.info("no training manifest given: conditioning score skipped")
        return None
    manifest = read_manifest(train_manifest)
    if not all(c in manifest and c in dev for c in LABEL_COLUMNS) or manifest["foreground"].isna().any():
        log.info("no foreground/background labels in the manifest: conditioning score skipped")
        return None
    return load_real_clips(params, manifest[manifest["split"] == "train"], dev)


def selection_prompts(real: RealClips, dev: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """``n`` training captions for training's evaluation to choose its best step on (``train.select_by.prompts:
    train``), so that the dev prompts the evaluate stage scores are never read to choose it: rows of the
    readers' training clips whose labels the dev set asks for, the same number per foreground kind (as
    the dev set has), drawn with ``seed``."""
    asked = real.train[real.train["foreground"].isin(set(dev["foreground"]))
                       & real.train["background"].isin(set(dev["background"]))]
    kinds = sorted(set(asked["foreground"]))
    if not kinds:
        raise ValueError("no training clip has the dev set's labels: train.select_by.prompts 'train' has no prompts")
    per_kind = max(1, n // len(kinds))
    drawn = [rows.sample(min(per_kind, len(rows)), random_state=seed)
             for _, rows in asked.sort_values("key").groupby("foreground")]
    return pd.concat(drawn).sort_values("key").reset_index(drop=True)


def conditioning_metrics(params: dict, real: RealClips, dev: pd.DataFrame, first_seed: dict[str, Path],
                         model_path: str | Path, pretrained: str | Path,
                         audio: bool = True, stream: int = NOISE_STREAM, reference=None) -> tuple[dict, dict]:
    """(conditioning.json, each dev prompt's predicted labels) of a model file and its first seed's clips;
    ``audio`` False leaves out the audio reading (the record says so); ``stream``: the mel reading's noise;
    ``reference``: the resynth_reference stage's resynthesised real clips (audio_reading)."""
    mel = mel_reading(params, real, dev, model_path, pretrained, stream)
    n_z = mel["generated"]["n_z"]
    per_z = {task: mel["generated"].pop(f"{task}_predicted") for task in ("fg", "bg")}
    spreads = mel["diversity"].pop("per_group_ratio")
    audio, heard = (audio_reading(params, real, dev, first_seed, reference) if audio else
                    ({"skipped": "left out of training's periodic evaluation (the mel reading is its curve)"}, None))
    # per_prompt.csv stands beside the first seed's clip: its labels are those of that clip (the audio
    # reading) where there is one; else the mel reading's first noise vector, and the record says so.
    predicted = heard or {key: {"foreground": per_z["fg"][i * n_z], "background": per_z["bg"][i * n_z]}
                          for i, key in enumerate(dev["key"])}
    for key, spread in zip(dev["key"], spreads):  # each prompt's spread over its n_z noise vectors, x real
        predicted[key] = {**predicted[key], "z_spread": spread}
    result = {
        "reading": "mel: log-mels of the generator (the model file's weights, no vocoder) against readers fitted "
                   "on the real training clips' log-mels; chance = the dev labels' majority rate",
        "generated": mel["generated"],
        "ceiling": {**mel["ceiling"], "what": "the same readers on the real dev clips' log-mels"},
        "audio": audio,
        "per_prompt_labels": ("the audio reading of the first seed's clips" if heard else
                              "the mel reading of the generator's first noise vector"),
        "diversity": mel["diversity"],
        "peaks": mel["peaks"],
        "n_training_clips": len(real.train), "skipped_training_clips": real.skipped,
    }
    return result, predicted


def resynthesis_inputs(params: dict, real: RealClips) -> tuple[np.ndarray, dict[str, tuple[list[str], list]]]:
    """The real clips the audio reading resynthesises: (``pick``, the rows of ``real.train`` its readers
    are fitted on, ``conditioning_resynth_clips`` of them drawn with ``seed``; {"train": (keys, log-mels),
    "dev": (keys, log-mels) of the ceiling's clips}). They depend on the data alone, so the
    resynth_reference stage resynthesises them beside training (evaluation/resynth_reference.py)."""
    n = min(params["evaluate"]["conditioning_resynth_clips"], len(real.train_mels))
    pick = np.sort(np.random.default_rng(params["seed"]).choice(len(real.train_mels), size=n, replace=False))
    return pick, {"train": ([str(k) for k in real.train["key"].iloc[pick]], [real.train_mels[i] for i in pick]),
                  "dev": ([str(k) for k in real.dev["key"]], real.dev_mels)}


def resynthesis_settings(params: dict) -> dict:
    """What a resynthesised clip depends on besides its log-mel (and its place in its list: the seed)."""
    return {"griffin_lim_iters": params["generate"]["griffin_lim_iters"],
            "output_rate": params["generate"]["sample_rate"]}


def resynthesised_reals(params: dict, real: RealClips, reference=None):
    """(pick, inputs, {"train": ..., "dev": ...} resynthesised log-mels) of ``resynthesis_inputs``; a part
    ``reference`` (a ResynthReference) holds for the same clips, settings and log-mels is read from it,
    bit for bit what this would compute on the machine that made it, the rest is computed here."""
    front_end = MelFrontEnd.from_params(params["audio"])
    settings = resynthesis_settings(params)
    pick, inputs = resynthesis_inputs(params, real)
    out = {}
    for part, (keys, mels) in inputs.items():
        stored = reference.lookup(part, keys, mels, settings) if reference is not None else None
        out[part] = stored if stored is not None else resynthesised(
            mels, front_end, settings["griffin_lim_iters"], settings["output_rate"])
    return pick, inputs, out


def audio_reading(params: dict, real: RealClips, dev: pd.DataFrame, first_seed: dict[str, Path],
                  reference=None) -> tuple[dict, dict | None]:
    """The generate stage's clips, read by readers fitted on resynthesised training clips: (the record,
    each clip's predicted labels by prompt key, or None when skipped). ``reference``: the
    resynth_reference stage's clips, used where they match."""
    if params["generate"]["vocoder"] != "griffin_lim":
        return {"skipped": "the audio reading resynthesises with Griffin-Lim; this run used "
                           f"{params['generate']['vocoder']}"}, None
    front_end = MelFrontEnd.from_params(params["audio"])
    pick, _, again = resynthesised_reals(params, real, reference)
    train_fg, train_bg = _labels(real.train.iloc[pick])
    train_x = mel_features(again["train"])
    clips = pd.DataFrame({"key": list(dev["key"]), "path": [str(first_seed[k]) for k in dev["key"]]})
    _, clip_mels, unreadable = real_mels(clips, front_end)
    if unreadable:
        raise AudioReadError(f"{unreadable[0]['path']}: generated clip unreadable ({unreadable[0]['reason']})")
    (dev_fg, dev_bg), (ceiling_fg, ceiling_bg) = _labels(dev), _labels(real.dev)
    out = reading(train_x, train_fg, train_bg, mel_features(clip_mels), dev_fg, dev_bg,
                  ceiling=mel_features(again["dev"]), ceiling_fg=ceiling_fg, ceiling_bg=ceiling_bg)
    labels = {task: out["generated"].pop(f"{task}_predicted") for task in ("fg", "bg")}
    heard = {key: {"foreground": fg, "background": bg} for key, fg, bg in zip(dev["key"], labels["fg"], labels["bg"])}
    return {"generated": out["generated"], "ceiling": out["ceiling"], "n_training_clips": len(pick),
            **resynthesis_settings(params),
            "what": "the generate stage's clips (first seed) through the front end, against readers fitted on "
                    "training clips resynthesised by front end + Griffin-Lim + the generate stage's output rate and "
                    "16-bit file; ceiling: the real dev clips alike"}, heard
