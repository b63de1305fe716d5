"""The acquire stage: produce the raw training/dev data and its manifest.

`demo` synthesises the embedded demo dataset. The paper's sources (AudioCaps
from YouTube, WavCaps' AudioSet_SL part from Hugging Face; SPEC.md section 7)
need the internet: their own rules fetch them (data/sources.py), and this stage
merges their manifests into one.
"""

from __future__ import annotations

from pathlib import Path

from scenesynth.data.manifest import write_manifest
from scenesynth.utils.atomic import write_json
from scenesynth.utils.parallel import resolve_workers


class SourceUnavailable(RuntimeError):
    """The configured data source cannot be produced here; the message says how to get it."""


def acquire(params: dict, out_dir: str | Path, sources: dict[str, str | Path] | None = None) -> Path:
    """Write ``out_dir/manifest.parquet`` (+ audio) for ``data.source``; return the manifest path.

    For the paper's data, ``sources`` names the per-dataset manifests the fetch rules wrote.
    """
    out_dir = Path(out_dir)
    source = params["data"]["source"]
    if source == "demo":
        from scenesynth.data.demo import synthesize_demo

        cfg = params["data"]["demo"]
        df = synthesize_demo(
            out_dir,
            n_train=cfg["n_train"],
            n_dev=cfg["n_dev"],
            sample_rate=cfg["sample_rate"],
            duration=cfg["duration"],
            seed=params["seed"],
            workers=resolve_workers(cfg["workers"]),
        )
        manifest = out_dir / "manifest.parquet"
        df["path"] = [str(out_dir / p) for p in df["path"]]
        write_manifest(df, manifest)
        write_json(out_dir / "source.json", {"source": "demo", "synthetic": True, "n_clips": len(df)})
        return manifest
    missing = [name for name in ("audiocaps", "wavcaps") if not (sources or {}).get(name)]
    if missing:
        raise SourceUnavailable(
            f"data.source {source!r} merges the AudioCaps and WavCaps manifests; missing: {', '.join(missing)} "
            "(run `snakemake --cores all` to fetch them, or `scenesynth fetch-audiocaps-audio` / "
            "`scenesynth fetch-wavcaps` by hand)."
        )
    from scenesynth.data.sources import merge_training_sources

    return merge_training_sources(params, sources["audiocaps"], sources["wavcaps"], out_dir, sources.get("dev"))
