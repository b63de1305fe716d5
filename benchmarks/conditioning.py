"""Does the paper's objective make the generator follow its prompt better than hinge loss alone?

Trains the demo model (config/demo.yaml, or any overlay) once per variant and training seed, on
one shared build of the demo data, and scores each model the way `scenesynth evaluate` does:
foreground and background accuracy of the mel reading (readers fitted on real training clips,
applied to the generator's log-mels, `evaluate.conditioning_z` noise vectors per dev prompt),
its diversity ratio, and the stand-in FAD of the generate stage's clips (logmel_stats, one
candidate per prompt to save time). Variants (docs/paper.md sections 3-4):

  full         the overlay as it is. For the demo: since issue 19's morning session of 2026-12-06 model.pt is its
               best step on training captions (rows measured before exported the last step, which export_last
               repeats), and since 2026-12-07 it trains hinge alone; rows measured before trained the paper's
               objective, hinge + SC + F2R + G2S + L2W, which `contrastive` repeats. Since the evening of
               2026-12-07 it adds mode seeking (0.25, 4 rows), D's onset channel and the caption check
               (mismatch 1) and trains 1 000 steps; rows measured before trained without them, 1 200 steps,
               which `plain_hinge` repeats. Since the late night of 2026-12-07 G's output has a soft ceiling
               (model.g_peak_cap); rows measured before ran without it, which `demo_uncapped` repeats
  contrastive_capped  the overlay as it is with the paper's four contrastive losses at their weights (1): for the
               demo, the paper's objective with the options the demo keeps

Measured on the demo without the ceiling (UNCAPPED_DEMO) and run on it, so that their rows repeat:

  demo_uncapped  that demo: mode seeking 0.25 on 4 rows, D's onset channel, the caption check, 1 000 steps
  demo_contrastive  that demo with the paper's four contrastive losses at their weights (1)
  d_peak       that demo with D's peak channel (model.d_peak): each bin's maximum over the clip as one more input
               channel; g_peak_norm with G's output peak-normalised instead, its top from the sentence
               (model.g_peak_norm);
               g_peak_norm_mode_seeking_0.4 with mode seeking at 0.4 (the demo's 0.25);
               g_peak_norm_mismatch_2 with D's caption check at 2 (the demo's 1);
               g_peak_cap with a soft ceiling on G's output at the sentence's level instead (model.g_peak_cap):
               the demo since, as `full`

Every variant below was measured on an earlier demo still and runs on it: its changes on top of `plain_hinge`'s
(PLAIN_DEMO: no mode seeking, onset channel, caption check or ceiling on G, 1 200 steps), so that its rows in
docs/benchmarks.md repeat; in their text, `full` is the demo of their session (compare with --reference
plain_hinge). With another --overlay they too train 1 200 steps unless --steps says otherwise.

  plain_hinge  the demo of 2026-12-07's day: hinge alone without mode seeking, D's onset channel or the
               caption check, 1 200 steps
  hinge_only   hinge loss alone (every contrastive weight 0: the demo's since 2026-12-07)
  contrastive  the paper's four contrastive losses at their weights (1) on top of the overlay
  no_sc, no_f2r, no_g2s, no_l2w   the paper's objective with one contrastive loss left out
  no_attention no attention stage in G or D (the paper's contrastive losses on)
  contrastive_0.25  every contrastive weight at a quarter of the paper's (hinge at 1)
  noise_blocks z split into one chunk per generator block, into its CBN (BigGAN; model.g_noise_blocks)
  mode_seeking MSGAN's mode-seeking term for G, weight 1 (loss.mode_seeking); mode_seeking_0.1 and _0.3
               at those weights; mode_seeking_capped with the ratio capped at 0.9 (loss.mode_seeking_cap)
  mbstd        minibatch standard deviation before D's last block, groups of 4 (model.d_minibatch_std)
  diversity_all the three above together
  noise_maps   StyleGAN's per-pixel noise after every generator conv, maps drawn from z (model.g_noise_maps),
               strength starting at 0; noise_maps_0.5 / _1 / _2 at that strength (model.g_noise_strength)
  time_noise_1 / _2  the same with one noise value per frame shared by every mel bin (g_noise_maps: time)
  hash_content the demo's text stand-in with its sentence vector over content words only (text.encoder; the
               glue every demo caption shares makes prompts of different sounds nearly parallel under `hash`);
               hash_content_noise_maps_0.5 with noise_maps_0.5 on top
  diffaug      DiffAugment in time: every clip D sees rolled by up to 1/8 of its frames (train.d_augment_shift);
               diffaug_0.5 by up to half; diffaug_mode_seeking_0.1 / _capped with the mode-seeking term on top
  lr_decay_0.5 both learning rates falling linearly to 0 over the second half of training (train.lr_decay_start);
               lr_decay_0.75 over the last quarter
  ema_0.995    the EMA generator averaged over ~200 steps instead of the demo's ~100 (model.ema_decay)
  d_time_delta D reads the log-mel's frame-to-frame difference as a second channel (model.d_time_delta);
               d_time_delta_ema_0.995 with ema_0.995 on top; hinge_only_d_time_delta with hinge_only's weights
  betas_0      Adam's first moment off for G and D (train.betas [0, 0.999], BigGAN's; the demo's 0.5 is DCGAN's)
  lr_g_2e-4    G's rate at half D's (train.lr_g; the demo has both at 4e-4)
  init_2x8     G's first map 2 x 8 instead of 1 x 4 (model.init_shape: z sets 8 time slots, one block fewer
               in G and D, D's attention at its two upper levels)
  mode_seeking_0.1_rows_4  mode_seeking_0.1 on 4 rows of the batch instead of 8 (loss.mode_seeking_rows);
               mode_seeking_0.2_rows_4 at weight 0.2
  init_2x8_1000  init_2x8 trained 1 000 steps (its step costs more: the same training time as full's 1 200;
               without --steps, which overrides it); init_2x8_g2att without G's attention at 16 x 64;
               init_4x16 the first map 4 x 16 (two blocks each side); init_2x8_mode_seeking_0.1_rows_4 both,
               and _800 / _900 / _1000 / _1100 the same trained that many steps (to fit the DAG's 300 s);
               init_2x8_g64_mode_seeking_0.1_rows_4 with G's channels halved (model.g_channels 64): every G block
               then has the demo's width at its resolution, so the wider start no longer doubles G's cost
  export_best  model.pt holds the in-training evaluation's best step (train.export: best), chosen on the dev prompts'
               foreground reading, instead of the last: the same training, so it compares with `full` seed by seed;
               export_best_train chosen on 120 training captions instead (train.select_by.prompts: train: not on
               the prompts it is scored on), export_best_train_mean on their foreground and background accuracy
               together (cond_mean_accuracy), export_best_train_worst on its worst foreground kind
               (cond_fg_worst_kind_accuracy); export_last the last step's weights (model.pt as trained)
  steps_1500   the demo trained 1 500 steps instead of 1 200 (its accuracy still rises at the end)
  batch_32_600 batches of 32 for 600 steps (the same clips seen), evaluated every 50: less gradient noise per step;
               batch_32_900 900 steps, evaluated every 75 (a step of 32 costs ~1.25x one of 16: about full's time)
  mismatch_0.5 / _1  GAN-INT-CLS's matching-aware term for D at that weight (0.5 not measured yet): real
               clips read with another row's caption scored as fake (loss.mismatch)
  r1_10 / r1_100  R1 on D's slope at real clips, gamma 10 / 100, every 4th D update (loss.r1, r1_every)
  lecam_0.3    LeCam regularisation on D at the LeCam paper's BigGAN weight (loss.lecam): D's logits held near the
               moving averages of the other side's, against a D that memorises 480 clips
  mode_seeking_0.2_rows_4_lecam_0.3, mode_seeking_0.2_rows_4_d_time_delta   mode_seeking_0.2_rows_4 with LeCam / with
               D's onset channel; _d_time_delta_1000 the latter trained 1 000 steps (its step costs more: the demo's
               time); _d_time_delta_mismatch_1_1000 with mismatch_1 on top (D checks the caption: against a run
               that drops the background some foregrounds are asked with), _mismatch_2_1000 at weight 2;
               mode_seeking_0.25_rows_4_d_time_delta_mismatch_1_1000 with mode seeking at 0.25
  input_text   the sentence also enters G's input linear beside z (model.g_input_text): a text-dependent first map
  replay_0.25  a quarter of D's fake rows are earlier generator outputs from a reservoir of them, with their own
               captions (train.d_replay; SimGAN's history): against a D that forgets the event-free scenes G made
  without_options, hinge_only_without_options   the paper's objective and hinge alone with the demo's other
               issue-19 choices undone (text.encoder hash, g_noise_maps none): the paper's claim on the generator
               it describes

Each row carries the per-kind accuracy (a second table: foreground kinds, mean over seeds) and the
stand-in FAD as a multiple of its real-vs-real floor (evaluation/fd_floor.py).

    python benchmarks/conditioning.py                          # all variants x 3 seeds, demo size
    python benchmarks/conditioning.py --variants full,hinge_only --seeds 1234 --steps 200 --json
    python benchmarks/conditioning.py --overlay config/separable.yaml --processes 2
    python benchmarks/conditioning.py --variants full --audio-reading   # + the audio reading (Griffin-Lim)
    python benchmarks/conditioning.py --from-json a.json b.json         # the table of saved --json runs, merged
    python benchmarks/conditioning.py --variants full --seeds 10 --heard-as   # + what each kind is heard as, per step

Each run trains on one thread; --processes runs that many at once (2 on a 2-core machine). The
table gives mean +- std over seeds, the worst seed, and each variant's difference from --reference
(default full) with its standard error; --json prints one object per run (variant, seed, fg_accuracy,
bg_accuracy, fad, diversity, seconds).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import copy
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONTRASTIVE = ("sc", "f2r", "g2s", "l2w")
# the demo's issue-19 choices undone: the plain hash text stand-in, no noise maps (the paper's generator)
PAPER_LOSSES = {name: 1.0 for name in CONTRASTIVE}  # the paper's four contrastive weights (params.yaml)
WITHOUT_OPTIONS = {"text": {"encoder": "hash"}, "model": {"g_noise_maps": "none", "g_noise_strength": 0.0},
                   "loss": PAPER_LOSSES}
# The demo before the evening of 2026-12-07 (hinge alone, 1 200 steps), as changes to today's: every variant but
# `full` was measured on it and is run on it (on_demo_of), so that its rows in docs/benchmarks.md repeat
PLAIN_DEMO = {"model": {"d_time_delta": False, "g_peak_cap": False},
              "loss": {"mode_seeking": 0.0, "mode_seeking_rows": 8, "mismatch": 0.0}, "train": {"steps": 1200}}
# The demo of the night of 2026-12-07 (mode seeking, D's onset channel, the caption check; G uncapped), as changes to
# today's: the variants measured on it run on it (on_demo_of(UNCAPPED_DEMO, ...))
UNCAPPED_DEMO = {"model": {"g_peak_cap": False}}
PEAK_NORM = {"model": {"g_peak_norm": True}}  # G's output peak-normalised (model.g_peak_norm)
# G's first map 2 x 8 (one block fewer each side), so D's attention fits its two upper levels
INIT_2X8 = {"init_shape": [2, 8], "d_attention": ["double", "triple"]}
SEEKING_ON_4_ROWS = {"mode_seeking": 0.1, "mode_seeking_rows": 4}


def exported_best(metric: str, prompts: str) -> dict:
    """model.pt := the step with the best in-training `metric` read on `prompts` (dev, or 120 training captions)."""
    return {"export": "best", "select_by": {"metric": metric, "mode": "max", "prompts": prompts, "n_prompts": 120}}


def seeking_with_onsets(weight: float, mismatch: float = 0.0, steps: int | None = None) -> dict:
    """Mode seeking at ``weight`` on 4 rows with D's onset channel (model.d_time_delta), D's caption check at
    ``mismatch``, trained ``steps`` (None: the demo's)."""
    changes = {"model": {"d_time_delta": True},
               "loss": {**SEEKING_ON_4_ROWS, "mode_seeking": weight, "mismatch": mismatch}}
    return {**changes, "train": {"steps": steps}} if steps else changes


MEASURED_ON_PLAIN_DEMO = {
    "hinge_only": {"loss": {name: 0.0 for name in CONTRASTIVE}},
    "plain_hinge": {},
    "contrastive": {"loss": PAPER_LOSSES},
    # the paper's objective with one loss left out, or without attention (the demo trains hinge alone since 2026-12-07)
    **{f"no_{name}": {"loss": {**PAPER_LOSSES, name: 0.0}} for name in CONTRASTIVE},
    "no_attention": {"model": {"g_attention": [None], "d_attention": [None]}, "loss": PAPER_LOSSES},
    # issue 19: does the generator use its noise? (each off in the paper's objective)
    "noise_blocks": {"model": {"g_noise_blocks": True}},
    "mode_seeking": {"loss": {"mode_seeking": 1.0}},
    "mode_seeking_0.1": {"loss": {"mode_seeking": 0.1}},
    "mode_seeking_0.3": {"loss": {"mode_seeking": 0.3}},
    "mode_seeking_capped": {"loss": {"mode_seeking": 1.0, "mode_seeking_cap": 0.9}},
    "mbstd_mode_seeking_capped": {"model": {"d_minibatch_std": 4}, "loss": {"mode_seeking": 1.0, "mode_seeking_cap": 0.9}},
    "mbstd": {"model": {"d_minibatch_std": 4}},
    "noise_maps": {"model": {"g_noise_maps": "pixel"}},
    "noise_maps_0.5": {"model": {"g_noise_maps": "pixel", "g_noise_strength": 0.5}},
    "noise_maps_1": {"model": {"g_noise_maps": "pixel", "g_noise_strength": 1.0}},
    "noise_maps_2": {"model": {"g_noise_maps": "pixel", "g_noise_strength": 2.0}},
    "time_noise_1": {"model": {"g_noise_maps": "time", "g_noise_strength": 1.0}},
    "time_noise_2": {"model": {"g_noise_maps": "time", "g_noise_strength": 2.0}},
    "diffaug": {"train": {"d_augment_shift": 0.125}},
    "diffaug_0.5": {"train": {"d_augment_shift": 0.5}},
    "hash_content": {"text": {"encoder": "hash_content"}},
    "hash_content_noise_maps_0.5": {"text": {"encoder": "hash_content"},
                                    "model": {"g_noise_maps": "pixel", "g_noise_strength": 0.5}},
    "diffaug_mode_seeking_0.1": {"train": {"d_augment_shift": 0.125}, "loss": {"mode_seeking": 0.1}},
    "diffaug_mode_seeking_capped": {"train": {"d_augment_shift": 0.125},
                                    "loss": {"mode_seeking": 1.0, "mode_seeking_cap": 0.9}},
    "contrastive_0.25": {"loss": {name: 0.25 for name in CONTRASTIVE}},
    "lr_decay_0.5": {"train": {"lr_decay_start": 0.5}},
    "lr_decay_0.75": {"train": {"lr_decay_start": 0.75}},
    "ema_0.995": {"model": {"ema_decay": 0.995}},
    "d_time_delta": {"model": {"d_time_delta": True}},
    "hinge_only_d_time_delta": {"model": {"d_time_delta": True}, "loss": {name: 0.0 for name in CONTRASTIVE}},
    "d_time_delta_ema_0.995": {"model": {"d_time_delta": True, "ema_decay": 0.995}},
    "betas_0": {"train": {"betas": [0.0, 0.999]}},
    "lr_g_2e-4": {"train": {"lr_g": 2.0e-4}},
    "init_2x8": {"model": INIT_2X8},
    "mode_seeking_0.1_rows_4": {"loss": SEEKING_ON_4_ROWS},
    "mode_seeking_0.2_rows_4": {"loss": {**SEEKING_ON_4_ROWS, "mode_seeking": 0.2}},
    "init_2x8_1000": {"model": INIT_2X8, "train": {"steps": 1000}},
    "init_2x8_g2att": {"model": {**INIT_2X8, "g_attention": ["triple", "double"]}},
    "init_4x16": {"model": {"init_shape": [4, 16], "g_attention": ["triple", "double"], "d_attention": ["triple"]}},
    "init_2x8_mode_seeking_0.1_rows_4": {"model": INIT_2X8, "loss": SEEKING_ON_4_ROWS},
    **{f"init_2x8_mode_seeking_0.1_rows_4_{steps}": {"model": INIT_2X8, "loss": SEEKING_ON_4_ROWS, "train": {"steps": steps}}
       for steps in (800, 900, 1000, 1100)},
    "init_2x8_g64_mode_seeking_0.1_rows_4": {"model": {**INIT_2X8, "g_channels": 64}, "loss": SEEKING_ON_4_ROWS},
    "steps_1500": {"train": {"steps": 1500}},
    "batch_32_600": {"train": {"batch_size": 32, "steps": 600, "eval_every": 50}},
    "batch_32_900": {"train": {"batch_size": 32, "steps": 900, "eval_every": 75}},
    "export_last": {"train": {"export": "last"}},
    "export_best": {"train": exported_best("cond_fg_accuracy", "dev")},
    "export_best_train": {"train": exported_best("cond_fg_accuracy", "train")},
    "export_best_train_mean": {"train": exported_best("cond_mean_accuracy", "train")},
    "export_best_train_worst": {"train": exported_best("cond_fg_worst_kind_accuracy", "train")},
    "mismatch_0.5": {"loss": {"mismatch": 0.5}},
    "mismatch_1": {"loss": {"mismatch": 1.0}},
    "lecam_0.3": {"loss": {"lecam": 0.3}},
    "mode_seeking_0.2_rows_4_lecam_0.3": {"loss": {**SEEKING_ON_4_ROWS, "mode_seeking": 0.2, "lecam": 0.3}},
    "mode_seeking_0.2_rows_4_d_time_delta": seeking_with_onsets(0.2),
    "mode_seeking_0.2_rows_4_d_time_delta_1000": seeking_with_onsets(0.2, steps=1000),
    "mode_seeking_0.2_rows_4_d_time_delta_mismatch_1_1000": seeking_with_onsets(0.2, mismatch=1.0, steps=1000),
    "mode_seeking_0.2_rows_4_d_time_delta_mismatch_2_1000": seeking_with_onsets(0.2, mismatch=2.0, steps=1000),
    "mode_seeking_0.25_rows_4_d_time_delta_mismatch_1_1000": seeking_with_onsets(0.25, mismatch=1.0, steps=1000),
    "input_text": {"model": {"g_input_text": True}},
    "replay_0.25": {"train": {"d_replay": 0.25}},
    "r1_10": {"loss": {"r1": 10.0}},
    "r1_100": {"loss": {"r1": 100.0}},
    "without_options": WITHOUT_OPTIONS,
    "hinge_only_without_options": {**WITHOUT_OPTIONS, "loss": {name: 0.0 for name in CONTRASTIVE}},
    "diversity_all": {"model": {"g_noise_blocks": True, "d_minibatch_std": 4}, "loss": {"mode_seeking": 1.0}},
}


MEASURED_ON_UNCAPPED_DEMO = {
    "demo_uncapped": {},
    "demo_contrastive": {"loss": PAPER_LOSSES},
    "d_peak": {"model": {"d_peak": True}},
    "g_peak_norm": PEAK_NORM,
    "g_peak_norm_mode_seeking_0.4": {**PEAK_NORM, "loss": {"mode_seeking": 0.4}},
    "g_peak_norm_mismatch_2": {**PEAK_NORM, "loss": {"mismatch": 2.0}},
    "g_peak_cap": {"model": {"g_peak_cap": True}},  # the cap on that demo: today's demo
}


def on_demo_of(base: dict, variant: dict) -> dict:
    """``variant``'s changes on top of an earlier demo's (``base``: changes to today's), section by section (the
    variant's values win)."""
    merged = {section: dict(values) for section, values in base.items()}
    for section, values in variant.items():
        merged.setdefault(section, {}).update(values)
    return merged


VARIANTS = {"full": {}, **{name: on_demo_of(PLAIN_DEMO, changes) for name, changes in MEASURED_ON_PLAIN_DEMO.items()},
            **{name: on_demo_of(UNCAPPED_DEMO, changes) for name, changes in MEASURED_ON_UNCAPPED_DEMO.items()},
            # variants of today's demo
            "contrastive_capped": {"loss": PAPER_LOSSES}}


def with_variant(params: dict, variant: str, seed: int, steps: int | None, audio_reading: bool = False,
                 heard_as: bool = False) -> dict:
    out = copy.deepcopy(params)
    for section, values in VARIANTS[variant].items():
        out[section].update(values)
    out["seed"] = seed
    out["train"]["cpu_threads"] = 1  # checkpoint_every stays: each checkpoint starts a fresh batch stream
    if steps is not None:
        out["train"]["steps"] = steps
    out["generate"].update(n_candidates=1, seeds=[0])
    # the mel reading below is the score; the audio reading (Griffin-Lim of the training clips) only if asked
    out["evaluate"].update(conditioning=audio_reading)
    out["train"]["keep_eval_models"] = heard_as  # --heard-as reads every evaluated step's model file ...
    if heard_as and not out["train"]["eval_every"]:  # ... so an overlay that never evaluates evaluates its last step
        out["train"]["eval_every"] = out["train"]["steps"]
    return out


def build_data(params: dict, root: Path) -> dict:
    """acquire -> resample -> mel shards -> dev set, once for every run."""
    from scenesynth.data.acquire import acquire
    from scenesynth.data.dev_set import build_dev_set
    from scenesynth.data.resample import resample_manifest
    from scenesynth.features.mel_shards import build_mel_shards

    raw = acquire(params, root / "raw")
    resample_manifest(params, raw, root / "audio48k")
    build_mel_shards(params, root / "audio48k" / "manifest.parquet", root / "mels")
    build_dev_set(params, root / "dev", raw_manifest=raw)
    return {"raw": raw, "mels": root / "mels", "dev": root / "dev" / "manifest.parquet"}


def one_run(job: tuple) -> dict:
    """Train, generate and score one (variant, seed); runs in its own process, on one thread. What the
    stages print goes to stderr: stdout is the table or the JSON."""
    with contextlib.redirect_stdout(sys.stderr):
        return _one_run(job)


def _one_run(job: tuple) -> dict:
    import torch

    torch.set_num_threads(1)
    from scenesynth.data.manifest import read_dev_prompts, read_manifest
    from scenesynth.evaluation.conditioning_score import load_real_clips, mel_reading
    from scenesynth.evaluation.evaluate import evaluate
    from scenesynth.inference.generate import generate_dev_set
    from scenesynth.text.cache import build_text_cache
    from scenesynth.training import loop
    from scenesynth.training.periodic_eval import EvalInputs

    params, variant, seed, data, root = job
    run = root / f"{variant}-{seed}"
    run.mkdir(parents=True, exist_ok=True)
    params = {**params, "mlflow": {**params["mlflow"], "tracking_uri": f"sqlite:///{run / 'mlflow.db'}"}}
    manifest = read_manifest(data["raw"])
    train = manifest[manifest["split"] == "train"]
    started = time.perf_counter()
    build_text_cache(params, list(train["caption"]), run / "text")
    # the in-training evaluation only where the exported step depends on it (it does not change training); its
    # mel reading (the demo's select_by) needs evaluate.conditioning, which with_variant turns off for the score
    evaluation = (EvalInputs(data["dev"], data["raw"], root / "no_pretrained", run / "eval-embeddings")
                  if params["train"]["export"] == "best" or params["train"]["keep_eval_models"] else None)
    trained_summary = loop.train({**params, "evaluate": {**params["evaluate"], "conditioning": True}}, data["mels"],
                                 run / "text", run / "train", run / "train.json", evaluation=evaluation)
    trained = time.perf_counter()
    model = run / "train" / "model.pt"
    generate_dev_set(params, model, data["dev"], run / "generated", pretrained=root / "no_pretrained")
    scores = evaluate(params, run / "generated", data["dev"], run / "metrics", pretrained=root / "no_pretrained",
                      train_manifest=data["raw"], cache=run / "embeddings", model=model)
    fad = scores["fad"]
    audio = {}
    if params["evaluate"]["conditioning"]:  # evaluate scored both readings: its mel reading is the one below
        reading, heard = scores["conditioning"], scores["conditioning"]["audio"]
        audio = {"audio_fg_accuracy": heard["generated"]["fg_accuracy"], "audio_bg_accuracy": heard["generated"]["bg_accuracy"],
                 "audio_fg_ceiling": heard["ceiling"]["fg_accuracy"], "audio_fg_per_kind": heard["generated"]["fg_per_kind"]}
    dev = read_dev_prompts(data["dev"])
    # the real clips the mel reading's readers are fitted on, read once for the score and --heard-as
    real = (load_real_clips(params, train, dev)
            if not params["evaluate"]["conditioning"] or params["train"]["keep_eval_models"] else None)
    if not params["evaluate"]["conditioning"]:
        reading = mel_reading(params, real, dev, model, root / "no_pretrained")
    g = reading["generated"]
    heard_as = heard_as_by_step(params, real, dev, root, run) if params["train"]["keep_eval_models"] else {}
    return {**({"heard_as": heard_as} if heard_as else {}),
            "variant": variant, "seed": seed, "fg_accuracy": g["fg_accuracy"], "bg_accuracy": g["bg_accuracy"],
            "fg_chance": g["fg_chance"], "bg_chance": g["bg_chance"], "fg_ceiling": reading["ceiling"]["fg_accuracy"],
            "bg_ceiling": reading["ceiling"]["bg_accuracy"], "diversity": reading["diversity"]["ratio"],
            "peak_excess": reading["peaks"]["excess"],
            "fad": fad["fad_mean"], "fad_over_floor": fad.get("fad_over_floor"), "steps": params["train"]["steps"],
            "fg_per_kind": g["fg_per_kind"], "bg_per_kind": g["bg_per_kind"], "fg_worst_kind": g["fg_worst_kind"],
            **audio, "exported_step": trained_summary.get("best_step") or trained_summary["steps"],
            "train_seconds": round(trained - started, 1), "seconds": round(time.perf_counter() - started, 1)}


def heard_as_by_step(params: dict, real, dev, root: Path, run: Path) -> dict:
    """{step: {kind asked for: {kind heard: clips}}}: each evaluated step's model file (train.keep_eval_models)
    read on the dev prompts by the mel reading, so a lost kind shows what it became."""
    from scenesynth.evaluation.conditioning_score import mel_reading
    from scenesynth.training.periodic_eval import kept_models

    n_z, out = params["evaluate"]["conditioning_z"], {}
    for step, path in kept_models(run / "train" / "checkpoints").items():
        predicted = mel_reading(params, real, dev, path, root / "no_pretrained")["generated"]["fg_predicted"]
        counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        for asked, heard in zip([kind for kind in dev["foreground"] for _ in range(n_z)], predicted):
            counts[str(asked)][str(heard)] += 1
        out[step] = {kind: dict(c.most_common()) for kind, c in sorted(counts.items())}
    return out


def heard_as_table(row: dict) -> str:
    """One run's --heard-as: per evaluated step, each kind's two most frequent labels."""
    steps = sorted(row["heard_as"], key=int)
    kinds = sorted(row["heard_as"][steps[0]])
    lines = [f"{row['variant']} seed {row['seed']}: what each foreground kind is heard as (dev prompts)",
             "| step | " + " | ".join(kinds) + " |", "| --- |" + " --- |" * len(kinds)]
    for step in steps:
        cells = [", ".join(f"{label} {n}" for label, n in list(row["heard_as"][step][kind].items())[:2]) for kind in kinds]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} +- {statistics.stdev(values) if len(values) > 1 else 0.0:.3f}"


