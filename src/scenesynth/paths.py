"""Where each stage writes, relative to the project root: one layout for Snakemake, DVC and the CLI.

The layout is fixed (not a parameter) so that dvc.yaml can name the same paths;
DVC versions what is in them, experiment by experiment.
"""

RAW = "data/raw"                     # acquire: audio at the source rate + manifest.parquet
AUDIOCAPS = "data/raw/audiocaps"     # fetch_audiocaps_*: csv/, audio/, failed.csv, coverage.json, manifest.parquet
WAVCAPS = "data/raw/wavcaps"         # fetch_wavcaps: meta/, archive/ (zip parts), audio/, report.json, manifest.parquet
DEV = "data/dev"                     # dev_set: manifest.parquet (the evaluation prompts), reference.json (the FAD reference)
DCASE_DEV = "data/dev/dcase"         # fetch_dcase_dev: download/ (Zenodo files), published/embeddings/<model>/, report.json
EMBEDDING_CACHE = "data/cache/embeddings"  # evaluate: one float16 embedding per clip, keyed by content (not a DVC out)
PRETRAINED = "data/pretrained"       # fetch_pretrained: <name>/ (weights, checksums.json, source.json)
AUDIO_48K = "data/audio48k"          # resample: 48 kHz FLAC + manifest.parquet + rejects.csv
MELS = "data/mels"                   # mel: WebDataset shards + index.json + rejects.csv
TEXT = "data/text"                   # text: embedding cache (captions.parquet, vocab.npz, info.json)
RUN = "runs/train"                   # train: model.pt, checkpoints/ (resume), samples/, mlflow_run.json
GENERATED = "outputs/dev"            # generate: seed<S>/<prompt id>.wav + generation.json
REPORT = "outputs/report"            # report_assets: prompts/<prompt id>.html, metrics.html (snakemake --report)
METRICS = "metrics"                  # train.json, fad.json, conditioning.json (DVC metrics)
LOGS = "logs"                        # one log per Snakemake job
BENCHMARKS = "logs/benchmarks"       # Snakemake `benchmark:` tables of the heavy rules
