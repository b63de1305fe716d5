"""The listening report's assets: one stand-alone HTML page per dev prompt, and a metrics page.

`snakemake --report` embeds these pages (rule report_assets, workflow/rules/report.smk). Each
prompt page carries its own data (the generated WAV of the first generation seed as a base64
data URI, the log-mel PNG) so it plays anywhere, inside the report's iframe or opened alone.
The metrics page reads metrics/*.json and says plainly when the FAD embedding or the data is a
stand-in, since such numbers are not comparable with the paper's 42.075 or the baseline's 61.276.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import soxr
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from scenesynth.audio_io import AudioReadError, load_mono
from scenesynth.data.manifest import NO_AUDIO, read_dev_prompts
from scenesynth.features.mel import MelFrontEnd
from scenesynth.report.curves import curves_section
from scenesynth.utils.atomic import write_json, write_text

log = logging.getLogger(__name__)
PAGE_FOLDER = "prompts"      # <out>/prompts/<key>.html: one report entry per dev prompt
CAPTIONS = "prompts.json"    # <out>/prompts.json: key -> caption (the report's labels)
RANKS = "ranks.json"         # <out>/ranks.json: key -> rank, 1 = worst (metrics/per_prompt.csv; a report label)
METRICS_PAGE = "metrics.html"
NO_REFERENCE_AUDIO = ("No reference audio: the DCASE dev set publishes reference embeddings, not audio; the scores "
                      "below compare this clip's embedding with them.")

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; max-width: 70em; color: #222; }
blockquote.prompt { font-size: 1.2em; border-left: 4px solid #4a7; margin: 0.5em 0; padding: 0.3em 0.8em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.warn { background: #fff3cd; border: 1px solid #e0c36a; padding: 0.5em 0.8em; }
.note { color: #555; font-size: 0.9em; }
img { max-width: 100%; }
"""


