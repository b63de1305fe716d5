"""The `dev-set` stage: the evaluation prompts and a record of what the FAD reference is.

Every source has a dev set. The paper's (``data.source: audiocaps_wavcaps``) is the DCASE 2024
Task 7 development set as published (data/dcase_dev.py): 60 prompts and reference *embeddings*,
no audio; reference audio a user holds (``data.dcase_dev.reference_audio_dir``) is an option,
never a requirement. The demo's (and any other source's) dev rows come from acquire's manifest
(split ``dev``), with their reference audio. Training never reads this stage's output, so a
failed dev-set download cannot hold back the training data (docs/design.md).

Writes ``<out>/manifest.parquet``: one row per prompt (key = prompt id = the generated clip's
name, caption, split ``dev``, source, background, foreground/background labels for the demo, and
``path`` = its reference audio, or the empty string when it has none: data/manifest.py keeps an
empty path empty), and ``<out>/reference.json``: what the FAD reference is (``kind`` ``audio`` or
``published_embeddings``) with every file's sha256, folders relative to ``<out>``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from scenesynth.audio_io import AUDIO_SUFFIXES
from scenesynth.data.dcase_dev import DevSetError, published_models, read_dev_prompts
from scenesynth.data.manifest import NO_AUDIO, probe_clips, read_manifest, write_manifest
from scenesynth.fetch.download import sha256_file
from scenesynth.utils.atomic import write_json

log = logging.getLogger(__name__)

MANIFEST, REFERENCE = "manifest.parquet", "reference.json"
DCASE_SOURCE = "dcase2024_task7_dev"
ZENODO_RECORD_URL = "https://zenodo.org/records/{record}"


def published_vectors(path: Path) -> np.ndarray:
    """One published ``.npy`` file as [rows, dim] (fadtk stores [1, 2048] per clip for PANNs and
    [frames, 128] for VGGish); an error naming the file when it is not a finite float array."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DevSetError(f"{path}: not a readable .npy array ({err})") from err
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[0] == 0 or not np.issubdtype(array.dtype, np.floating):
        raise DevSetError(f"{path}: expected a float array [rows, dim], got {array.dtype} {array.shape}")
    if not np.isfinite(array).all():
        raise DevSetError(f"{path}: NaN or Inf in the published embedding")
    return array


def describe_published(dcase_dir: Path, out_dir: Path, prompt_ids: list[str]) -> dict:
    """{model: folder (relative to out_dir), count, rows, dim, dtype, paired, sha256 per file}."""
    models = {}
    for name, folder in published_models(dcase_dir).items():
        files = sorted(folder.glob("*.npy"))
        arrays = {f.name: published_vectors(f) for f in files}
        dims = {a.shape[1] for a in arrays.values()}
        if len(dims) > 1:
            raise DevSetError(f"{folder}: embeddings of different sizes {sorted(dims)}")
        models[name] = {
            "folder": os.path.relpath(folder, out_dir), "count": len(files),
            "rows": int(sum(a.shape[0] for a in arrays.values())), "dim": dims.pop() if dims else None,
            "dtype": sorted({str(a.dtype) for a in arrays.values()}),
            "paired_with_prompts": sum(Path(f).stem in set(prompt_ids) for f in arrays),
            "sha256": {f.name: sha256_file(f) for f in files},
        }
    return models


def _user_reference_audio(folder: Path, prompt_ids: list[str]) -> dict[str, str]:
    """``<prompt id>.<audio suffix>`` at any depth of the user's folder, one per prompt."""
    if not folder.is_dir():
        raise DevSetError(f"{folder}: data.dcase_dev.reference_audio_dir is not a folder")
    found = {p.stem: str(p) for p in sorted(folder.rglob("*")) if p.suffix.lower() in AUDIO_SUFFIXES}
    missing = [i for i in prompt_ids if i not in found]
    if missing:
        raise DevSetError(f"{folder}: no reference audio for {len(missing)} of {len(prompt_ids)} prompts "
                          f"(first: {missing[0]!r}; files are named <prompt id>.wav/.flac)")
    return {i: found[i] for i in prompt_ids}


