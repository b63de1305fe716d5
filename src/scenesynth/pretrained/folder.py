"""A fetched checkpoint folder: is it complete and untampered, and which checkpoint does it hold."""

from __future__ import annotations

import json
import os
from pathlib import Path

from scenesynth.fetch.download import ChecksumMismatch, file_checksum, load_checksums, sha256_file
from scenesynth.pretrained.models import CHECKSUMS_FILE, SOURCE_FILE, WEIGHT_FILES


def verify_folder(folder: str | os.PathLike, full: bool = True) -> None:
    """Check every file recorded in ``checksums.json`` (size always, sha256 when ``full``)."""
    folder = Path(folder)
    problems = []
    for name, entry in load_checksums(folder / CHECKSUMS_FILE).items():
        path = folder / name
        if not path.exists():
            problems.append(f"{name} missing")
        elif path.stat().st_size != entry["size"]:
            problems.append(f"{name} has {path.stat().st_size} bytes, recorded {entry['size']}")
        elif full and file_checksum(path)["sha256"] != entry["sha256"]:
            problems.append(f"{name} sha256 differs from the recorded one")
    if problems:
        raise ChecksumMismatch(f"{folder}: " + "; ".join(problems) + " (delete the file and fetch it again)")


def missing_model_files(folder: str | os.PathLike, need_audio: bool = False) -> list[str]:
    """What a local transformers CLAP folder lacks for ``ClapModel`` + tokenizer (+ feature extractor)."""
    folder = Path(folder)
    missing = [] if (folder / "config.json").is_file() else ["config.json"]
    if not any((folder / w).is_file() for w in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES))
    slow_tokenizer = all((folder / f).is_file() for f in ("vocab.json", "merges.txt"))
    if not (folder / "tokenizer.json").is_file() and not slow_tokenizer:
        missing.append("tokenizer.json (or vocab.json + merges.txt)")
    if need_audio and not (folder / "preprocessor_config.json").is_file():
        missing.append("preprocessor_config.json")
    return missing


def checkpoint_record(folder: str | os.PathLike) -> dict:
    """Which checkpoint a folder holds: repo, revision and the weights' sha256 (as recorded when it was
    fetched; hashed here for a folder the user put in place by hand, so that it is named all the same)."""
    folder = Path(folder)
    source = json.loads((folder / SOURCE_FILE).read_text()) if (folder / SOURCE_FILE).is_file() else {}
    sums = load_checksums(folder / CHECKSUMS_FILE)
    weights = next((w for w in WEIGHT_FILES if (folder / w).is_file()), None)
    weights_sha256 = None
    if weights:
        weights_sha256 = sums.get(weights, {}).get("sha256") or sha256_file(folder / weights)
    return {"folder": str(folder), "repo": source.get("repo"), "revision": source.get("revision"),
            "weights_file": weights, "weights_sha256": weights_sha256,
            "sha256": {name: entry.get("sha256") for name, entry in sorted(sums.items())}}