def kinds_table(rows: list[dict]) -> str:
    """Foreground accuracy per kind (mean +- std over seeds) and the worst kind's mean, per variant."""
    kinds = sorted(rows[0]["fg_per_kind"])
    lines = ["| variant | " + " | ".join(kinds) + " | worst kind (mean of each run's worst) |",
             "| --- |" + " --- |" * (len(kinds) + 1)]
    for variant in VARIANTS:
        mine = [r for r in rows if r["variant"] == variant]
        if mine:
            worst = mean_std([min(r["fg_per_kind"].values()) for r in mine])
            lines.append(f"| {variant} | " + " | ".join(mean_std([r["fg_per_kind"][k] for r in mine]) for k in kinds)
                         + f" | {worst} |")
    return "\n".join(lines)


def difference(rows: list[dict], variant: str, reference: str, key: str) -> tuple[float, float] | None:
    """Mean of ``key`` over the variant's runs minus the reference's, and its standard error (Welch: the two
    sets of seeds are independent samples of what training does); None below two runs on either side."""
    mine, theirs = ([r[key] for r in rows if r["variant"] == name] for name in (variant, reference))
    if len(mine) < 2 or len(theirs) < 2:
        return None
    error = (statistics.variance(mine) / len(mine) + statistics.variance(theirs) / len(theirs)) ** 0.5
    return statistics.mean(mine) - statistics.mean(theirs), error