def _audio_reference(rows: pd.DataFrame, source: str) -> dict:
    return {"kind": "audio", "source": source, "count": len(rows),
            "sha256": {key: sha256_file(path) for key, path in zip(rows["key"], rows["path"])}}


def dcase_dev_rows(params: dict, dcase_dir: Path, out_dir: Path) -> tuple[pd.DataFrame, dict]:
    """The published dev set's rows and its reference record."""
    cfg = params["data"]["dcase_dev"]
    captions = dcase_dir / "download" / cfg["captions_file"]
    if not captions.is_file():
        raise DevSetError(f"{captions}: not found (run `scenesynth fetch-dcase-dev --out {dcase_dir}` first)")
    prompts = read_dev_prompts(captions, cfg["caption_column"], cfg["id_column"])
    ids = list(prompts["prompt_id"])
    rows = pd.DataFrame({"key": ids, "caption": prompts["caption"], "background": prompts["background"],
                         "foreground": None, "source": DCASE_SOURCE, "path": NO_AUDIO,
                         "duration": np.nan, "sample_rate": 0, "split": "dev"})
    published = {"record": cfg["record"], "url": ZENODO_RECORD_URL.format(record=cfg["record"]),
                 "captions_sha256": sha256_file(captions), "models": describe_published(dcase_dir, out_dir, ids)}
    if cfg["reference_audio_dir"]:
        rows["path"] = [p for p in _user_reference_audio(Path(cfg["reference_audio_dir"]), ids).values()]
        rows, unreadable = probe_clips(rows.drop(columns=["duration", "sample_rate"]), split="dev")
        if unreadable:
            raise DevSetError(f"{unreadable[0]['path']}: unreadable reference audio ({unreadable[0]['reason']})")
        reference = _audio_reference(rows, f"data.dcase_dev.reference_audio_dir ({cfg['reference_audio_dir']})")
    else:
        if not published["models"]:
            raise DevSetError(f"{dcase_dir}: no published embeddings (run `scenesynth fetch-dcase-dev` again)")
        reference = {"kind": "published_embeddings", "source": f"Zenodo record {cfg['record']} (DCASE 2024 Task 7 "
                                                                "development set, embeddings.tar.xz)"}
    return rows, {**reference, "published": published}


def build_dev_set(params: dict, out_dir: str | Path, raw_manifest: str | Path | None = None,
                  dcase_dir: str | Path | None = None) -> dict:
    """Write ``out_dir/manifest.parquet`` and ``out_dir/reference.json``; returns the reference record."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = params["data"]["source"]
    if source == "audiocaps_wavcaps":
        if dcase_dir is None:
            raise DevSetError("data.source audiocaps_wavcaps evaluates on the DCASE dev set: pass --dcase "
                              "(the folder `scenesynth fetch-dcase-dev` wrote)")
        rows, reference = dcase_dev_rows(params, Path(dcase_dir), out_dir)
    else:
        if raw_manifest is None:
            raise DevSetError(f"data.source {source!r} takes its dev prompts from acquire's manifest: pass --manifest")
        table = read_manifest(raw_manifest)
        rows = table[table["split"] == "dev"].reset_index(drop=True)
        if rows.empty:
            raise DevSetError(f"{raw_manifest}: no dev rows (split == 'dev')")
        reference = _audio_reference(rows, f"the dev split of {raw_manifest}")
    reference["n_prompts"] = len(rows)
    write_manifest(rows, out_dir / MANIFEST)
    write_json(out_dir / REFERENCE, reference)
    log.info("dev set: %d prompts; FAD reference: %s (%s)", len(rows), reference["kind"], reference["source"])
    return reference
