"""`scenesynth <verb>`: the command line that Snakemake rules, DVC and users all call.

Every verb reads params.yaml (plus overlay) through one loader, so a rule and a
hand-run command with the same files do the same thing.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from scenesynth import paths
from scenesynth.config import ConfigError, load_params
from scenesynth.pretrained.models import PIPELINE_MODELS
from scenesynth.training.stop_signals import RESUMABLE_EXIT, TrainingStopped
from scenesynth.utils.atomic import sweep_leftovers

log = logging.getLogger("scenesynth")


def _params(args: argparse.Namespace) -> dict:
    return load_params(args.params, args.overlay)


def cmd_check_config(args: argparse.Namespace) -> None:
    params = _params(args)
    print(f"{args.params}: valid (overlay: {params['overlay']}, data.source: {params['data']['source']})")


def cmd_acquire(args: argparse.Namespace) -> None:
    from scenesynth.data.acquire import acquire

    manifest = acquire(_params(args), args.out, {"audiocaps": args.audiocaps, "wavcaps": args.wavcaps})
    log.info("manifest written: %s", manifest)


def cmd_fetch_audiocaps_csv(args: argparse.Namespace) -> None:
    from scenesynth.data.audiocaps import fetch_audiocaps_csvs

    for split, path in fetch_audiocaps_csvs(_params(args), args.out).items():
        log.info("AudioCaps %s CSV: %s", split, path)


def cmd_fetch_audiocaps_audio(args: argparse.Namespace) -> None:
    from scenesynth.data.audiocaps import fetch_audiocaps_clips

    report = fetch_audiocaps_clips(_params(args), args.csv, args.out)
    log.info("AudioCaps: %d clips in the manifest (%d unreadable)", report["clips"], report["unreadable"])


def cmd_fetch_pretrained(args: argparse.Namespace) -> None:
    from scenesynth.pretrained.fetch import fetch_for_pipeline

    log.info("%s ready in %s", args.name, fetch_for_pipeline(_params(args), args.name, args.out))


def cmd_fetch_dcase_dev(args: argparse.Namespace) -> None:
    from scenesynth.data.dcase_dev import fetch_dcase_dev

    log.info("DCASE 2024 Task 7 dev set: %s", fetch_dcase_dev(_params(args), args.out))


def cmd_dev_set(args: argparse.Namespace) -> None:
    from scenesynth.data.dev_set import build_dev_set

    reference = build_dev_set(_params(args), args.out, raw_manifest=args.manifest, dcase_dir=args.dcase)
    log.info("dev set: %d prompts, FAD reference: %s", reference["n_prompts"], reference["kind"])


def cmd_fetch_wavcaps(args: argparse.Namespace) -> None:
    from scenesynth.data.wavcaps import fetch_wavcaps

    report = fetch_wavcaps(_params(args), args.audiocaps_csv, args.out)
    log.info("WavCaps: %s", report)


def cmd_resample(args: argparse.Namespace) -> None:
    from scenesynth.data.resample import resample_manifest

    out, rejects = resample_manifest(_params(args), args.manifest, args.out, args.workers)
    log.info("resampled %d clips, rejected %d (see %s)", len(out), len(rejects), Path(args.out) / "rejects.csv")


def cmd_mel(args: argparse.Namespace) -> None:
    from scenesynth.features.mel_shards import build_mel_shards

    index = build_mel_shards(_params(args), args.manifest, args.out, args.workers)
    log.info("wrote %d samples in %d shards to %s", index["n_samples"], len(index["shards"]), args.out)


def cmd_text(args: argparse.Namespace) -> None:
    from scenesynth.text.cache import build_manifest_text_cache

    info = build_manifest_text_cache(_params(args), args.manifest, args.out, Path(args.pretrained) / "clap_text")
    log.info("text cache (%s encoder): %d captions, %d tokens", info["encoder"], info["n_captions"], info["n_vocab"])


def cmd_train(args: argparse.Namespace) -> None:
    from scenesynth.training.launch import run_under_torchrun
    from scenesynth.training.loop import train
    from scenesynth.training.periodic_eval import EvalInputs

    params = _params(args)
    if run_under_torchrun(params["train"], args.argv):  # train.processes_per_node x nodes > 1: the same command
        return
    train_manifest = Path(args.train_manifest) if Path(args.train_manifest).is_file() else None
    evaluation = EvalInputs(Path(args.dev_manifest), train_manifest, Path(args.pretrained), Path(args.cache))
    train(params, shards=args.shards, text=args.text, run_dir=args.out, metrics_path=args.metrics,
          max_steps=args.max_steps, evaluation=evaluation)


def cmd_generate(args: argparse.Namespace) -> None:
    from scenesynth.inference.generate import generate_dev_set

    generate_dev_set(_params(args), model_path=args.model, manifest=args.manifest, out_dir=args.out,
                     pretrained=args.pretrained)


def check_synthesize(args: argparse.Namespace) -> None:
    """Every argument of `synthesize` checked before --out is swept or the model loaded (main)."""
    from scenesynth.inference.protocol import ModelFileError
    from scenesynth.inference.synthesize import plan_synthesis
    from scenesynth.inference.synthesizer import check_settings

    params = _params(args)
    args.plan = plan_synthesis(params, args.out, prompts=args.prompt, prompts_file=args.prompts, seed=args.seed)
    check_settings(params, args.format, args.rerank, args.candidates, args.seconds, args.device)
    if not Path(args.model).is_file():
        raise ModelFileError(f"{args.model}: model file not found")


def cmd_synthesize(args: argparse.Namespace) -> None:
    from scenesynth.inference.synthesize import synthesize

    written = synthesize(_params(args), model=args.model, out_dir=args.out, candidates=args.candidates,
                         format=args.format, device=args.device, rerank=args.rerank, vocoder=args.vocoder,
                         seconds=args.seconds, pretrained=args.pretrained, plan=args.plan)
    for path in written:
        print(path)


def cmd_serve(args: argparse.Namespace) -> None:
    from scenesynth.web.serve import serve

    serve(_params(args), model=args.model, host=args.host, port=args.port, device=args.device,
          rerank=args.rerank, vocoder=args.vocoder, seconds=args.seconds, pretrained=args.pretrained)


def check_evaluate(args: argparse.Namespace) -> None:
    """The clips and the dev set are there before the metrics folder and the cache are swept (main)."""
    if not Path(args.generated).is_dir():
        raise FileNotFoundError(f"{args.generated}: no folder of generated clips")
    if not Path(args.manifest).is_file():
        raise FileNotFoundError(f"{args.manifest}: no dev-set manifest (run the dev-set stage)")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from scenesynth.evaluation.evaluate import evaluate

    evaluate(_params(args), generated=args.generated, manifest=args.manifest, metrics_dir=args.out,
             run_dir=args.run, pretrained=args.pretrained, train_manifest=args.train_manifest, cache=args.cache,
             model=args.model, resynth_reference=args.resynth_reference)


def cmd_resynth_reference(args: argparse.Namespace) -> None:
    from scenesynth.evaluation.resynth_reference import build_resynth_reference

    build_resynth_reference(_params(args), manifest=args.manifest, train_manifest=args.train_manifest,
                            out_dir=args.out)


def cmd_report_assets(args: argparse.Namespace) -> None:
    from scenesynth.report.pages import build_report_assets

    build_report_assets(_params(args), generated=args.generated, manifest=args.manifest, metrics_dir=args.metrics,
                        out_dir=args.out)


def cmd_summary(args: argparse.Namespace) -> None:
    from scenesynth.report.summary import print_summary

    print_summary(_params(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scenesynth", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    verbs = parser.add_subparsers(dest="verb", required=True)

    def verb(name: str, func, help_text: str, **paths: str) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help_text)
        sub.add_argument("--params", default="params.yaml", help="params.yaml (default: %(default)s)")
        sub.add_argument("--overlay", default=None, help="overlay YAML merged over params (overrides its `overlay` key)")
        for option, text in paths.items():
            sub.add_argument(f"--{option.replace('_', '-')}", dest=option, required=True, help=text)
        sub.set_defaults(func=func)
        return sub

    verb("check-config", cmd_check_config, "validate params.yaml (+ overlay) and exit")
    acquire_cmd = verb("acquire", cmd_acquire, "produce raw audio + manifest for data.source", out="output folder")
    acquire_cmd.add_argument("--audiocaps", default=None, help="AudioCaps manifest (data.source audiocaps_wavcaps)")
    acquire_cmd.add_argument("--wavcaps", default=None, help="WavCaps manifest (data.source audiocaps_wavcaps)")
    fetch_model = verb("fetch-pretrained", cmd_fetch_pretrained, "download a pre-trained model for offline use",
                       out="folder holding one sub-folder per model (data/pretrained)")
    fetch_model.add_argument("--name", required=True, choices=PIPELINE_MODELS)
    verb("fetch-dcase-dev", cmd_fetch_dcase_dev,
         "download the DCASE 2024 Task 7 dev set (captions.csv + reference embeddings, extracted safely)",
         out=f"output folder ({paths.DCASE_DEV})")
    dev_set_cmd = verb("dev-set", cmd_dev_set, "the evaluation prompts (manifest.parquet) and the FAD reference "
                       "(reference.json)", out=f"output folder ({paths.DEV})")
    dev_set_cmd.add_argument("--manifest", default=None, help="acquire's manifest (the demo's dev rows)")
    dev_set_cmd.add_argument("--dcase", default=None, help="what fetch-dcase-dev wrote (data.source audiocaps_wavcaps)")
    verb("fetch-audiocaps-csv", cmd_fetch_audiocaps_csv, "download the AudioCaps train/val/test CSVs",
         out="CSV folder")
    verb("fetch-audiocaps-audio", cmd_fetch_audiocaps_audio, "fetch AudioCaps clips (yt-dlp or data.audiocaps.audio_dir)",
         csv="AudioCaps CSV folder", out="output folder")
    verb("fetch-wavcaps", cmd_fetch_wavcaps, "download + extract WavCaps AudioSet_SL, apply the blacklists",
         audiocaps_csv="AudioCaps CSV folder (its test split is always excluded)", out="output folder")
    for parallel in (
        verb("resample", cmd_resample, "resample a manifest's clips to audio.sample_rate",
             manifest="input manifest.parquet", out="output folder"),
        verb("mel", cmd_mel, "log-mel WebDataset shards of the training split",
             manifest="48 kHz manifest.parquet", out="shard folder"),
    ):
        parallel.add_argument("--workers", type=int, default=None, help="processes (default: params; 0 = all cores)")
    text_cmd = verb("text", cmd_text, "text-embedding cache of every caption", manifest="manifest.parquet",
                    out="cache folder")
    train_cmd = verb("train", cmd_train, "train the GAN (resumes from out/checkpoints/last.pt)",
                     shards="shard folder", text="text cache folder", out="run folder", metrics="metrics JSON path")
    train_cmd.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (testing)")
    train_cmd.add_argument("--dev-manifest", default=f"{paths.DEV}/manifest.parquet",
                           help="the dev set scored every train.eval_every steps (default: %(default)s)")
    train_cmd.add_argument("--train-manifest", default=f"{paths.RAW}/manifest.parquet",
                           help="acquire's manifest: labels for the conditioning score, if any (default: %(default)s)")
    train_cmd.add_argument("--cache", default=paths.EMBEDDING_CACHE,
                           help="embedding cache of the FAD reference (default: %(default)s)")
    generate_cmd = verb("generate", cmd_generate, "generate the dev set", model="model.pt",
                        manifest="manifest with the dev split", out="output folder")
    evaluate_cmd = verb("evaluate", cmd_evaluate, "score a folder of clips against the dev set: FAD, CLAP score, "
                        "per-prompt scores (and the demo's conditioning score)",
                        generated="folder of <prompt id>.wav clips, or of seed<N>/ folders of them")
    evaluate_cmd.add_argument("--manifest", default=f"{paths.DEV}/manifest.parquet",
                              help="the dev set (dev-set stage; reference.json beside it) (default: %(default)s)")
    evaluate_cmd.add_argument("--out", default=paths.METRICS, help="metrics folder (default: %(default)s)")
    evaluate_cmd.add_argument("--run", default=None, help="training run folder: log the metrics to its MLflow run")
    evaluate_cmd.add_argument("--train-manifest", default=None,
                              help="acquire's manifest: the training clips of the demo's conditioning score")
    evaluate_cmd.add_argument("--model", default=None,
                              help="the run's model.pt: its generator's log-mels for the demo's conditioning score")
    evaluate_cmd.add_argument("--cache", default=paths.EMBEDDING_CACHE,
                              help="per-clip embedding cache (default: %(default)s)")
    evaluate_cmd.add_argument("--resynth-reference", default=None,
                              help="resynth-reference's file: the audio reading's real clips, already resynthesised "
                                   f"({paths.RESYNTH}/resynthesised.npz; without it they are made here)")
    verb("resynth-reference", cmd_resynth_reference, "the conditioning score's audio reading: its real clips "
         "resynthesised (Griffin-Lim), ahead of evaluate", manifest="the dev set's manifest.parquet",
         train_manifest="acquire's manifest (the training clips and their labels)",
         out=f"output folder ({paths.RESYNTH})")
    synthesize_cmd = verb("synthesize", cmd_synthesize, "synthesize any prompt(s) with a trained model: "
                          "one WAV + JSON sidecar each", model="model.pt (runs/train/model.pt)", out="output folder")
    synthesize_cmd.add_argument("prompt", nargs="*", help="prompt(s), each in quotes")
    synthesize_cmd.add_argument("--prompts", default=None, metavar="FILE",
                                help="one prompt per line, or a CSV with an id and a caption column")
    synthesize_cmd.add_argument("--seed", type=int, default=None, help="default: synthesize.seed")
    synthesize_cmd.add_argument("--candidates", type=int, default=None, help="default: generate.n_candidates")
    synthesize_cmd.add_argument("--format", default=None, choices=["challenge", "full"],
                                help="challenge: generate.crop_seconds at generate.sample_rate, 16-bit; "
                                     "full: the whole clip at the vocoder's rate (default: synthesize.format)")
    synthesize_cmd.set_defaults(check=check_synthesize)
    evaluate_cmd.set_defaults(check=check_evaluate)
    serve_cmd = verb("serve", cmd_serve, "a local web page: type a prompt, pick a seed, hear the clip",
                     model="model.pt (runs/train/model.pt)")
    serve_cmd.add_argument("--host", default=None, help="default: synthesize.host (this machine only)")
    serve_cmd.add_argument("--port", type=int, default=None, help="default: synthesize.port (0: any free port)")
    for uses_model in (synthesize_cmd, serve_cmd):
        uses_model.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default: synthesize.device)")
        uses_model.add_argument("--rerank", default=None, choices=["auto", "clap", "discriminator"],
                                help="auto: CLAP when <pretrained>/clap_rerank is there (default: synthesize.rerank)")
        uses_model.add_argument("--vocoder", default=None, choices=["hifigan", "griffin_lim"],
                                help="default: the one the model file names")
        uses_model.add_argument("--seconds", type=float, default=None,
                                help="challenge format: clip length, at most the model's clip (default: "
                                     "generate.crop_seconds, capped at the model's clip)")
    for uses_models in (text_cmd, train_cmd, generate_cmd, evaluate_cmd, synthesize_cmd, serve_cmd):
        uses_models.add_argument("--pretrained", default=paths.PRETRAINED,
                                 help="folder of the fetched pre-trained models (default: %(default)s)")
    verb("report-assets", cmd_report_assets, "listening-report pages (one per dev prompt) and the metrics page",
         generated="generated folder", manifest="manifest with the dev split and references",
         metrics="metrics folder", out="report assets folder")
    verb("summary", cmd_summary, "print where the audio, metrics and MLflow runs are")
    return parser


def owned_outputs(args: argparse.Namespace) -> list[Path]:
    """The folders and files a verb writes: the leftovers of an interrupted run there are swept when
    it starts again (utils/atomic.py), so a resumed run ends with what an uninterrupted one has."""
    if args.verb == "fetch-pretrained":  # data/pretrained is shared by one job per model
        return [Path(args.out) / args.name]
    owned = [Path(args.out)] if getattr(args, "out", None) else []
    if getattr(args, "metrics", None) and args.verb == "train":
        owned.append(Path(args.metrics))
    if getattr(args, "cache", None):  # evaluate's embedding cache
        owned.append(Path(args.cache))
    return owned


def main(argv: list[str] | None = None) -> int:
    argv = list(argv) if argv is not None else sys.argv[1:]
    args = build_parser().parse_args(argv)
    args.argv = argv  # e.g. for `train` to re-run itself under torchrun
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if getattr(args, "check", None):  # arguments first: a failing command sweeps and writes nothing
            args.check(args)
        sweep_leftovers(*owned_outputs(args))
        args.func(args)
    except ConfigError as err:
        print(f"scenesynth: configuration error: {err}", file=sys.stderr)
        return 2
    except TrainingStopped as stopped:  # SIGTERM/SIGUSR1: a checkpoint at this step; the same command resumes
        print(f"scenesynth {args.verb}: {stopped}", file=sys.stderr)
        return RESUMABLE_EXIT
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        print(f"scenesynth {args.verb}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
