"""The DCASE 2024 Task 7 development set as published: 60 prompts and reference embeddings, no audio.

Zenodo record 10869644 holds ``captions.csv`` and ``embeddings.tar.xz``; the archive unpacks to
``embeddings/<model>/*.npy`` (``panns-wavegram-logmel``, ``vggish``, ``clap-2023``, ...), the
folder layout the organisers' fadtk fork reads as a "baseline" (docs/paper.md section 6). Both
files are fetched at run time (never vendored) and checked against Zenodo's size and md5; the
archive is extracted safely (fetch/tar_archive.py: only regular ``.npy`` files under
``embeddings/<model>/``; a link, an absolute name or ``..`` refuses the whole archive before
anything is written). The `dev-set` stage (data/dev_set.py) turns the result into the
evaluation prompts and the FAD reference.

Layout of the output folder (``paths.DCASE_DEV``)::

    download/captions.csv, download/embeddings.tar.xz, download/zenodo_record.json
    published/embeddings/<model>/<name>.npy     (fadtk's baseline-folder layout)
    report.json                                 (files, models, members left out)
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path, PurePosixPath

import pandas as pd

from scenesynth.fetch.download import download_options, sha256_file
from scenesynth.fetch.tar_archive import extract_tar
from scenesynth.fetch.zenodo import fetch_record
from scenesynth.utils.atomic import write_json

log = logging.getLogger(__name__)

CAPTION_COLUMNS = ("caption", "captions", "prompt", "text", "description")
ID_COLUMNS = ("id", "prompt_id", "file", "filename", "file_name", "fname", "audio", "audio_id", "name")
DOWNLOAD, PUBLISHED, EMBEDDINGS = "download", "published", "embeddings"
EXTRACTED_MARKER = ".extracted_from.json"  # inside published/: which archive (sha256) it was extracted from
_BACKGROUND = re.compile(r"\bwith (?:the |a |an )?(?:sound of )?(\w+)(?: noise| sounds?)? in the background", re.I)
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_AUDIO_SUFFIX = re.compile(r"\.(wav|flac|ogg|mp3|npy)$", re.I)


class DevSetError(ValueError):
    """The development set's files are not what this code expects; the message names the file."""


def background_of(prompt: str) -> str:
    """The background category a challenge prompt names ("... with water in the background"), or "none"."""
    match = _BACKGROUND.search(prompt)
    return match.group(1).lower() if match else "none"


def _pick_column(table: pd.DataFrame, wanted: str | None, candidates: tuple[str, ...], what: str,
                 path: Path) -> str:
    if wanted:
        if wanted not in table.columns:
            raise DevSetError(f"{path}: no column {wanted!r} (data.dcase_dev.{what}_column); has {list(table.columns)}")
        return wanted
    lower = {c.lower().strip().replace(" ", "_"): c for c in table.columns}
    for name in candidates:
        if name in lower:
            return lower[name]
    raise DevSetError(f"{path}: cannot tell which column holds the {what}; columns are {list(table.columns)}. "
                      f"Set data.dcase_dev.{what}_column in params.yaml.")


def read_dev_prompts(path: str | Path, caption_column: str | None = None, id_column: str | None = None
                     ) -> pd.DataFrame:
    """captions.csv -> prompt_id, caption, background (one row per prompt, file order).

    The record's column names could not be checked from here, so the id and caption columns are
    detected among common names (or named by data.dcase_dev.id_column / caption_column). A file
    extension on an id ("001.wav") is dropped: the id names the generated clip.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str).fillna("")
    except (OSError, ValueError) as err:
        raise DevSetError(f"{path}: not a readable CSV ({err})") from err
    caption = _pick_column(table, caption_column, CAPTION_COLUMNS, "caption", path)
    ident = _pick_column(table, id_column, ID_COLUMNS, "id", path)
    ids = [_AUDIO_SUFFIX.sub("", str(v).strip()) for v in table[ident]]
    bad = [v for v in ids if not _SAFE_ID.match(v) or ".." in v]
    if bad:
        raise DevSetError(f"{path}: prompt id {bad[0]!r} is not a safe file name")
    if len(set(ids)) != len(ids):
        raise DevSetError(f"{path}: duplicate prompt ids")
    captions = [str(c).strip() for c in table[caption]]
    if not ids:
        raise DevSetError(f"{path}: no prompts")
    return pd.DataFrame({"prompt_id": ids, "caption": captions, "background": [background_of(c) for c in captions]})


def published_member(name: PurePosixPath) -> str | None:
    """None for an ``embeddings/<model>/<file>.npy`` member of the archive, else why it is left out."""
    parts = name.parts
    if len(parts) != 3 or parts[0] != EMBEDDINGS:
        return "not of the form embeddings/<model>/<file>.npy"
    if name.suffix.lower() != ".npy":
        return "not a .npy file"
    if any(part.startswith(".") for part in parts):
        return "a hidden file (e.g. macOS metadata)"
    return None


def published_models(dcase_dir: str | Path) -> dict[str, Path]:
    """The model folders of the extracted archive: {model name: folder of its .npy files}."""
    root = Path(dcase_dir) / PUBLISHED / EMBEDDINGS
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if p.is_dir()}


def fetch_dcase_dev(params: dict, out_dir: str | Path) -> dict:
    """The `fetch-dcase-dev` stage: download captions.csv and embeddings.tar.xz (md5 checked),
    extract the embeddings safely, check the prompts parse, and write ``report.json``."""
    cfg, out_dir = params["data"]["dcase_dev"], Path(out_dir)
    wanted = [cfg["captions_file"], cfg["embeddings_file"]]
    files = {p.name: p for p in fetch_record(cfg["api"], cfg["record"], out_dir / DOWNLOAD, keys=wanted,
                                            **download_options(params))}
    archive = files[cfg["embeddings_file"]]
    archive_sha256 = sha256_file(archive)
    marker = out_dir / PUBLISHED / EXTRACTED_MARKER
    previous = json.loads(marker.read_text()) if marker.is_file() else {}
    if previous.get("sha256") == archive_sha256:
        skipped = previous.get("skipped", [])
        log.info("%s: already extracted", archive)
    else:
        extraction = extract_tar(archive, out_dir / PUBLISHED, published_member)
        skipped = [{"member": name, "reason": reason} for name, reason in extraction.skipped]
        write_json(marker, {"archive": archive.name, "sha256": archive_sha256, "skipped": skipped})
    models = {name: len(list(folder.glob("*.npy"))) for name, folder in published_models(out_dir).items()}
    if not models:
        raise DevSetError(f"{archive}: no embeddings/<model>/*.npy members; nothing to use as FAD reference")
    prompts = read_dev_prompts(files[cfg["captions_file"]], cfg["caption_column"], cfg["id_column"])
    report = {"record": cfg["record"], "files": {name: {"sha256": sha256_file(path), "size": path.stat().st_size}
                                                 for name, path in sorted(files.items())},
              "prompts": len(prompts), "backgrounds": prompts["background"].value_counts().to_dict(),
              "models": models, "members_left_out": skipped}
    write_json(out_dir / "report.json", report)
    log.info("DCASE dev set: %d prompts; published embeddings of %s", len(prompts), models)
    return report
