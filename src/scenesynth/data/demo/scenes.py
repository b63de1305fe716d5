"""The DEMO dataset: deterministic, fully SYNTHETIC sound scenes with captions.

It stands in for the real training data (AudioCaps/WavCaps) and for the DCASE
2024 Task 7 development set so that the whole pipeline can run offline and in
tests. Nothing here is recorded audio: every clip is a numpy-synthesised
foreground event (see :mod:`scenesynth.data.demo.sounds`) mixed over an
optional synthesised background, and every key, path and ``source`` value says
``demo`` so that it can never be mistaken for real data.

The manifest has the same columns as the real sources' manifests, and the dev
prompts use the challenge's exact form ``"<foreground> with <background> in
the background"``.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from scenesynth.data.demo.sounds import BACKGROUND_SYNTHS, FOREGROUND_SYNTHS, room_tone
from scenesynth.utils.atomic import atomic_path, write_text

SOURCE_NAME = "demo"
NO_BACKGROUND = "none"
FOREGROUNDS: tuple[str, ...] = tuple(FOREGROUND_SYNTHS)
#: Every value of the manifest's ``background`` column, including ``"none"``.
BACKGROUNDS: tuple[str, ...] = (*BACKGROUND_SYNTHS, NO_BACKGROUND)
#: The backgrounds a dev prompt can name (like the DCASE dev set, never "none").
DEV_BACKGROUNDS: tuple[str, ...] = tuple(BACKGROUND_SYNTHS)
MANIFEST_COLUMNS = ("key", "path", "caption", "source", "duration", "sample_rate", "split", "foreground", "background")
DEV_PROMPT_TEMPLATE = "{foreground} with {background} in the background"

FOREGROUND_WORDINGS: dict[str, tuple[str, ...]] = {
    "alarm": ("a beeping alarm", "an alarm beeping repeatedly", "electronic beeping", "an alarm going off"),
    "siren": ("a siren wailing", "an emergency siren", "a siren rising and falling", "a police siren"),
    "clock": ("a ticking clock", "a clock ticking steadily", "the tick-tock of a clock", "a clock ticking"),
    "chirps": ("birds chirping", "a bird chirping", "fast bird chirps", "small birds tweeting"),
    "engine": ("an idling engine", "an engine humming", "a car engine running idle", "the low hum of a motor"),
    "knocking": ("someone knocking on a door", "knocks on a wooden door", "a person knocking", "repeated knocking"),
}
#: The first wording of each background is its kind name, the word dev prompts use.
BACKGROUND_WORDINGS: dict[str, tuple[str, ...]] = {
    "water": ("water", "running water", "a stream", "flowing water"),
    "crowd": ("crowd", "a chattering crowd", "people talking", "crowd babble"),
    "traffic": ("traffic", "distant traffic", "cars passing by", "road traffic"),
}
TRAIN_TEMPLATES_WITH_BACKGROUND = (
    "{fg} with {bg} in the background",
    "{fg} over {bg}",
    "{fg} while {bg} can be heard",
    "{fg} and {bg}",
)
TRAIN_TEMPLATES_ALONE = ("{fg}", "{fg} in a quiet room", "the sound of {fg}")

DEFAULT_SNR_DB = (6.0, 20.0)  # foreground-prominent, like the challenge scenes
ROOM_TONE_SNR_DB = (35.0, 50.0)  # noise floor of clips without a background
PEAK_DBFS_RANGE = (-6.0, -1.0)  # random overall level, always below full scale (-1 dBFS is about 0.89)
_SPLIT_CODES = {"train": 0, "dev": 1}
_README = """\
SYNTHETIC DEMO DATA (scenesynth.data.demo.scenes)

