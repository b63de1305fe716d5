"""The acquire stage: produce the raw training/dev data and its manifest.

`demo` synthesises the embedded demo dataset. The paper's sources (AudioCaps
from YouTube, WavCaps' AudioSet_SL part from Hugging Face; SPEC.md section 7)
need the internet and are acquired by their own rules; until that code exists
this stage says so instead of pretending.
"""

from __future__ import annotations

from pathlib import Path

from scenesynth.data.manifest import write_manifest
from scenesynth.utils.atomic import write_json
from scenesynth.utils.parallel import resolve_workers


class SourceUnavailable(RuntimeError):
    """The configured data source cannot be produced here; the message says how to get it."""


def acquire(params: dict, out_dir: str | Path) -> Path:
    """Write ``out_dir/manifest.parquet`` (+ audio) for ``data.source``; return the manifest path."""
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
    raise SourceUnavailable(
        f"data.source {source!r}: downloading AudioCaps (YouTube via yt-dlp) and WavCaps AudioSet_SL "
        "(Hugging Face cvssp/WavCaps) is not implemented in this version of the pipeline. "
        "Run the offline demo with `make demo` (overlay config/demo.yaml, data.source: demo)."
    )
