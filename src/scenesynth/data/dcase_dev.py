"""The DCASE 2024 Task 7 development set: 60 prompts and their reference audio (docs/paper.md section 6).

Fetched from Zenodo at run time (its licence is unclear, so it is never vendored), every file
checked against Zenodo's size and md5, archives extracted safely (audio members only, no path
may leave the target folder). The prompts become the manifest's `dev` split: the generate stage
names each output after the prompt id, and the evaluate stage uses the audio as FAD reference.
"""

from __future__ import annotations

import logging
import re
import shutil
import zipfile
from pathlib import Path

import pandas as pd

from scenesynth.fetch.archive import extract_flac_members, iter_members, read_member
from scenesynth.audio_io import AUDIO_SUFFIXES
from scenesynth.data.manifest import probe_clips, write_manifest, write_rejects
from scenesynth.fetch.download import download_options
from scenesynth.fetch.zenodo import fetch_record
from scenesynth.utils.atomic import atomic_path, write_json

log = logging.getLogger(__name__)

CAPTION_COLUMNS = ("caption", "prompt", "text", "description")
ID_COLUMNS = ("id", "prompt_id", "file", "filename", "file_name", "audio", "fname")
_BACKGROUND = re.compile(r"\bwith (?:the |a |an )?(?:sound of )?(\w+)(?: noise| sounds?)? in the background", re.I)
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


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
    """captions.csv -> prompt_id, caption, background (one row per prompt)."""
    path = Path(path)
    table = pd.read_csv(path, dtype=str).fillna("")
    caption = _pick_column(table, caption_column, CAPTION_COLUMNS, "caption", path)
    ident = _pick_column(table, id_column, ID_COLUMNS, "id", path)
    raw = [str(v).strip() for v in table[ident]]
    ids = [re.sub(r"\.(wav|flac|ogg|mp3)$", "", v, flags=re.I) for v in raw]
    bad = [v for v in ids if not _SAFE_ID.match(v)]
    if bad:
        raise DevSetError(f"{path}: prompt id {bad[0]!r} is not a safe file name")
    if len(set(ids)) != len(ids):
        raise DevSetError(f"{path}: duplicate prompt ids")
    captions = [str(c).strip() for c in table[caption]]
    return pd.DataFrame({"prompt_id": ids, "caption": captions, "background": [background_of(c) for c in captions]})


def fetch_dcase_dev(params: dict, out_dir: str | Path) -> dict:
    """Download + extract the record, then write ``out_dir/manifest.parquet`` (split `dev`)."""
    cfg, out_dir = params["data"]["dcase_dev"], Path(out_dir)
    files = fetch_record(cfg["api"], cfg["record"], out_dir / "download", keys=cfg["files"],
                         **download_options(params))
    audio_dir = out_dir / "audio"
    rejects = []
    for path in files:
        if zipfile.is_zipfile(path):
            report = extract_flac_members(path, audio_dir, flatten=True, check_audio=True, suffixes=AUDIO_SUFFIXES)
            rejects += [{"key": Path(n).stem, "path": n, "stage": "extract", "reason": r} for n, r in report.rejected]
            for member in iter_members(path):  # captions may sit inside the archive too
                if Path(member.name).name == cfg["captions_file"]:
                    with atomic_path(out_dir / "download" / cfg["captions_file"]) as tmp:
                        tmp.write_bytes(read_member(path, member))
        elif path.suffix.lower() in AUDIO_SUFFIXES:
            audio_dir.mkdir(parents=True, exist_ok=True)
            with atomic_path(audio_dir / path.name) as tmp:
                shutil.copyfile(path, tmp)
    captions_path = out_dir / "download" / cfg["captions_file"]
    if not captions_path.is_file():
        raise DevSetError(f"Zenodo record {cfg['record']}: no {cfg['captions_file']} among {[p.name for p in files]} "
                          "(set data.dcase_dev.captions_file)")
    prompts = read_dev_prompts(captions_path, cfg["caption_column"], cfg["id_column"])
    audio = {p.stem: p for p in audio_dir.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES} if audio_dir.is_dir() else {}
    missing = [i for i in prompts["prompt_id"] if i not in audio]
    if missing:
        raise DevSetError(f"{captions_path}: no reference audio for {len(missing)} of {len(prompts)} prompts "
                          f"(first: {missing[0]!r}) in {audio_dir}")
    table = prompts.assign(key=prompts["prompt_id"], path=[str(audio[i]) for i in prompts["prompt_id"]],
                           source="dcase2024_task7_dev", foreground=None)
    manifest, unreadable = probe_clips(table, split="dev")
    if unreadable:
        raise DevSetError(f"unreadable reference audio: {unreadable[0]['path']}: {unreadable[0]['reason']}")
    write_rejects(rejects, out_dir / "rejects.csv")
    write_manifest(manifest, out_dir / "manifest.parquet")
    report = {"record": cfg["record"], "prompts": len(manifest),
              "backgrounds": manifest["background"].value_counts().to_dict()}
    write_json(out_dir / "report.json", report)
    log.info("DCASE dev set: %d prompts (%s)", len(manifest), report["backgrounds"])
    return report