Every clip in this folder was synthesised with numpy; none of it is recorded
audio, and none of it comes from AudioCaps, WavCaps or DCASE. It exists so the
pipeline can run offline and in tests. Do not report results on it as results
on real data.
"""


def caption_for(fg: str, bg: str, rng: np.random.Generator, dev: bool) -> str:
    """A caption for a clip; dev prompts follow the challenge form, train captions vary.

    Varied training wordings keep the text encoder from keying on one fixed
    phrase, while the challenge form also appears in training so that dev
    prompts are in distribution.
    """
    if fg not in FOREGROUND_WORDINGS:
        raise ValueError(f"unknown foreground {fg!r}; expected one of {FOREGROUNDS}")
    if bg not in BACKGROUNDS:
        raise ValueError(f"unknown background {bg!r}; expected one of {BACKGROUNDS}")
    fg_words = str(rng.choice(FOREGROUND_WORDINGS[fg]))
    if dev:
        if bg not in DEV_BACKGROUNDS:
            raise ValueError(f"dev prompts always name a background, one of {DEV_BACKGROUNDS}; got {bg!r}")
        return DEV_PROMPT_TEMPLATE.format(foreground=fg_words, background=bg)
    if bg == NO_BACKGROUND:
        return str(rng.choice(TRAIN_TEMPLATES_ALONE)).format(fg=fg_words)
    bg_words = str(rng.choice(BACKGROUND_WORDINGS[bg]))
    return str(rng.choice(TRAIN_TEMPLATES_WITH_BACKGROUND)).format(fg=fg_words, bg=bg_words)


def demo_key(split: str, index: int) -> str:
    """Stable clip key; dev keys are short like the challenge's 60 prompt ids."""
    return f"demo-{split}-{index:06d}" if split == "train" else f"demo-{split}-{index:03d}"


