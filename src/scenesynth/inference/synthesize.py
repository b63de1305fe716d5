"""`scenesynth synthesize`: prompts from the command line or a file -> one WAV + JSON sidecar each.

Layout as the generate stage's: ``<out>/seed<S>/<name>.wav``, where the name is the prompt's id
(a CSV with an id column, e.g. the challenge's captions.csv) or a slug of its words and a hash of
its exact text (``a_siren_wailing_..._3f9c0e12ab``): prompts that differ only in case, punctuation
or after the slug's 48 characters get different names, and one prompt gets one name in every run.
The sidecar ``<name>.json`` records the request (prompt, seed, settings, the model's sha256), every
candidate's (and crop's) score, the WAV's sha256 and the model's path.

Nothing is half-made or silently replaced: every prompt, name and existing clip is checked before
the model loads (``plan_synthesis``; the CLI runs it before it sweeps --out), and a name whose clip
was made for another request is an error, never overwritten. Each WAV is written atomically, then
its sidecar: a clip whose sidecar holds this request and whose WAV still has the recorded sha256 is
complete and is not made again, so an interrupted run resumes where it stopped, wherever the model
file now lies.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import NamedTuple

from scenesynth import paths
from scenesynth.audio_io import encode16_bytes
from scenesynth.data.dcase_dev import read_dev_prompts
from scenesynth.fetch.download import sha256_file
from scenesynth.inference.synthesizer import (PromptError, Synthesizer, check_prompts, check_seed,
                                              prompt_stream)
from scenesynth.utils.atomic import atomic_path, write_json

log = logging.getLogger(__name__)
SLUG_CHARS = 48
HASH_CHARS = 10
MAX_NAME_CHARS = 100  # + ".json" and the temporary ".<name>.partial-<random>": far under 255-byte file names


class Plan(NamedTuple):
    """What a synthesize run will make, all checked: one (name, prompt) per clip, the seed, the folder."""

    names: list[str]
    prompts: list[str]
    seed: int
    folder: Path


def read_prompt_file(path: str | Path, params: dict) -> tuple[list[str | None], list[str], list[str]]:
    """(ids or None, prompts, labels for error messages) of a prompts file.

    ``.csv``: a caption column and an id column (found by name as for the challenge's captions.csv,
    or data.dcase_dev.caption_column / id_column); ids must be safe file names and unique.
    Anything else: UTF-8 text (a leading byte-order mark is not part of the first prompt), one prompt
    per line, blank lines skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: prompts file not found")
    if path.suffix.lower() == ".csv":
        dev_cfg = params["data"]["dcase_dev"]
        table = read_dev_prompts(path, dev_cfg["caption_column"], dev_cfg["id_column"])
        ids = [str(i) for i in table["prompt_id"]]
        return ids, list(table["caption"]), [f"{path} row {row} (id {i[:40]!r})" for row, i in enumerate(ids, start=2)]
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise PromptError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    # Lines end at \n only (\r\n too): other separators that str.splitlines honours are control
    # characters, which check_prompt names instead of silently cutting a prompt in two.
    lines = [(number, line.removesuffix("\r")) for number, line in enumerate(text.split("\n"), start=1)]
    lines = [(number, line) for number, line in lines if line.strip()]
    if not lines:
        raise PromptError(f"{path}: no prompts in it (one per line)")
    return [None] * len(lines), [line for _, line in lines], [f"{path} line {number}" for number, _ in lines]


def prompt_name(prompt: str) -> str:
    """A slug of the prompt's first words and a hash of its exact text (ASCII, file-safe, lower case)."""
    slug = re.sub(r"[^a-z0-9]+", "_", prompt.lower()).strip("_")[:SLUG_CHARS].rstrip("_")
    digest = hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:HASH_CHARS]
    return f"{slug}_{digest}" if slug else digest


def output_names(ids: list[str | None], prompts: list[str], labels: list[str] | None = None) -> list[str]:
    """The id when there is one, else `prompt_name`; checked so that one name means one prompt: not too
    long for a file name, and no two names that a case-insensitive file system (macOS, Windows) merges."""
    labels = labels or [f"prompt {i}" for i in range(1, len(prompts) + 1)]
    names = [ident if ident is not None else prompt_name(prompt) for ident, prompt in zip(ids, prompts)]
    owner: dict[str, tuple[str, str, str]] = {}
    for name, prompt, label in zip(names, prompts, labels):
        if len(name) > MAX_NAME_CHARS:
            raise PromptError(f"{label}: the id has {len(name)} characters; at most {MAX_NAME_CHARS} make a file name")
        seen = owner.setdefault(name.lower(), (name, prompt, label))
        if seen[1] != prompt:
            raise PromptError(f"{label} and {seen[2]}: two prompts would share the file name {seen[0][:40]!r}"
                              + (" (the ids differ only in case)" if seen[0] != name else ""))
    return names


