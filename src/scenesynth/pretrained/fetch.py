"""Fetching the pre-trained checkpoints for offline use (the `fetch-pretrained` stage).

Why a folder per checkpoint with a ``checksums.json``: a cluster job must load the weights with no
network (``HF_HUB_OFFLINE=1``), from a folder that was fetched once, resumably, and is known to be
complete and untampered. The first fetch records sha256 + size of each file (trust on first use,
or the pinned hashes of :data:`~scenesynth.pretrained.models.CHECKPOINTS`); every later fetch
verifies against that record and never downloads a verified file again.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from scenesynth.fetch.download import fetch_recorded
from scenesynth.fetch.hf_hub import resolve_url
from scenesynth.fetch.zenodo import fetch_record
from scenesynth.pretrained.models import (CHECKPOINTS, CHECKSUMS_FILE, DEFAULT_PRETRAINED_ROOT, HF_ENDPOINT,
                                          PIPELINE_MODELS, SOURCE_FILE)
from scenesynth.utils.atomic import write_json

log = logging.getLogger(__name__)


def fetch_hf_folder(repo: str, revision: str, files: tuple[str, ...] | list[str], dest: str | os.PathLike,
                    endpoint: str = HF_ENDPOINT, checksums: dict | None = None) -> Path:
    """Fetch ``files`` of ``repo`` at ``revision`` into ``dest`` (a folder ``from_pretrained`` can load).

    ``checksums``: optional pinned ``{file: sha256 or {"sha256", "size"}}``. Writes
    ``dest/checksums.json`` (trust on first use) and ``dest/source.json`` (repo, revision).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    pinned = dict(checksums or {})
    for name in files:
        fetch_recorded(resolve_url(endpoint, repo, revision, name, repo_type="model"), dest / name,
                       dest / CHECKSUMS_FILE, pinned=pinned.get(name), progress=True)
    write_json(dest / SOURCE_FILE, {"repo": repo, "revision": revision, "files": list(files),
                                    "endpoint": endpoint})
    return dest


def fetch_file(url: str, dest: str | os.PathLike, sha256: str | None = None) -> Path:
    """Fetch a single-file checkpoint (Zenodo, GitHub releases); checksums go to ``dest``'s folder."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fetch_recorded(url, dest, dest.parent / CHECKSUMS_FILE, pinned=sha256, progress=True)
    return dest


def fetch_pretrained(name: str, root: str | os.PathLike = DEFAULT_PRETRAINED_ROOT,
                     endpoint: str = HF_ENDPOINT) -> Path:
    """Fetch one of :data:`CHECKPOINTS` into ``root/name`` (the CLI verb ``fetch-pretrained``)."""
    if name not in CHECKPOINTS:
        raise KeyError(f"unknown pretrained checkpoint {name!r}; known: {sorted(CHECKPOINTS)}")
    ckpt = CHECKPOINTS[name]
    return fetch_hf_folder(ckpt.repo, ckpt.revision, ckpt.files, Path(root) / name, endpoint, ckpt.pinned)


def fetch_for_pipeline(params: dict, name: str, root: str | os.PathLike = DEFAULT_PRETRAINED_ROOT) -> Path:
    """Fetch the model the pipeline calls ``name`` into ``root/name``, as params.yaml's `pretrained` says.

    Every folder ends with a ``source.json`` (what was fetched, from where), the rule's output.
    """
    cfg, dest = params["pretrained"], Path(root) / name
    if name in ("clap_text", "clap_rerank"):
        ckpt = CHECKPOINTS[cfg[name]]
        _forget_other_source(dest, ckpt.repo, ckpt.revision)
        return fetch_hf_folder(ckpt.repo, ckpt.revision, ckpt.files, dest, cfg["hf_endpoint"], ckpt.pinned)
    if name == "hifigan_48k":
        vocoder = cfg["hifigan_48k"]
        _forget_other_source(dest, vocoder["repo"], vocoder["revision"])
        return fetch_hf_folder(vocoder["repo"], vocoder["revision"], [vocoder["file"]], dest, cfg["hf_endpoint"])
    if name == "panns":
        panns = cfg["panns"]
        fetch_record(cfg["zenodo_api"], panns["record"], dest, keys=[panns["file"]])  # md5 from Zenodo
        write_json(dest / SOURCE_FILE, {"zenodo_record": panns["record"], "files": [panns["file"]],
                                        "api": cfg["zenodo_api"]})
        return dest
    raise KeyError(f"unknown pretrained model {name!r}; the pipeline uses {list(PIPELINE_MODELS)}")


def _forget_other_source(dest: Path, repo: str, revision: str) -> None:
    """A folder fetched from another repo/revision is emptied first: its checksums describe other files."""
    source = dest / SOURCE_FILE
    if not source.is_file():
        return
    previous = json.loads(source.read_text())
    if (previous.get("repo"), previous.get("revision")) != (repo, revision):
        log.warning("%s holds %s@%s; replacing it with %s@%s", dest, previous.get("repo"), previous.get("revision"),
                    repo, revision)
        for path in dest.iterdir():
            if path.is_file():
                path.unlink()
