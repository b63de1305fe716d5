"""Caption files of a user's own dataset (`data.source: custom`): the layouts people already have,
detected or named in params, read into one table of (file, caption, split, where).

- ``clotho``: Clotho's CSV, ``file_name, caption_1 ... caption_5`` (one row per clip);
- ``audiocaps``: AudioCaps' own CSV (``audiocap_id, youtube_id, start_time, caption``, one row per
  caption), its clips found in the folder under the usual names (``<id>.wav``, ``Y<id>.flac``, ...);
- ``csv``: any CSV with a file column and a caption column (or ``caption_1..N`` columns); several
  rows may name one file;
- ``jsonl``: JSON lines ``{"path": ..., "caption": ...}`` (or ``"captions": [...]``).

A malformed file stops with its name and line: it is the user's to fix, and guessing would train
on the wrong captions. Files that are listed but absent are not errors here: the source records
them as rejects.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pandas as pd

from scenesynth.data.audiocaps import AudioCapsError, find_local_clips, read_audiocaps_csv

FILE_COLUMNS = ("file_name", "filename", "file", "path", "audio", "audio_path", "fname", "wav")
CAPTION_COLUMNS = ("caption", "text", "description", "prompt", "raw_text")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
SPLITS = ("train", "dev")
ROW_COLUMNS = ("file", "caption", "split", "where")
_NUMBERED_CAPTION = re.compile(r"^caption_?(\d+)$", re.I)


class CaptionFileError(ValueError):
    """A caption file cannot be read as the format says; the message names the file and the line."""


def _normalised(name: str) -> str:
    return str(name).strip().lower().replace(" ", "_")


def _numbered_captions(columns) -> list[str]:
    numbered = [(int(m.group(1)), c) for c in columns if (m := _NUMBERED_CAPTION.match(_normalised(c)))]
    return [c for _, c in sorted(numbered)]


def _read_csv(path: Path) -> tuple[pd.DataFrame, list[int]]:
    """Every cell as text, and the line each row ends on (for error messages). Strict about the number
    of fields: given a row with one field too many (a caption with an unquoted comma), pandas would
    take the first column for an index or drop the extra field, and train on shifted captions."""
    rows, lines = [], []
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise CaptionFileError(f"{path}: line {reader.line_num}: {len(row)} fields but the header has "
                                           f"{len(header)} (a caption holding a comma needs quotes)")
                rows.append(row)
                lines.append(reader.line_num)
    except (csv.Error, UnicodeDecodeError) as err:
        raise CaptionFileError(f"{path}: not a readable UTF-8 CSV: {err}") from err
    if not header:
        raise CaptionFileError(f"{path}: empty file")
    return pd.DataFrame(rows, columns=header, dtype=str), lines


def detect_format(path: str | Path) -> str:
    """``jsonl`` by suffix; for a CSV, ``clotho`` (file_name + caption_N), ``audiocaps`` (youtube_id +
    caption) or ``csv``."""
    path = Path(path)
    if path.suffix.lower() in JSONL_SUFFIXES:
        return "jsonl"
    columns = {_normalised(c) for c in _read_csv(path)[0].columns}
    if "file_name" in columns and _numbered_captions(columns):
        return "clotho"
    if {"youtube_id", "caption"} <= columns:
        return "audiocaps"
    return "csv"


def _pick(columns, wanted: str | None, candidates: tuple[str, ...], what: str, setting: str,
          where: str | Path) -> str | None:
    """The column (or JSON field) params name, else the first candidate present (matched loosely)."""
    if wanted:
        if wanted not in columns:
            raise CaptionFileError(f"{where}: no {what} {wanted!r} (data.custom.{setting}); it has {list(columns)}")
        return wanted
    by_name = {_normalised(c): c for c in columns}
    return next((by_name[name] for name in candidates if name in by_name), None)


def _split_of(value, where: str) -> str:
    text = str(value).strip().lower() if value is not None else ""
    if text in ("", "nan"):
        return "train"
    if text not in SPLITS:
        raise CaptionFileError(f"{where}: split {value!r} is neither 'train' nor 'dev' (data.custom.split_column)")
    return text


def _table_rows(path: Path, cfg: dict, clotho: bool) -> pd.DataFrame:
    """Rows of a CSV with one file column and one or several caption columns."""
    table, lines = _read_csv(path)
    file_column = _pick(table.columns, cfg["file_column"], ("file_name",) if clotho else FILE_COLUMNS,
                        "file column", "file_column", path)
    if cfg["caption_column"]:
        captions = [_pick(table.columns, cfg["caption_column"], (), "caption column", "caption_column", path)]
    else:  # Clotho's caption_1 .. caption_5, or one caption column
        captions = _numbered_captions(table.columns) or [_pick(table.columns, None, CAPTION_COLUMNS, "", "", path)]
    captions = [c for c in captions if c]
    if file_column is None or not captions:
        raise CaptionFileError(f"{path}: cannot tell the file column and the caption column(s) from {list(table.columns)};"
                               " set data.custom.file_column and data.custom.caption_column")
    split_column = _pick(table.columns, cfg["split_column"], (), "split column", "split_column", path)
    rows = []
    for number, record in zip(lines, table.to_dict("records")):
        where = f"{path}: line {number}"
        name = str(record[file_column]).strip()
        if not name:
            raise CaptionFileError(f"{where}: empty file name in column {file_column!r}")
        split = _split_of(record[split_column], where) if split_column else None
        rows += [(name, str(record[c]), split, where) for c in captions]
    return pd.DataFrame(rows, columns=list(ROW_COLUMNS))


def _audiocaps_rows(path: Path, cfg: dict, audio_dir: Path) -> pd.DataFrame:
    """AudioCaps' CSV: its clips are found in ``audio_dir`` by the names its redistributions use."""
    try:
        table = read_audiocaps_csv(path)
    except AudioCapsError as err:
        raise CaptionFileError(str(err)) from err
    split_column = None
    if cfg["split_column"]:
        extra, _ = _read_csv(path)
        split_column = _pick(extra.columns, cfg["split_column"], (), "split column", "split_column", path)
        table = table.assign(split=extra[split_column].to_numpy())
    found = find_local_clips(audio_dir, table)
    rows = []
    for number, record in enumerate(table.to_dict("records"), start=2):
        where = f"{path}: line {number}"
        clip = found.get(record["youtube_id"])
        # an absent clip keeps its YouTube id as its name, so that the source rejects it as missing
        name = clip.relative_to(audio_dir).as_posix() if clip else record["youtube_id"]
        split = _split_of(record["split"], where) if split_column else None
        rows.append((name, str(record["caption"]), split, where))
    return pd.DataFrame(rows, columns=list(ROW_COLUMNS))


