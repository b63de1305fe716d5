"""transformers' LAION-CLAP (``ClapModel``) from a fetched folder, offline: shared by the text encoder
(text/clap.py) and the re-ranker (inference/rerank.py)."""

from __future__ import annotations

import os
from pathlib import Path

from scenesynth.pretrained.models import MissingPretrained, fetch_hint


def offline_transformers():
    """Import transformers for loading local folders only (never touching the network)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    import transformers

    transformers.utils.logging.disable_progress_bar()
    return transformers


def load_clap_model(folder: str | os.PathLike, device: str = "cpu", parts: tuple[str, ...] = ("text", "audio")):
    """``ClapModel`` from a local folder, in eval mode; refuses silently re-initialised weights."""
    transformers = offline_transformers()
    model, info = transformers.ClapModel.from_pretrained(str(folder), local_files_only=True,
                                                         output_loading_info=True)
    prefixes = tuple(p for part in parts for p in (f"{part}_model.", f"{part}_projection."))
    buffers = {name for name, _ in model.named_buffers()}
    missing = sorted(k for k in info["missing_keys"] if k.startswith(prefixes) and k not in buffers)
    if missing or info["mismatched_keys"]:
        raise MissingPretrained(f"{folder}: the checkpoint lacks or mis-shapes weights the model needs "
                                f"({(missing or sorted(info['mismatched_keys']))[:5]} ...); delete the folder "
                                f"and {fetch_hint(Path(folder).name, Path(folder).parent)}")
    return model.to(device).eval()
