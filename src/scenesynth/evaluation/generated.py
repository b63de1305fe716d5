"""Which clips of a folder `scenesynth evaluate` scores, and every file it does not, with the reason.

Two layouts: ``seed<N>/<prompt id>.<audio>`` (the generate stage's: one FAD per seed) or a folder of
``<prompt id>.<audio>`` (another system's outputs: one set, labelled "all"). Scoring something other
than what the user meant is the silent failure this module exists to prevent, so nothing is dropped
without a word: loose clips beside seed folders, other folders, a second file for one prompt id,
files named after no prompt and files that are not audio are all listed (``left_out``: path and
reason), and two folders for one seed (``seed01/`` and ``seed1/``) are an error, not two seeds.
"""

from __future__ import annotations

import re
from pathlib import Path

from scenesynth.audio_io import AUDIO_SUFFIXES

SEED_FOLDER = re.compile(r"^seed(\d+)$")
PREFERRED_SUFFIX = ".wav"  # the one scored when a prompt id has several audio files (the pipeline writes WAV)


class GeneratedFolderError(FileNotFoundError):
    """The folder cannot be scored as it stands (missing clips, one seed twice); the message says which."""


def _seed_folders(folder: Path) -> dict[str, Path]:
    seeds: dict[str, Path] = {}
    for sub in sorted(d for d in folder.iterdir() if d.is_dir() and SEED_FOLDER.match(d.name)):
        label = str(int(SEED_FOLDER.match(sub.name).group(1)))
        if label in seeds:
            raise GeneratedFolderError(f"{seeds[label]} and {sub}: both are seed {label}; keep one (each seed is "
                                       f"one FAD, and two folders of one seed would be counted twice)")
        seeds[label] = sub
    return dict(sorted(seeds.items(), key=lambda item: int(item[0])))


def _clips(folder: Path, keys: set[str], left_out: list[dict]) -> dict[str, Path]:
    """{prompt id: the clip scored} of one set; everything else in ``folder`` goes to ``left_out``."""
    by_stem: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_dir():
            left_out.append({"path": str(path), "reason": "a folder inside a set of clips (not scored)"})
        elif path.suffix.lower() not in AUDIO_SUFFIXES:
            left_out.append({"path": str(path), "reason": f"not an audio file ({', '.join(AUDIO_SUFFIXES)})"})
        elif path.stem not in keys:
            left_out.append({"path": str(path), "reason": "named after no dev prompt id"})
        else:
            by_stem.setdefault(path.stem, []).append(path)
    chosen = {}
    for stem, paths in by_stem.items():
        paths.sort(key=lambda p: (p.suffix.lower() != PREFERRED_SUFFIX, p.name))
        chosen[stem] = paths[0]
        left_out += [{"path": str(p), "reason": f"another file for prompt id {stem} ({paths[0].name} is scored)"}
                     for p in paths[1:]]
    return chosen


def generated_sets(folder: str | Path, keys: list[str]) -> tuple[dict[str, dict[str, Path]], list[dict]]:
    """({seed: {prompt id: clip}}, [{path, reason}] of every file and folder not scored)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GeneratedFolderError(f"{folder}: no folder of generated clips")
    seeds, wanted, left_out = _seed_folders(folder), set(keys), []
    if seeds:
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES:
                left_out.append({"path": str(path), "reason": "a clip beside seed<N>/ folders: only those are scored"})
            elif path.is_dir() and not SEED_FOLDER.match(path.name):
                left_out.append({"path": str(path), "reason": "a folder not named seed<N>/ (not scored)"})
            elif path.is_file():
                left_out.append({"path": str(path), "reason": "not an audio file (e.g. a record of the run)"})
    sets = {}
    for label, sub in (seeds or {"all": folder}).items():
        clips = _clips(sub, wanted, left_out)
        missing = [k for k in keys if k not in clips]
        if missing:
            raise GeneratedFolderError(f"{sub / (missing[0] + '.wav')}: generated clip missing ({len(missing)} of "
                                       f"{len(keys)} prompts); run the generate stage, or name each clip after its "
                                       f"prompt id")
        sets[label] = {k: clips[k] for k in keys}
    return sets, left_out


def left_out_lines(left_out: list[dict], shown: int = 10) -> list[str]:
    """What `scenesynth evaluate` prints about what it did not score (all of it is in fad.json): each
    audio file and folder with its reason, files that are not audio (a run's records) as one count."""
    if not left_out:
        return []
    not_audio = [item for item in left_out if item["reason"].startswith("not an audio file")]
    listed = [item for item in left_out if not item["reason"].startswith("not an audio file")]
    lines = [f"left out (not scored; all listed in fad.json, generated.left_out): {len(listed)} clip(s) or "
             f"folder(s), {len(not_audio)} file(s) that are not audio"]
    lines += [f"  {item['path']}: {item['reason']}" for item in listed[:shown]]
    if len(listed) > shown:
        lines.append(f"  ... and {len(listed) - shown} more")
    return lines