def dev_kinds(index: int, foregrounds: tuple[str, ...] = FOREGROUNDS,
              backgrounds: tuple[str, ...] = DEV_BACKGROUNDS) -> tuple[str, str]:
    """The (foreground, background) of dev clip ``index``.

    The foreground cycles fastest and the background shifts by one each cycle,
    so any 18 consecutive clips cover all 6 x 3 combinations and any 6 contain
    each foreground once and each background twice (60 -> 10 per foreground,
    20 per background).
    """
    fg = foregrounds[index % len(foregrounds)]
    bg = backgrounds[(index + index // len(foregrounds)) % len(backgrounds)]
    return fg, bg


def _clip_streams(seed: int, split: str, index: int) -> list[np.random.Generator]:
    """Independent generators (kinds, caption, foreground, background, mix) for one clip.

    They derive only from (seed, split, index), so a clip does not depend on
    any other clip (parallel generation gives the same bytes), and editing the
    caption wordings does not change the audio.
    """
    root = np.random.SeedSequence([seed, _SPLIT_CODES[split], index])
    return [np.random.default_rng(child) for child in root.spawn(5)]


def _active_rms(x: np.ndarray, sample_rate: int) -> float:
    """RMS over the frames where the sound is on (within 30 dB of its loudest frame).

    Sparse events such as clock ticks would otherwise get a tiny whole-clip RMS
    and be pushed far above the background by the SNR.
    """
    frame = max(1, min(int(0.02 * sample_rate), len(x)))
    n_frames = max(1, len(x) // frame)
    frame_power = np.mean(x[: n_frames * frame].reshape(n_frames, -1) ** 2, axis=1)
    active = frame_power >= frame_power.max() * 10 ** (-30 / 10)
    return float(np.sqrt(np.mean(frame_power[active])) + 1e-12)


def render_clip(
    fg: str,
    bg: str,
    fg_rng: np.random.Generator,
    bg_rng: np.random.Generator,
    mix_rng: np.random.Generator,
    n_samples: int,
    sample_rate: int,
    snr_db: tuple[float, float],
) -> np.ndarray:
    """Mix one foreground over one background (or a faint room tone) at a random SNR.

    The foreground level is its RMS while sounding, so the SNR means the same
    for sparse ticks as for a continuous hum. The peak lands at a random level
    below full scale, so 16-bit files never clip.
    """
    mixture = FOREGROUND_SYNTHS[fg](fg_rng, n_samples, sample_rate)
    mixture = mixture / _active_rms(mixture, sample_rate)
    if bg == NO_BACKGROUND:
        background, snr = room_tone(bg_rng, n_samples, sample_rate), mix_rng.uniform(*ROOM_TONE_SNR_DB)
    else:
        background, snr = BACKGROUND_SYNTHS[bg](bg_rng, n_samples, sample_rate), mix_rng.uniform(*snr_db)
    background = background / (np.sqrt(np.mean(background**2)) + 1e-12)
    mixture = mixture + background * 10 ** (-snr / 20)
    peak = 10 ** (mix_rng.uniform(*PEAK_DBFS_RANGE) / 20)
    return mixture * (peak / (np.max(np.abs(mixture)) + 1e-12))


def _make_clip(task: tuple) -> dict:
    """Synthesise and write one clip; returns its manifest row. Runs in worker processes."""
    out_dir, split, index, seed, sample_rate, n_samples, snr_db, foregrounds, backgrounds = task
    kinds_rng, caption_rng, fg_rng, bg_rng, mix_rng = _clip_streams(seed, split, index)
    if split == "dev":
        fg, bg = dev_kinds(index, foregrounds, tuple(b for b in backgrounds if b != NO_BACKGROUND))
    else:
        # Foregrounds cycle so even a small split holds every kind; backgrounds are drawn.
        fg = foregrounds[index % len(foregrounds)]
        bg = str(kinds_rng.choice(backgrounds))
    caption = caption_for(fg, bg, caption_rng, dev=split == "dev")
    audio = render_clip(fg, bg, fg_rng, bg_rng, mix_rng, n_samples, sample_rate, snr_db)
    key = demo_key(split, index)
    relative_path = f"audio/{key}.wav"
    with atomic_path(Path(out_dir) / relative_path) as tmp:
        sf.write(tmp, audio, sample_rate, subtype="PCM_16", format="WAV")
    return {
        "key": key,
        "path": relative_path,
        "caption": caption,
        "source": SOURCE_NAME,
        "duration": n_samples / sample_rate,
        "sample_rate": sample_rate,
        "split": split,
        "foreground": fg,
        "background": bg,
    }


def synthesize_demo(
    out_dir: Path,
    n_train: int,
    n_dev: int,
    sample_rate: int = 32000,
    duration: float = 5.12,
    seed: int = 0,
    foreground_snr_db: tuple[float, float] = DEFAULT_SNR_DB,
    workers: int = 1,
    foregrounds: tuple[str, ...] | None = None,
    backgrounds: tuple[str, ...] | None = None,
) -> pd.DataFrame:
    """Write the synthetic demo clips under ``out_dir/audio`` and return their manifest.

    The same arguments always give byte-identical WAV files and an identical
    manifest, whatever ``workers`` is (``workers > 1`` uses worker processes).
    Clips are mono 16-bit PCM; ``out_dir/README.txt`` marks the folder as synthetic.
    """
    if n_train < 0 or n_dev < 0:
        raise ValueError("n_train and n_dev must be non-negative")
    low, high = foreground_snr_db
    if low > high:
        raise ValueError(f"foreground_snr_db must be (low, high); got {foreground_snr_db}")
    foregrounds = tuple(foregrounds or FOREGROUNDS)
    backgrounds = tuple(backgrounds or BACKGROUNDS)
    unknown = sorted((set(foregrounds) - set(FOREGROUNDS)) | (set(backgrounds) - set(BACKGROUNDS)))
    if unknown or not any(b != NO_BACKGROUND for b in backgrounds):
        raise ValueError(f"unknown kinds {unknown} (foregrounds: {FOREGROUNDS}, backgrounds: {BACKGROUNDS}); "
                         "dev prompts need at least one background other than 'none'")
    out_dir = Path(out_dir)
    n_samples = int(round(duration * sample_rate))
    kinds = (foregrounds, backgrounds)
    tasks = [(str(out_dir), "train", i, seed, sample_rate, n_samples, (low, high), *kinds) for i in range(n_train)]
    tasks += [(str(out_dir), "dev", i, seed, sample_rate, n_samples, (low, high), *kinds) for i in range(n_dev)]
    write_text(out_dir / "README.txt", _README)
    if workers > 1 and len(tasks) > 1:
        # The platform's default start method: fork on Linux needs no __main__ guard in
        # callers such as Snakemake scripts; where it is spawn, callers need the guard.
        with ProcessPoolExecutor(max_workers=workers) as pool:
            rows = list(pool.map(_make_clip, tasks, chunksize=max(1, len(tasks) // (4 * workers))))
    else:
        rows = [_make_clip(task) for task in tasks]
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    return manifest.astype({"duration": "float64", "sample_rate": "int64"})
