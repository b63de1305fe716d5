"""What `make demo` prints at the end: where the audio, metrics and MLflow runs are."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from scenesynth import paths
from scenesynth.evaluation.fd_floor import floor_line
from scenesynth.evaluation.conditioning import conditioning_line, per_kind_line
from scenesynth.data.report import REPORT_NAME, headline, read_data_report

EXAMPLE_PROMPT = "a siren wailing with traffic in the background"  # words the demo's captions use
SYNTHESIZED = "outputs/synth"                                       # where the printed line writes


def _read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def print_summary(params: dict) -> None:
    metrics = Path(paths.METRICS)
    fad, cond, train, clap = (_read(metrics / n) for n in ("fad.json", "conditioning.json", "train.json",
                                                           "clap_score.json"))
    generated = Path(paths.GENERATED)
    n_wavs = len(list(generated.glob("seed*/*.wav")))
    print("\nscenesynth: run finished")
    data = read_data_report(Path(paths.RAW) / REPORT_NAME)
    if data:
        print(f"  data            : {headline(data)} ({paths.RAW}/{REPORT_NAME})")
    print(f"  generated audio : {generated}/seed*/<prompt id>.wav ({n_wavs} files)")
    print(f"  metrics         : {metrics}/train.json, fad.json, clap_score.json, per_prompt.csv, conditioning.json")
    if fad:
        note = "offline stand-in, NOT comparable with the paper" if fad.get("stand_in") else "paper's embedding"
        print(f"  FAD ({fad['embedding']}, {note}): {fad['fad_mean']:.3f} +- {fad['fad_std']:.3f}"
              f"  [paper {fad['paper_fad']}, baseline {fad['baseline_fad']}]")
        if fad.get("real_floor"):
            print(f"  {floor_line(fad)}")
    if clap:
        print(f"  CLAP score      : {clap['clap_score_mean']:.4f} +- {clap['clap_score_std']:.4f}" if clap.get("computed")
              else f"  CLAP score      : not computed ({clap.get('reason')})")
    if cond.get("generated"):
        print(f"  {conditioning_line(cond)}")
        if cond["generated"].get("fg_per_kind"):
            print(f"  {per_kind_line(cond)}")
    timing = _read(Path(paths.RUN) / paths.TIMING_FILE)
    if train:
        speed = f", {timing['seconds_per_step']:.2f} s/step" if timing else ""
        print(f"  training        : {train['steps']} steps{speed} on {train['device']}")
    print(f"  MLflow runs     : {params['mlflow']['tracking_uri']} "
          f"(browse: mlflow ui --backend-store-uri {params['mlflow']['tracking_uri']})")
    report = Path(paths.REPORT)
    if (report / "metrics.html").is_file():
        print(f"  listening pages : {report}/prompts/<prompt id>.html, {report}/metrics.html "
              f"(one file: snakemake --report report.html --config overlay=<the overlay used>)")
    print(f"  logs            : {paths.LOGS}/, benchmarks: {paths.BENCHMARKS}/")
    model = Path(paths.RUN) / "model.pt"
    if model.is_file():
        print(f"  your own prompts: {synthesize_command(params, model)}")
        print(f"  in a browser    : {synthesize_command(params, model, verb='serve')}")


def synthesize_command(params: dict, model: Path, verb: str = "synthesize") -> str:
    """A `scenesynth synthesize` (or `serve`) line that runs as printed from the project folder."""
    words = ["scenesynth", verb] + ([EXAMPLE_PROMPT] if verb == "synthesize" else []) + ["--model", str(model)]
    if verb == "synthesize":
        words += ["--out", SYNTHESIZED]
    if params.get("overlay"):
        words += ["--overlay", str(params["overlay"])]
    return shlex.join(words)
