"""Atomic file writes: every output is written to a temporary name, then renamed.

A killed job therefore never leaves a half-written file under its final name,
which is what lets Snakemake, DVC and our own resume logic trust existing files.
What a kill does leave is the temporary file itself; its name carries a marker
(``.<name>.partial-<random><suffix>``), so each stage sweeps its own leftovers when
it starts (:func:`sweep_leftovers`) and a resumed run ends with the same folder an
uninterrupted one has.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)
PARTIAL_MARK = ".partial-"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary file keeps the final suffix (or ``suffix``) so that libraries
    that pick a format from the extension (soundfile, torch) still work.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{final.name}{PARTIAL_MARK}", suffix=suffix if suffix is not None else final.suffix, dir=final.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600; give the final file the usual umask-based mode (shared clusters).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def sweep_leftovers(*owned: str | os.PathLike) -> int:
    """Delete the temporary files a killed run of a stage left behind; returns how many.

    ``owned`` are the stage's outputs: a folder (its partial files at any depth) or a file (only its
    own partial copies beside it, for a file in a folder other stages write to as well, like
    metrics/). Only names that :func:`atomic_path` makes are touched.
    """
    removed = 0
    for item in map(Path, owned):
        candidates = (item.rglob(f".*{PARTIAL_MARK}*") if item.is_dir()
                      else item.parent.glob(f".{item.name}{PARTIAL_MARK}*"))
        for path in candidates:
            if path.is_file():
                path.unlink()
                removed += 1
    if removed:
        log.info("removed %d partial file(s) that an interrupted run left in %s", removed,
                 ", ".join(str(p) for p in owned))
    return removed


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_torch(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save`` with the same bytes for equal objects (tests/e2e/test_reproducible.py).

    Two things make torch.save's bytes differ for equal objects: saved to a path, the archive's inner
    folder is named after the (random) temporary file name, so the bytes are made in memory; and
    pickle writes a string once per distinct object and refers back to it after that, so a state
    dict whose keys came from a loaded checkpoint (a resumed run) pickles differently from a fresh
    one. Every string is interned first, which makes equal strings one object in both cases.
    """
    import torch

    buffer = io.BytesIO()
    torch.save(_interned(obj), buffer)
    write_bytes(path, buffer.getvalue())


def _interned(obj: Any) -> Any:
    """A copy of nested dicts, lists and tuples with every string interned; tensors are shared, not copied."""
    if isinstance(obj, str):
        return sys.intern(obj)
    if isinstance(obj, dict):
        copy = type(obj)((_interned(k), _interned(v)) for k, v in obj.items())
        if hasattr(obj, "_metadata"):  # a module's state dict carries its version metadata
            copy._metadata = obj._metadata
        return copy
    if isinstance(obj, (list, tuple)):
        return type(obj)(_interned(v) for v in obj)
    return obj


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
