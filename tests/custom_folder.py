"""A user's own folder of captioned audio, in real formats, for the `data.source: custom` tests.

WAV, FLAC and OGG (Vorbis) written by soundfile at 16, 44.1 and 48 kHz, mono and stereo, lengths
from a 10-sample file to several model windows; a corrupt file; a duplicate; a file nobody
captioned; names with spaces and shell characters. Three caption files name them: Clotho's CSV,
AudioCaps' CSV (files named by YouTube id) and JSON lines.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import soundfile as sf

# A name a shell would run if it ever saw it unquoted: the tests check that `pwned` never appears.
SHELL_NAME = "dog $(touch pwned); 'bark' & `touch pwned2` (1).flac"
SPACES_NAME = "birds/dawn chorus, take 2.wav"
CORRUPT_NAME = "corrupt.wav"
TOO_SHORT_NAME = "click.wav"
MISSING_NAME = "never recorded.wav"
DUPLICATE_NAME = "copy of rain.ogg"
UNCAPTIONED_NAME = "nobody captioned me.wav"

# name -> (seconds, rate, channels, format, tone Hz)
CLIPS = {
    SPACES_NAME: (1.2, 48000, 1, "WAV", 660),
    "city/traffic stereo.flac": (0.9, 44100, 2, "FLAC", 220),
    "rain.ogg": (1.5, 16000, 1, "OGG", 0),
    SHELL_NAME: (0.8, 16000, 2, "FLAC", 880),
    "field/long recording.wav": (2.3, 44100, 1, "WAV", 330),
    "tone_a.wav": (0.7, 48000, 1, "WAV", 440),
    "tone_b.flac": (1.0, 44100, 1, "FLAC", 550),
    "tone_c.ogg": (0.9, 48000, 2, "OGG", 770),
    "tone_d.wav": (1.1, 16000, 1, "WAV", 990),
    "tone_e.flac": (0.6, 48000, 1, "FLAC", 1210),
}


def write_clip(path: Path, seconds: float, rate: int, channels: int, fmt: str, tone: float, seed: int) -> None:
    """A tone (or, at 0 Hz, noise) in ``fmt`` as soundfile writes it; stereo channels differ."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    base = 0.3 * np.sin(2 * np.pi * tone * t) if tone else 0.2 * rng.standard_normal(len(t))
    audio = np.stack([base * (1 - 0.3 * c) + 0.01 * rng.standard_normal(len(t)) for c in range(channels)], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    subtype = "VORBIS" if fmt == "OGG" else "PCM_16"
    sf.write(path, audio.astype(np.float32), rate, format=fmt, subtype=subtype)


def build_audio(root: Path) -> Path:
    """The audio folder: every clip of CLIPS plus the corrupt, too-short, duplicate and uncaptioned files."""
    audio = root / "my sounds"
    for seed, (name, spec) in enumerate(sorted(CLIPS.items())):
        write_clip(audio / name, *spec, seed=seed)
    (audio / CORRUPT_NAME).write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage, not audio" * 4)
    write_clip(audio / TOO_SHORT_NAME, 10 / 16000, 16000, 1, "WAV", 440, seed=99)
    (audio / DUPLICATE_NAME).write_bytes((audio / "rain.ogg").read_bytes())
    write_clip(audio / UNCAPTIONED_NAME, 0.7, 16000, 1, "WAV", 500, seed=98)
    return audio


def captions_of(name: str) -> list[str]:
    """Up to five captions per clip (Clotho has five); some clips fewer, one with commas and quotes."""
    stem = Path(name).stem.replace("_", " ")
    if name == "rain.ogg":
        return ["Rain falls on a tin roof, steadily", 'Heavy rain with "drops" hitting metal',
                "A downpour drums on a roof", "Rain, rain and more rain", "Café ambience with rain outside"]
    if name == SHELL_NAME:
        return ["A dog barks twice; someone says $(hello)", "A small dog yaps `loudly`"]
    return [f"the sound of {stem}", f"a recording of {stem} outdoors", f"{stem} in a quiet room"]


def listed_names() -> list[str]:
    """Every file the caption files name: the clips, the bad ones, and one that does not exist."""
    return [*sorted(CLIPS), DUPLICATE_NAME, CORRUPT_NAME, TOO_SHORT_NAME, MISSING_NAME]


def write_clotho_csv(root: Path) -> Path:
    """Clotho's layout: file_name, caption_1 ... caption_5 (fewer captions leave cells empty)."""
    path = root / "clotho_captions.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", *(f"caption_{i}" for i in range(1, 6))])
        for name in listed_names():
            captions = captions_of(name)
            writer.writerow([name, *captions, *[""] * (5 - len(captions))])
    return path


def write_jsonl(root: Path) -> Path:
    """JSON lines: one caption per line for some files, a `captions` list for others."""
    path = root / "captions.jsonl"
    lines = []
    for index, name in enumerate(listed_names()):
        captions = captions_of(name)
        if index % 2:
            lines.append({"path": name, "captions": captions})
        else:
            lines += [{"path": name, "caption": caption} for caption in captions]
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    return path


def youtube_id(index: int) -> str:
    return f"yt{index:03d}-_abcd"[:11].ljust(11, "x")


def build_audiocaps_layout(root: Path) -> tuple[Path, Path, dict[str, list[str]]]:
    """AudioCaps' CSV (one row per caption) with its clips named <id>.wav / Y<id>.flac in a folder;
    one listed video has no file. Returns (audio folder, CSV, youtube id -> captions)."""
    audio = root / "audiocaps clips"
    expected, rows = {}, []
    for index, (name, (seconds, rate, channels, fmt, tone)) in enumerate(sorted(CLIPS.items())):
        yid = youtube_id(index)
        stem = yid if index % 2 else f"Y{yid}"
        write_clip(audio / f"{stem}.{'flac' if fmt == 'FLAC' else 'wav'}", seconds, rate, channels,
                   "FLAC" if fmt == "FLAC" else "WAV", tone, seed=index)
        expected[yid] = captions_of(name)
    expected_missing = youtube_id(len(CLIPS))
    for yid, captions in [*expected.items(), (expected_missing, ["a video that is gone"])]:
        rows += [(1000 + len(rows), yid, 30, caption) for caption in captions]
    path = root / "audiocaps_train.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["audiocap_id", "youtube_id", "start_time", "caption"])
        writer.writerows(rows)
    return audio, path, expected


def custom_overlay(audio: Path, captions: Path, **custom) -> dict:
    """The overlay a user writes: config/tiny.yaml's sizes with data.source custom."""
    return {"data": {"source": "custom",
                     "custom": {"audio_dir": str(audio), "captions": str(captions), "dev_fraction": 0.2,
                                "workers": 1, **custom}}}
