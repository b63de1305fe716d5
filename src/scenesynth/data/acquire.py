"""The acquire stage: produce the raw training/dev data and its manifest.

`demo` synthesises the embedded demo dataset. The paper's sources (AudioCaps
from YouTube, WavCaps' AudioSet_SL part from Hugging Face; docs/paper.md section 7)
need the internet: their own rules fetch them (data/audiocaps.py, data/wavcaps.py), and this stage
merges their manifests into one. `custom` reads the user's own folder of captioned audio
(data/custom.py). Every source also writes the data report, ``report.json`` (data/report.py).
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import pandas as pd

from scenesynth.data.custom import acquire_custom
from scenesynth.data.manifest import read_manifest, write_manifest
from scenesynth.data.demo.scenes import synthesize_demo
from scenesynth.data.report import data_report, duplicate_groups, write_data_report
from scenesynth.data.wavcaps import apply_blacklist, merge_sources
from scenesynth.utils.atomic import write_json
from scenesynth.utils.parallel import resolve_workers

log = logging.getLogger(__name__)


class SourceUnavailable(RuntimeError):
    """The configured data source cannot be produced here; the message says how to get it."""


def acquire(params: dict, out_dir: str | Path, sources: dict[str, str | Path] | None = None) -> Path:
    """Write ``out_dir/manifest.parquet`` (+ audio) for ``data.source``; return the manifest path.

    For the paper's data, ``sources`` names the per-dataset manifests the fetch rules wrote.
    """
    out_dir = Path(out_dir)
    source = params["data"]["source"]
    if source == "custom":
        return acquire_custom(params, out_dir)
    if source == "demo":
        cfg = params["data"]["demo"]
        df = synthesize_demo(
            out_dir,
            n_train=cfg["n_train"],
            n_dev=cfg["n_dev"],
            sample_rate=cfg["sample_rate"],
            duration=cfg["duration"],
            seed=params["seed"],
            workers=resolve_workers(cfg["workers"]),
            foregrounds=cfg["foregrounds"],
            backgrounds=cfg["backgrounds"],
        )
        manifest = out_dir / "manifest.parquet"
        df["path"] = [str(out_dir / p) for p in df["path"]]
        write_manifest(df, manifest)
        write_json(out_dir / "source.json", {"source": "demo", "synthetic": True, "n_clips": len(df)})
        hashes = [hashlib.sha256(Path(path).read_bytes()).hexdigest() for path in df["path"]]
        write_data_report(out_dir, data_report("demo", read_manifest(manifest), [],
                                               duplicate_groups(list(df["key"]), hashes)))
        return manifest
    missing = [name for name in ("audiocaps", "wavcaps") if not (sources or {}).get(name)]
    if missing:
        raise SourceUnavailable(
            f"data.source {source!r} merges the AudioCaps and WavCaps manifests; missing: {', '.join(missing)} "
            "(run `snakemake --cores all` to fetch them, or `scenesynth fetch-audiocaps-audio` / "
            "`scenesynth fetch-wavcaps` by hand)."
        )
    return merge_training_sources(params, sources["audiocaps"], sources["wavcaps"], out_dir)


_ID_LINE = re.compile(r"^\s*Y?([A-Za-z0-9_-]{11})(?:\.\w+)?\s*(?:[,#].*)?$")


def read_excluded_ids(path: str | Path | None) -> set[str]:
    """YouTube ids (one per line, optional `Y` prefix / suffix / trailing comment) never to train on."""
    if not path:
        return set()
    ids = set()
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _ID_LINE.match(line)
        if not match:
            raise ValueError(f"{path}: line {number}: not a YouTube id: {line.strip()!r}")
        ids.add(match.group(1))
    return ids


def merge_training_sources(params: dict, audiocaps_manifest: str | Path, wavcaps_manifest: str | Path,
                           out_dir: str | Path) -> Path:
    """One manifest of training rows (a video in both sources keeps its AudioCaps row, see
    wavcaps.merge_sources). The evaluation prompts are not in it: the dev-set stage has them, so
    training never waits on the dev-set download (data/dev_set.py)."""
    out_dir = Path(out_dir)
    audiocaps = read_manifest(audiocaps_manifest)
    wavcaps = read_manifest(wavcaps_manifest)
    merged, counts = merge_sources(audiocaps, wavcaps)
    excluded = read_excluded_ids(params["data"]["exclude_ids"])
    merged, counts["excluded_by_list"] = apply_blacklist(merged, excluded)
    manifest = out_dir / "manifest.parquet"
    write_manifest(merged, manifest)
    upstream_rejects = [row for folder in (Path(audiocaps_manifest).parent, Path(wavcaps_manifest).parent)
                        if (folder / "rejects.csv").is_file()
                        for row in pd.read_csv(folder / "rejects.csv", dtype=str).to_dict("records")]
    write_data_report(out_dir, data_report(
        "audiocaps_wavcaps", read_manifest(manifest), upstream_rejects,
        "not computed: one row per YouTube id already (hashing ~160k clips would read them all once more)",
        counts=counts))
    write_json(out_dir / "source.json", {"source": "audiocaps_wavcaps", "synthetic": False, "n_clips": len(merged),
                                         "counts": counts,
                                         "duplicate_rule": "one row per YouTube id; AudioCaps wins over WavCaps; "
                                                           "within AudioCaps the lowest audiocap_id"})
    log.info("training manifest: %d clips (%s)", len(merged), counts)
    return manifest