def _sidecar(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _comparable(request: dict) -> dict:
    """A request without the model's path (sidecars written before the path moved out of it kept it
    there): the model is identified by its sha256, wherever the file lies."""
    model = {key: value for key, value in (request.get("model") or {}).items() if key != "path"}
    return {**request, "model": model}


def plan_synthesis(params: dict, out_dir: str | Path, prompts: list[str] | None = None,
                   prompts_file: str | Path | None = None, seed: int | None = None) -> Plan:
    """Every prompt, the seed and every output name checked, and no name already holding another
    prompt's clip: all before a model is loaded or a file is touched."""
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
    names = output_names(ids, texts, labels)
    folder = Path(out_dir) / f"seed{seed}"
    for name, prompt in zip(names, texts):
        earlier = _sidecar(folder / f"{name}.json")
        if earlier is not None and (earlier.get("request") or {}).get("prompt") != prompt:
            raise PromptError(f"{folder / name}.wav: made earlier for another prompt under the same name; remove it "
                              f"(and its .json) or choose another --out")
    return Plan(names, texts, seed, folder)


def _conflict(earlier: dict, request: dict) -> str | None:
    """What differs between an existing clip's request and this one (None: the same request)."""
    before, now = _comparable(earlier), _comparable(request)
    if before == now:
        return None
    keys = [k for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k)]
    return ", ".join(f"{k} {str(before.get(k))[:60]} -> {str(now.get(k))[:60]}" for k in keys[:3])


def synthesize(params: dict, model: str | Path, out_dir: str | Path, prompts: list[str] | None = None,
               prompts_file: str | Path | None = None, seed: int | None = None, candidates: int | None = None,
               format: str | None = None, device: str | None = None, rerank: str | None = None,
               vocoder: str | None = None, seconds: float | None = None, pretrained: str | Path = paths.PRETRAINED,
               plan: Plan | None = None) -> list[Path]:
    """Write one WAV and one sidecar per prompt; returns the WAV paths, in prompt order."""
    plan = plan or plan_synthesis(params, out_dir, prompts, prompts_file, seed)
    synth = Synthesizer(model, params, device=device, vocoder=vocoder, rerank=rerank, candidates=candidates,
                        format=format, seconds=seconds, pretrained=pretrained)
    settings = synth.describe()
    model_path = settings["model"].pop("path")
    requests = [{"prompt": prompt, "seed": plan.seed, **settings} for prompt in plan.prompts]
    for name, request in zip(plan.names, requests):  # all checked before the first clip is written
        earlier = _sidecar(plan.folder / f"{name}.json")
        if earlier is not None and (difference := _conflict(earlier.get("request") or {}, request)):
            raise ValueError(f"{plan.folder / name}.wav: made earlier with other settings ({difference}); remove it "
                             f"(and its .json) or choose another --out")
    written = []
    for name, prompt, request in zip(plan.names, plan.prompts, requests):
        wav, sidecar = plan.folder / f"{name}.wav", plan.folder / f"{name}.json"
        recorded = (_sidecar(sidecar) or {}).get("wav_sha256")
        if recorded and wav.is_file() and sha256_file(wav) == recorded:
            log.info("%s: already made for this prompt, seed, model and settings", wav)
        else:
            if recorded:
                log.warning("%s: not the clip its sidecar records (changed or damaged): made again", wav)
            clip, choice = synth.render(prompt, plan.seed, prompt_stream(prompt))
            data = encode16_bytes(clip, synth.sample_rate, "WAV")
            with atomic_path(wav) as tmp:
                tmp.write_bytes(data)
            write_json(sidecar, {"request": request, "choice": choice, "wav_sha256": hashlib.sha256(data).hexdigest(),
                                 "model_path": model_path})  # last: it marks the clip complete
            log.info("%s: %r", wav, prompt[:80])
        written.append(wav)
    return written
