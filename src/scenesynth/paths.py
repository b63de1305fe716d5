"""Where each stage writes, relative to the project root: one layout for Snakemake, DVC and the CLI.

The layout is fixed (not a parameter) so that dvc.yaml can name the same paths; DVC versions
what is in them, experiment by experiment.

Downloads (the paper's datasets, the DCASE dev set) and fetched models are different: they take
days to get again, so no DVC or Snakemake command may delete them. They live in their own folders
(DOWNLOADS, PRETRAINED), which are no DVC output, and which every checkout of the project reads
from its own root: when DVC runs an experiment in a temporary copy of the project
(`dvc exp run --temp`, `dvc queue start`), it sets DVC_ROOT to the project itself, and these two
folders resolve there, so the experiment reads the project's downloads instead of fetching them
again into a folder DVC deletes afterwards.
"""

import os
from pathlib import Path


def project_root() -> Path:
    """The project the current stage belongs to: DVC's DVC_ROOT inside a temporary experiment
    folder, else the working directory (Snakemake, DVC and the CLI all run from the project root)."""
    return Path(os.environ.get("DVC_ROOT") or os.getcwd())


def _in_project(relative: str) -> str:
    """``relative`` as given in the project itself; absolute when the stage runs in a temporary copy."""
    root = os.environ.get("DVC_ROOT")
    if root and Path(root).resolve() != Path.cwd().resolve():
        return str(Path(root) / relative)
    return relative


DOWNLOADS = _in_project("data/downloads")   # fetch_*: the paper's data, never a DVC output
AUDIOCAPS = f"{DOWNLOADS}/audiocaps"        # fetch_audiocaps_*: csv/, audio/, failed.csv, coverage.json, manifest.parquet
WAVCAPS = f"{DOWNLOADS}/wavcaps"            # fetch_wavcaps: meta/, archive/ (zip parts), audio/, report.json, manifest.parquet
DCASE_DEV = f"{DOWNLOADS}/dcase_dev"        # fetch_dcase_dev: download/ (Zenodo files), published/embeddings/<model>/, report.json
PRETRAINED = _in_project("data/pretrained")  # fetch_pretrained: <name>/ (weights, checksums.json, source.json)
EMBEDDING_CACHE = _in_project("data/cache/embeddings")  # evaluate: one float16 embedding per clip, keyed by content
DEV = "data/dev"                     # dev_set: manifest.parquet (the evaluation prompts), reference.json (the FAD reference)
RAW = "data/raw"                     # acquire: manifest.parquet + source.json (+ the demo's synthesised audio)
AUDIO_48K = "data/audio48k"          # resample: 48 kHz WAV (or FLAC) + manifest.parquet + rejects.csv
MELS = "data/mels"                   # mel: WebDataset shards + index.json + rejects.csv
TEXT = "data/text"                   # text: embedding cache (captions.parquet, vocab.npz, info.json)
RUN = "runs/train"                   # train: model.pt, checkpoints/ (resume), samples/, mlflow_run.json, timing.json
RESYNTH = "data/resynth"             # resynth_reference: resynthesised.npz (the audio reading's real clips)
GENERATED = "outputs/dev"            # generate: seed<S>/<prompt id>.wav + generation.json (+ timing.json)
REPORT = "outputs/report"            # report_assets: prompts/<prompt id>.html, metrics.html (snakemake --report)
METRICS = "metrics"                  # headline.json (what `dvc exp show` compares), train.json, fad.json, conditioning.json
LOGS = "logs"                        # one log per Snakemake job
BENCHMARKS = "logs/benchmarks"       # Snakemake `benchmark:` tables of the heavy rules
RESYNTH_FILE = "resynthesised.npz"  # in RESYNTH
TIMING_FILE = "timing.json"          # wall-clock figures, kept apart: the only outputs that differ between identical runs


def locate(path: str | Path) -> Path:
    """A project file as this stage can read it. In a temporary experiment folder, a file that is not
    there (a download a restored manifest points to, the demo's audio of a stage DVC did not rerun)
    is read from the project itself, where it is."""
    path = Path(path)
    root = os.environ.get("DVC_ROOT")
    if path.exists() or not root:
        return path
    try:
        inside = path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path
    return Path(root) / inside