def _jsonl_rows(path: Path, cfg: dict) -> pd.DataFrame:
    rows = []
    with open(path, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}: line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise CaptionFileError(f"{where}: not JSON: {err}") from err
            if not isinstance(record, dict):
                raise CaptionFileError(f"{where}: expected an object, got {type(record).__name__}")
            file_key = _pick(record, cfg["file_column"], ("path",) + FILE_COLUMNS, "field", "file_column", where)
            caption_key = cfg["caption_column"] or next((k for k in ("caption", "captions") + CAPTION_COLUMNS
                                                         if k in record), None)
            if file_key is None or caption_key not in record:
                raise CaptionFileError(f"{where}: needs a file field ({', '.join(('path',) + FILE_COLUMNS)}) "
                                       f"and a caption field (caption, captions, ...); has {sorted(record)}")
            captions = record[caption_key]
            captions = captions if isinstance(captions, list) else [captions]
            split = _split_of(record.get(cfg["split_column"]), where) if cfg["split_column"] else None
            rows += [(str(record[file_key]).strip(), str(c), split, where) for c in captions if c is not None]
    return pd.DataFrame(rows, columns=list(ROW_COLUMNS))


def read_caption_file(path: str | Path, cfg: dict, audio_dir: str | Path) -> tuple[pd.DataFrame, str]:
    """(one row per file and caption: file as written, caption, split or None, where; the format read)."""
    path = Path(path)
    if not path.is_file():
        raise CaptionFileError(f"{path}: caption file not found (data.custom.captions)")
    fmt = detect_format(path) if cfg["format"] == "auto" else cfg["format"]
    if fmt == "jsonl":
        rows = _jsonl_rows(path, cfg)
    elif fmt == "audiocaps":
        rows = _audiocaps_rows(path, cfg, Path(audio_dir))
    else:
        rows = _table_rows(path, cfg, clotho=fmt == "clotho")
    if rows.empty:
        raise CaptionFileError(f"{path}: no captions in it (read as {fmt})")
    return rows, fmt
