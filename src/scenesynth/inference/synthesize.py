"""`scenesynth synthesize`: prompts from the command line or a file -> one WAV + JSON sidecar each.

Layout as the generate stage's: ``<out>/seed<S>/<name>.wav``, where the name is the prompt's id
(a CSV with an id column, e.g. the challenge's captions.csv) or its position and a slug of its
words (``003_a_siren_wailing...``). The sidecar ``<name>.json`` records the prompt, the seed, the
settings, every candidate's (and crop's) score and the model's sha256.

Every prompt is checked before the model is loaded, so bad input costs nothing and leaves
nothing. Each WAV is written atomically, then its sidecar: a clip whose sidecar matches the
request is complete and is not made again, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from scenesynth import paths
from scenesynth.audio_io import encode16_bytes
from scenesynth.data.dcase_dev import read_dev_prompts
from scenesynth.inference.synthesizer import (PromptError, Synthesizer, check_prompts, check_seed,
                                              prompt_stream)
from scenesynth.utils.atomic import atomic_path, write_json

log = logging.getLogger(__name__)
SLUG_CHARS = 48


def read_prompt_file(path: str | Path, params: dict) -> tuple[list[str | None], list[str], list[str]]:
    """(ids or None, prompts, labels for error messages) of a prompts file.

    ``.csv``: a caption column and an id column (found by name as for the challenge's captions.csv,
    or data.dcase_dev.caption_column / id_column); ids must be safe file names and unique.
    Anything else: UTF-8 text, one prompt per line, blank lines skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: prompts file not found")
    if path.suffix.lower() == ".csv":
        dev_cfg = params["data"]["dcase_dev"]
        table = read_dev_prompts(path, dev_cfg["caption_column"], dev_cfg["id_column"])
        ids = [str(i) for i in table["prompt_id"]]
        return ids, list(table["caption"]), [f"{path}: prompt {i!r}" for i in ids]
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise PromptError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    # Lines end at \n only (\r\n too): other separators that str.splitlines honours are control
    # characters, which check_prompt names instead of silently cutting a prompt in two.
    lines = [(number, line.removesuffix("\r")) for number, line in enumerate(text.split("\n"), start=1)]
    lines = [(number, line) for number, line in lines if line.strip()]
    if not lines:
        raise PromptError(f"{path}: no prompts in it (one per line)")
    return [None] * len(lines), [line for _, line in lines], [f"{path} line {number}" for number, _ in lines]


def output_names(ids: list[str | None], prompts: list[str]) -> list[str]:
    """The id when there is one, else the position and the prompt's first words (ASCII, file-safe)."""
    width = max(3, len(str(len(prompts))))
    names = []
    for index, (ident, prompt) in enumerate(zip(ids, prompts), start=1):
        if ident is not None:
            names.append(ident)
            continue
        slug = re.sub(r"[^a-z0-9]+", "_", prompt.lower()).strip("_")[:SLUG_CHARS].rstrip("_")
        names.append(f"{index:0{width}d}" + (f"_{slug}" if slug else ""))
    return names


def _already_made(wav: Path, sidecar: Path, request: dict) -> bool:
    if not (wav.is_file() and sidecar.is_file()):
        return False
    try:
        return json.loads(sidecar.read_text()).get("request") == request
    except (json.JSONDecodeError, OSError):
        return False


def synthesize(params: dict, model: str | Path, out_dir: str | Path, prompts: list[str] | None = None,
               prompts_file: str | Path | None = None, seed: int | None = None, candidates: int | None = None,
               format: str | None = None, device: str | None = None, rerank: str | None = None,
               vocoder: str | None = None, pretrained: str | Path = paths.PRETRAINED) -> list[Path]:
    """Write one WAV and one sidecar per prompt; returns the WAV paths, in prompt order."""
    if prompts and prompts_file:
        raise PromptError("give prompts on the command line or a --prompts file, not both")
    if prompts_file:
        ids, texts, labels = read_prompt_file(prompts_file, params)
    else:
        texts = list(prompts or [])
        ids, labels = [None] * len(texts), None
    if not texts:
        raise PromptError("no prompt given: pass one (in quotes) or --prompts FILE")
    texts = check_prompts(texts, params["synthesize"]["max_prompt_chars"], labels)
    seed = check_seed(params["synthesize"]["seed"] if seed is None else seed)
    synth = Synthesizer(model, params, device=device, vocoder=vocoder, rerank=rerank, candidates=candidates,
                        format=format, pretrained=pretrained)
    settings = synth.describe()
    folder = Path(out_dir) / f"seed{seed}"
    written = []
    for name, prompt in zip(output_names(ids, texts), texts):
        wav, sidecar = folder / f"{name}.wav", folder / f"{name}.json"
        request = {"prompt": prompt, "seed": seed, **settings}
        if _already_made(wav, sidecar, request):
            log.info("%s: already made for this prompt, seed, model and settings", wav)
        else:
            clip, choice = synth.render(prompt, seed, prompt_stream(prompt))
            with atomic_path(wav) as tmp:
                tmp.write_bytes(encode16_bytes(clip, synth.sample_rate, "WAV"))
            write_json(sidecar, {"request": request, "choice": choice})  # last: it marks the clip complete
            log.info("%s: %r", wav, prompt[:80])
        written.append(wav)
    return written