def paired_difference(rows: list[dict], variant: str, reference: str, key: str) -> tuple[float, float, int] | None:
    """Seed by seed: mean of (variant - reference) over the seeds both ran, its standard error, and the
    number of seeds. Meaningful only where the two train the same model (a seed fixes the data order and
    the initialisation, and e.g. ``model.ema_decay`` changes only the exported average), so the
    seed-to-seed spread cancels; elsewhere the seeds are unrelated and the unpaired difference applies."""
    mine = {r["seed"]: r[key] for r in rows if r["variant"] == variant}
    theirs = {r["seed"]: r[key] for r in rows if r["variant"] == reference}
    gaps = [mine[seed] - theirs[seed] for seed in sorted(set(mine) & set(theirs))]
    if len(gaps) < 2:
        return None
    return statistics.mean(gaps), statistics.stdev(gaps) / len(gaps) ** 0.5, len(gaps)


def differences_table(rows: list[dict], reference: str) -> str:
    """Each variant against the reference: difference of the means +- its standard error, and how many
    standard errors the foreground difference is (below ~2 it is not told apart from seed-to-seed noise);
    then the seed-by-seed foreground difference (see paired_difference for when it means something)."""
    lines = [f"| variant - {reference} | runs | foreground | foreground / SE | background | diversity | "
             "foreground seed by seed (seeds) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for variant in VARIANTS:
        cells = [difference(rows, variant, reference, key) for key in ("fg_accuracy", "bg_accuracy", "diversity")]
        if variant == reference or cells[0] is None:
            continue
        runs = f"{sum(r['variant'] == variant for r in rows)} / {sum(r['variant'] == reference for r in rows)}"
        ratio = abs(cells[0][0]) / cells[0][1] if cells[0][1] else float("inf")
        paired = paired_difference(rows, variant, reference, "fg_accuracy")
        paired_cell = f"{paired[0]:+.3f} +- {paired[1]:.3f} ({paired[2]})" if paired else "-"
        lines.append(f"| {variant} | {runs} | " + f"{cells[0][0]:+.3f} +- {cells[0][1]:.3f} | {ratio:.1f} | "
                     + " | ".join(f"{d:+.3f} +- {e:.3f}" for d, e in cells[1:]) + f" | {paired_cell} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def table(rows: list[dict], reference: str = "full") -> str:
    lines = ["| variant | runs | foreground | worst seed | background | diversity | peak excess | stand-in FAD | FAD / floor "
             "| s/run |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for variant in VARIANTS:
        mine = [r for r in rows if r["variant"] == variant]
        if not mine:
            continue
        lines.append(f"| {variant} | {len(mine)} | {mean_std([r['fg_accuracy'] for r in mine])} | "
                     f"{min(r['fg_accuracy'] for r in mine):.3f} | "
                     f"{mean_std([r['bg_accuracy'] for r in mine])} | {mean_std([r['diversity'] for r in mine])} | "
                     f"{peak_cell(mine)} | {mean_std([r['fad'] for r in mine])} | "
                     f"{mean_std([r['fad_over_floor'] for r in mine])} | "
                     f"{statistics.mean(r['seconds'] for r in mine):.0f} |")
    heard = [r for r in rows if "audio_fg_accuracy" in r]
    if heard:  # --audio-reading: the generated clips after Griffin-Lim, beside that reading's ceiling
        lines += ["", "| variant | audio foreground | audio background | audio fg ceiling |", "| --- | --- | --- | --- |"]
        for variant in VARIANTS:
            mine = [r for r in heard if r["variant"] == variant]
            if mine:
                lines.append(f"| {variant} | {mean_std([r['audio_fg_accuracy'] for r in mine])} | "
                             f"{mean_std([r['audio_bg_accuracy'] for r in mine])} | "
                             f"{mean_std([r['audio_fg_ceiling'] for r in mine])} |")
    compared = differences_table(rows, reference)
    lines += ["", kinds_table(rows)] + (["", compared] if compared else [])
    lines += [line for row in rows if row.get("heard_as") for line in ("", heard_as_table(row))]
    first = rows[0]
    lines.append(f"\nchance {first['fg_chance']:.3f} / {first['bg_chance']:.3f}, ceiling (real dev clips) "
                 f"{first['fg_ceiling']:.3f} / {first['bg_ceiling']:.3f}; {steps_line(rows)}")
    return "\n".join(lines)


def peak_cell(rows: list[dict]) -> str:
    """Mean +- std of the runs' peak excess (nats above real clips' loudest); rows saved before it was measured have
    none."""
    values = [r["peak_excess"] for r in rows if "peak_excess" in r]
    return mean_std(values) if values else "-"


def steps_line(rows: list[dict]) -> str:
    """Training steps per run, per variant where variants differ (the _900-style variants set their own)."""
    steps: dict[str, set] = {}
    for row in rows:
        steps.setdefault(row["variant"], set()).add(row["steps"])
    if len(set().union(*steps.values())) == 1:
        return f"{rows[0]['steps']} steps per run"
    return "steps per run: " + ", ".join(f"{variant} {' / '.join(str(n) for n in sorted(counts))}"
                                          for variant, counts in steps.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--overlay", default=str(REPO / "config" / "demo.yaml"))
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated; default: all")
    parser.add_argument("--seeds", default="1234,1,2", help="training seeds (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=None, help="default: the overlay's train.steps")
    parser.add_argument("--processes", type=int, default=1, help="runs at once, one thread each")
    parser.add_argument("--workdir", default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--json", action="store_true", help="print the runs as a JSON list")
    parser.add_argument("--audio-reading", action="store_true",
                        help="also the audio reading (generated clips after Griffin-Lim; slower)")
    parser.add_argument("--heard-as", action="store_true",
                        help="keep every evaluated step's model file and print what each foreground kind is heard as")
    parser.add_argument("--reference", default="full", help="the variant the others are compared with (default: full)")
    parser.add_argument("--from-json", nargs="+", metavar="FILE",
                        help="train nothing: the table of the runs earlier --json outputs hold, merged")
    args = parser.parse_args(argv)
    if args.from_json:
        rows = [row for path in args.from_json for row in json.loads(Path(path).read_text())]
        rows.sort(key=lambda r: (list(VARIANTS).index(r["variant"]), r["seed"]))
        print(json.dumps(rows, indent=1) if args.json else table(rows, args.reference))
        return 0
    sys.path.insert(0, str(REPO / "src"))
    from scenesynth.config import load_params

    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    base = load_params(REPO / "params.yaml", args.overlay)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.workdir or tmp)
        data = build_data(base, root / "data")
        jobs = [(with_variant(base, v, int(s), args.steps, args.audio_reading, args.heard_as), v, int(s), data, root)
                for v in variants for s in args.seeds.split(",")]
        with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
            rows = []
            for row in pool.imap_unordered(one_run, jobs):
                rows.append(row)
                print(f"{row['variant']} seed {row['seed']}: fg {row['fg_accuracy']:.3f} bg {row['bg_accuracy']:.3f} "
                      f"div {row['diversity']:.2f} fad {row['fad']:.1f} ({row['fad_over_floor']:.2f} x floor) "
                      f"kinds {row['fg_per_kind']} ({row['seconds']:.0f} s)", file=sys.stderr, flush=True)
    rows.sort(key=lambda r: (list(VARIANTS).index(r["variant"]), r["seed"]))
    print(json.dumps(rows, indent=1) if args.json else table(rows, args.reference))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