class ReportInputError(FileNotFoundError):
    """An input the report needs is missing or unreadable; the message names the file."""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{_e(title)}</title>\n'
            f"<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def _shown(path) -> str:
    """A path as the reader knows it: relative to the project (the working directory) when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise ReportInputError(f"{path}: not found (run the evaluate stage first)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def _load_audio(path: Path, what: str) -> tuple[np.ndarray, int]:
    try:
        return load_mono(path)
    except AudioReadError as err:
        raise ReportInputError(f"{path}: {what} {err}") from err


# ----------------------------------------------------------------------------- spectrograms
def logmel_image(wave: np.ndarray, rate: int, front_end) -> np.ndarray:
    """The project's log-mel (the vocoder's front end, peak-normalised as in training) of any clip."""
    target = front_end.settings.sample_rate
    if rate != target:
        wave = soxr.resample(wave.astype(np.float32), rate, target, quality="HQ")
    wave = front_end.normalize_wav(wave)
    if len(wave) <= front_end.settings.pad:  # too short for the reflect pad: pad with silence
        wave = np.pad(wave, (0, front_end.settings.pad + 1 - len(wave)))
    with torch.no_grad():
        return front_end.logmel(torch.from_numpy(wave)).numpy()


# Fixed margins of the log-mel figure, in inches: a constrained layout would find about the
# same ones, but it costs ~0.2 s a figure, a third of the report stage on the demo's 60 prompts.
_PANEL_WIDTH, _FIGURE_HEIGHT = 5.0, 3.4
_LEFT, _GAP, _COLORBAR_PAD, _COLORBAR_WIDTH, _COLORBAR_LABEL = 0.65, 0.2, 0.15, 0.15, 0.75
_BOTTOM, _TOP = 0.5, 0.3


def mel_pair_png(generated: np.ndarray, reference: np.ndarray | None, settings, titles: tuple[str, str]) -> bytes:
    """Generated and reference log-mels side by side, one colour scale (Agg, no display needed)."""
    mels = [generated] if reference is None else [generated, reference]
    vmin = float(np.log(settings.log_clamp))
    vmax = max(float(m.max()) for m in mels)
    vmax = vmax if vmax > vmin else vmin + 1.0
    width = _LEFT + len(mels) * _PANEL_WIDTH + (len(mels) - 1) * _GAP + _COLORBAR_PAD + _COLORBAR_WIDTH \
        + _COLORBAR_LABEL
    fig = Figure(figsize=(width, _FIGURE_HEIGHT), dpi=100)
    FigureCanvasAgg(fig)
    bottom, height = _BOTTOM / _FIGURE_HEIGHT, 1.0 - (_BOTTOM + _TOP) / _FIGURE_HEIGHT
    axes, image = [], None
    for i, (mel, title) in enumerate(zip(mels, titles)):
        left = (_LEFT + i * (_PANEL_WIDTH + _GAP)) / width
        ax = fig.add_axes((left, bottom, _PANEL_WIDTH / width, height), sharey=axes[0] if axes else None)
        seconds = mel.shape[1] * settings.hop_length / settings.sample_rate
        image = ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
                          extent=(0.0, seconds, 0, mel.shape[0]), interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("time (s)")
        if axes:
            ax.tick_params(labelleft=False)
        axes.append(ax)
    axes[0].set_ylabel("mel bin")
    colorbar_left = (width - _COLORBAR_LABEL - _COLORBAR_WIDTH) / width
    cax = fig.add_axes((colorbar_left, bottom, _COLORBAR_WIDTH / width, height))
    fig.colorbar(image, cax=cax, label="ln mel magnitude")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


# ----------------------------------------------------------------------------- pages
def prompt_page(key: str, caption: str, audio_wav: bytes, mel_png: bytes, facts: dict[str, str],
                note: str = "") -> str:
    """One prompt: its text, a player of the generated clip, the log-mel pair. Everything escaped."""
    audio = "data:audio/wav;base64," + base64.b64encode(audio_wav).decode("ascii")
    png = "data:image/png;base64," + base64.b64encode(mel_png).decode("ascii")
    rows = "\n".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts.items())
    warning = f'<p class="warn">{_e(note)}</p>\n' if note else ""
    return _page(f"{key}: {caption}", (
        f"<h1>Dev prompt <code>{_e(key)}</code></h1>\n"
        f'<blockquote class="prompt" id="caption">{_e(caption)}</blockquote>\n'
        f"<h2>Generated clip</h2>\n"
        f'<audio id="generated" controls preload="auto" src="{audio}"></audio>\n'
        f"<h2>Log-mel spectrograms</h2>\n{warning}"
        f'<img id="mel" alt="{_e("log-mel of the generated clip and of the reference clip of " + key)}" src="{png}">\n'
        f'<p class="note">Same colour scale for both; the project\'s front end (the vocoder\'s log-mel), '
        f"each clip peak-normalised first.</p>\n"
        f"<table>\n{rows}\n</table>"))


def _num(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{float(value):.{digits}f}"


def _per_prompt_section(table: pd.DataFrame | None) -> list[str]:
    """The per-prompt scores, worst first, each prompt linked to its page."""
    if table is None or table.empty:
        return []
    rows = ["<h2>Per prompt, worst first</h2>",
            '<p class="note">Distances in the FAD embedding space (mean over seeds); metrics/per_prompt.csv '
            "defines each column.</p>",
            '<table id="per-prompt">\n<tr><th>rank</th><th>prompt</th><th>caption</th><th>to own reference</th>'
            "<th>to reference mean</th><th>CLAP score</th></tr>"]
    for row in table.itertuples(index=False):
        link = f'<a href="{PAGE_FOLDER}/{_e(row.prompt_id)}.html">{_e(row.prompt_id)}</a>'
        rows.append(f'<tr><td class="num">{_e(row.rank)}</td><td>{link}</td><td>{_e(row.caption)}</td>'
                    f'<td class="num">{_num(_finite(row.own_reference_distance))}</td>'
                    f'<td class="num">{_num(_finite(row.reference_mean_distance))}</td>'
                    f'<td class="num">{_num(_finite(row.clap_score), 4)}</td></tr>')
    rows.append("</table>")
    return rows


def _finite(value):
    return None if value is None or (isinstance(value, float) and not np.isfinite(value)) or value == "" else value


def _clap_section(clap: dict | None) -> list[str]:
    if not clap:
        return []
    if not clap.get("computed"):
        return ["<h2>CLAP score</h2>", f'<p id="clap-score">Not computed: {_e(clap.get("reason", "no result"))}</p>']
    return ["<h2>CLAP score (higher is better)</h2>",
            f'<p id="clap-score">{_num(clap["clap_score_mean"], 4)} &plusmn; {_num(clap["clap_score_std"], 4)} '
            f"over {_e(clap['n_seeds'])} seeds: {_e(clap['definition'])}.</p>"]


def _seeds(n) -> str:
    """'mean &plusmn; std over 3 seeds', or 'one seed: no spread' (a std over one seed is not zero spread)."""
    return "one generation seed: no spread measured" if n == 1 else f"mean &plusmn; std over {_e(n)} seeds"


def _per_kind_section(readings: list[tuple[str, dict]]) -> list[str]:
    """Accuracy per asked-for kind, one column per reading (generated, then its ceiling), the worst kind
    of each reading marked: a mean over kinds hides a kind the generator never makes."""
    body = []
    for task, label in (("fg", "foreground"), ("bg", "background")):
        kinds = readings[0][1]["generated"].get(f"{task}_per_kind")
        if not kinds:
            continue
        head = "".join(f"<th>{_e(name)}</th><th>ceiling</th>" for name, _ in readings)
        body.append(f'<h3>Per {label} kind</h3>\n<table id="conditioning-{task}-kinds">\n<tr><th>kind</th>{head}'
                    "<th>most often mistaken for (mel)</th></tr>")
        for kind in kinds:
            cells = ""
            for _, part in readings:
                g, ceiling = part["generated"], part.get("ceiling", {})
                worst = " (worst)" if g.get(f"{task}_worst_kind") == kind else ""
                cells += (f'<td class="num">{_num(g.get(f"{task}_per_kind", {}).get(kind))}{worst}</td>'
                          f'<td class="num">{_num(ceiling.get(f"{task}_per_kind", {}).get(kind))}</td>')
            heard = readings[0][1]["generated"].get(f"{task}_confusion", {}).get(kind, {})
            wrong = [f"{other} ({count} of {sum(heard.values())})" for other, count in heard.items() if other != kind]
            body.append(f"<tr><td>{_e(kind)}</td>{cells}<td>{_e(wrong[0] if wrong else '-')}</td></tr>")
        body.append("</table>")
    return body


def metrics_page(fad: dict, conditioning: dict, generation: dict, clap: dict | None = None,
                 per_prompt: pd.DataFrame | None = None, train: dict | None = None) -> str:
    """FAD (mean and std over seeds, its bootstrap interval, per category) beside the paper's and the
    baseline's, honestly labelled; the curves of the evaluations during training (metrics/train.json);
    the CLAP score and the per-prompt scores, worst first."""
    stand_ins = fad.get("stand_ins") or generation.get("stand_ins") or {}
    embedding = fad["embedding"]
    comparable = bool(fad.get("comparable_to_paper"))
    reasons = []
    if fad.get("stand_in"):
        reasons.append(f"the FAD embedding is {embedding}, an offline stand-in for PANNs Wavegram-Logmel")
    if stand_ins.get("data.source") == "demo":
        reasons.append("the dev set is the synthetic demo data, not the DCASE 2024 Task 7 dev set")
    elif stand_ins.get("data.source") == "custom":
        reasons.append("the dev set is clips of your own folder (data.source: custom), not the DCASE 2024 Task 7 dev set")
    elif fad.get("reference", {}).get("kind") == "audio":
        reasons.append("the FAD reference is audio, not the challenge's published embeddings")
    if fad.get("width_divisor") not in (None, 1):
        reasons.append(f"the PANNs network is {fad['width_divisor']}x narrower than the public one")
    if not comparable and not reasons:
        reasons.append("this run's setup differs from the paper's")
    verdict = ("Comparable with the paper: the paper's embedding on the challenge's dev set." if comparable else
               "NOT comparable with the paper's or the baseline's FAD: " + "; ".join(reasons) + ".")
    ours = f"{_num(fad['fad_mean'])} &plusmn; {_num(fad['fad_std'])}"
    body = [
        "<h1>Metrics</h1>",
        f'<p class="{"note" if comparable else "warn"}" id="verdict">{_e(verdict)}</p>',
        "<h2>FAD on the dev set (lower is better)</h2>",
        "<table id=\"fad\">\n<tr><th>system</th><th>FAD</th><th>embedding</th><th>stand-in</th></tr>",
        f"<tr><td>this run ({_e(fad['n_prompts'])} prompts, {_seeds(fad['n_seeds'])})</td>"
        f'<td class="num">{ours}</td><td>{_e(embedding)}</td><td>{"yes" if fad.get("stand_in") else "no"}</td></tr>',
        f'<tr><td>paper (KT Corporation)</td><td class="num">{_num(fad["paper_fad"])}</td>'
        "<td>panns_wavegram_logmel</td><td>no</td></tr>",
        f'<tr><td>challenge baseline</td><td class="num">{_num(fad["baseline_fad"])}</td>'
        "<td>panns_wavegram_logmel</td><td>no</td></tr>\n</table>",
    ]
    boot = fad.get("fad_bootstrap") or {}
    if "interval" in boot:
        body.append(f'<p class="note" id="fad-interval">How sure: {_num(boot["interval"][0])} to '
                    f'{_num(boot["interval"][1])} ({boot["confidence"]:.0%}; FAD &plusmn; 1.96 x {_num(boot["std"])}, the '
                    f'std of a bootstrap over the {_e(fad["n_prompts"])} prompts, {_e(boot["n_resamples"])} resamples). '
                    f'Resampled sets repeat clips and score {_num(boot["replicate_shift"])} higher on average: FAD '
                    "on this few clips is biased upwards, and the interval does not remove that.</p>")
    floor = fad.get("real_floor")
    if floor:
        body.append(f'<p class="note" id="fd-floor">Floor: the same distance between real training clips and the same '
                    f'reference ({_e(floor["n_clips"])} clips, {_e(floor["draws"])} disjoint draws) is '
                    f'{_num(floor["fd_mean"])} &plusmn; {_num(floor["fd_std"])}; this run is '
                    f'{_num(fad.get("fad_over_floor"), 2)} x its floor (a generator of real clips would be near 1).</p>')
    if fad.get("reference"):
        body.append(f'<p class="note" id="reference">Reference: {_e(fad["reference"].get("description", ""))}.</p>')
    seeds = fad.get("fad_per_seed") or {}
    if seeds:
        body.append("<h3>Per generation seed</h3>\n<table id=\"fad-seeds\">\n<tr><th>seed</th><th>FAD</th></tr>")
        body += [f'<tr><td>{_e(s)}</td><td class="num">{_num(v)}</td></tr>' for s, v in seeds.items()]
        body.append("</table>")
    categories = fad.get("fad_per_category") or {}
    if categories:
        body.append("<h3>Per background category (mean &plusmn; std over seeds)</h3>\n"
                    "<table id=\"fad-categories\">\n<tr><th>category</th><th>FAD</th></tr>")
        body += [f'<tr><td>{_e(c)}</td><td class="num">{_num(v["mean"])} &plusmn; {_num(v["std"])}</td></tr>'
                 for c, v in sorted(categories.items())]
        body.append("</table>")
    body += curves_section(train)
    body += _clap_section(clap)
    body.append("<h2>Conditioning: does each clip hold the sounds its prompt asks for?</h2>")
    if "generated" in conditioning:
        body.append("<table id=\"conditioning\">\n<tr><th>reading</th><th>label</th><th>generated accuracy</th>"
                    "<th>chance</th><th>ceiling (real dev clips)</th></tr>")
        readings = [("mel (generator)", conditioning)]
        if "generated" in conditioning.get("audio", {}):
            readings.append(("audio (after the vocoder)", conditioning["audio"]))
        for reading_name, part in readings:
            g, ceiling = part["generated"], part.get("ceiling", {})
            for name, label in (("fg", "foreground"), ("bg", "background")):
                body.append(f'<tr><td>{_e(reading_name)}</td><td>{label}</td>'
                            f'<td class="num">{_num(g.get(f"{name}_accuracy"))}</td>'
                            f'<td class="num">{_num(g.get(f"{name}_chance"))}</td>'
                            f'<td class="num">{_num(ceiling.get(f"{name}_accuracy"))}</td></tr>')
        spread = conditioning.get("diversity", {})
        body.append(f"</table>\n<p class=\"note\">{_e(conditioning.get('reading'))}. Diversity (spread over z for one "
                    f"prompt / spread of real clips of one kind): {_num(spread.get('ratio'))}; near 0 is mode "
                    f"collapse. Loudest value above real clips of the same kind (peak excess, nats; 0 is real-like): "
                    f"{_num(_finite(conditioning.get('peaks', {}).get('excess')))}. "
                    f"Generation seed {_e(conditioning.get('generation_seed'))}.</p>")
        body += _per_kind_section(readings)
    else:
        body.append(f"<p>Skipped: {_e(conditioning.get('skipped', 'no result'))}</p>")
    body.append("<h2>What ran (real parts and offline stand-ins)</h2>\n<table id=\"stand-ins\">")
    facts = dict(stand_ins)
    facts.update({"re-ranker": generation.get("rerank"), "candidates per prompt": generation.get("n_candidates"),
                  "crop": generation.get("crop"), "model step": generation.get("model_step")})
    body += [f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts.items() if v is not None]
    body.append("</table>")
    skipped = fad.get("skipped_references") or []
    if skipped:
        body.append(f"<p class=\"warn\">{len(skipped)} unreadable reference clip(s) left out of FAD: "
                    + ", ".join(_e(s["key"]) for s in skipped) + "</p>")
    body += _per_prompt_section(per_prompt)
    return _page("Metrics", "\n".join(body))


# ----------------------------------------------------------------------------- the stage
def _read_per_prompt(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ReportInputError(f"{path}: not found (run the evaluate stage first)")
    return pd.read_csv(path, dtype={"prompt_id": str})


def _score_facts(score: dict, n_prompts: int) -> dict[str, str]:
    """The prompt's row of metrics/per_prompt.csv, as the page's facts (empty values left out)."""
    if not score:
        return {}
    facts = {"rank (1 = worst)": f"{score['rank']} of {n_prompts}"}
    for column, label, digits in (("own_reference_distance", "distance to its own reference", 3),
                                  ("reference_mean_distance", "distance to the reference mean", 3),
                                  ("clap_score", "CLAP score", 4)):
        if _finite(score.get(column)) is not None:
            facts[label] = f"{score[column]:.{digits}f} (mean over seeds)"
    for column in ("predicted_foreground", "predicted_background"):
        if isinstance(score.get(column), str) and score[column]:
            facts[column.replace("_", " ")] = score[column]
    return facts


def build_report_assets(params: dict, generated: str | Path, manifest: str | Path, metrics_dir: str | Path,
                        out_dir: str | Path) -> dict[str, str]:
    """Write <out>/prompts/<key>.html per dev prompt, <out>/metrics.html and <out>/prompts.json."""
    generated, manifest, metrics_dir, out_dir = (Path(p) for p in (generated, manifest, metrics_dir, out_dir))
    fad = _read_json(metrics_dir / "fad.json")
    conditioning = _read_json(metrics_dir / "conditioning.json")
    clap = _read_json(metrics_dir / "clap_score.json")
    generation = _read_json(generated / "generation.json")
    per_prompt = _read_per_prompt(metrics_dir / "per_prompt.csv")
    scores = per_prompt.set_index("prompt_id").to_dict("index")
    dev = read_dev_prompts(manifest)
    seed = params["generate"]["seeds"][0]
    skipped = {s["key"]: s["reason"] for s in fad.get("skipped_references") or []}
    front_end = MelFrontEnd.from_params(params["audio"])
    stand_ins = generation.get("stand_ins") or fad.get("stand_ins") or {}
    pages = out_dir / PAGE_FOLDER
    pages.mkdir(parents=True, exist_ok=True)
    captions = {}
    for row in dev.itertuples(index=False):
        key, caption = str(row.key), str(row.caption)
        clip = generated / f"seed{seed}" / f"{key}.wav"
        if not clip.is_file():
            raise ReportInputError(f"{clip}: generated clip of dev prompt {key!r} not found (run the generate stage)")
        wave, rate = _load_audio(clip, "generated clip")
        ref_mel, note = None, ""
        if key in skipped:
            note = f"Reference clip left out (unreadable: {skipped[key]}); as in FAD, only the generated clip is shown."
        elif row.path == NO_AUDIO:
            note = NO_REFERENCE_AUDIO
        else:
            if not Path(row.path).is_file():
                raise ReportInputError(f"{row.path}: reference clip of dev prompt {key!r} not found "
                                       f"(listed in {manifest})")
            ref_mel = logmel_image(*_load_audio(Path(row.path), "reference clip"), front_end)
        png = mel_pair_png(logmel_image(wave, rate, front_end), ref_mel, front_end.settings,
                           (f"generated (seed {seed})", "reference"))
        facts = {"generated file": _shown(clip), "duration": f"{len(wave) / rate:.2f} s at {rate} Hz",
                 "reference file": _shown(row.path) if row.path != NO_AUDIO else None,
                 **_score_facts(scores.get(key, {}), len(per_prompt)), "vocoder": generation.get("vocoder"),
                 "text encoder": generation.get("text_encoder"), "data source": stand_ins.get("data.source")}
        for label in ("foreground", "background"):
            if label in dev.columns and isinstance(getattr(row, label), str):
                facts[label] = getattr(row, label)
        page = prompt_page(key, caption, clip.read_bytes(), png, {k: v for k, v in facts.items() if v is not None},
                           note)
        write_text(pages / f"{key}.html", page)
        captions[key] = caption
    for stale in pages.glob("*.html"):  # pages of prompts no longer in the dev set
        if stale.stem not in captions:
            stale.unlink()
    train_path = metrics_dir / "train.json"
    train = _read_json(train_path) if train_path.is_file() else None
    write_text(out_dir / METRICS_PAGE, metrics_page(fad, conditioning, generation, clap, per_prompt, train))
    write_json(out_dir / CAPTIONS, captions)
    write_json(out_dir / RANKS, {key: int(scores[key]["rank"]) for key in captions if key in scores})
    log.info("listening report: %d prompt pages and %s in %s", len(captions), METRICS_PAGE, out_dir)
    return captions
