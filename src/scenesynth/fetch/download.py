"""Resumable, verified HTTP downloads for data acquisition (WavCaps zip parts, AudioCaps CSVs, checkpoints).

Why not a bare ``urlretrieve``: the WavCaps parts are many GB, so a killed job must resume
where it stopped (bytes go to ``<dest>.part``, continued with an HTTP ``Range`` request); a
file is only trusted after its size and sha256 are checked, and only then renamed onto
``dest`` atomically, so an existing ``dest`` is always complete and is never fetched again.
Transient failures (connection errors, stalls, truncated bodies, 5xx/429) are retried with
exponential backoff; other 4xx fail at once.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from scenesynth.utils.atomic import write_json

log = logging.getLogger(__name__)

USER_AGENT = "scenesynth-downloader/1"
_PROGRESS_EVERY_S = 10.0
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")


class DownloadError(RuntimeError):
    """A download failed for good (after retries, on a client error, or on a checksum mismatch)."""


class ChecksumMismatch(DownloadError):
    """A file no longer matches the checksum recorded or pinned for it."""


class _TransientError(Exception):
    """A failure worth retrying: the bytes received so far stay in the .part file."""


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks so multi-GB files need no memory."""
    return _digest(Path(path), "sha256", chunk_size)


def file_checksum(path: str | os.PathLike) -> dict:
    """The ``{"sha256", "size"}`` entry that ``save_checksums`` records for a fetched file."""
    return {"sha256": sha256_file(path), "size": Path(path).stat().st_size}


def load_checksums(path: str | os.PathLike) -> dict[str, dict]:
    """Recorded checksums ``{name: {"sha256": ..., "size": ...}}``; empty if none were recorded yet."""
    path = Path(path)
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def save_checksums(path: str | os.PathLike, checksums: dict[str, dict]) -> None:
    """Write recorded checksums atomically (sorted JSON, so the file diffs cleanly)."""
    write_json(path, checksums)


def _digest(path: Path, algorithm: str, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _mismatch(path: Path, sha256: str | None, size: int | None, md5: str | None = None) -> str | None:
    """Why ``path`` does not match the expected size/sha256/md5, or None when it does."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"size {actual_size} bytes, expected {size}"
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected is not None:
            actual = _digest(path, algorithm)
            if actual != expected.lower():
                return f"{algorithm} {actual}, expected {expected.lower()}"
    return None


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    size: int | None = None,
    md5: str | None = None,
    timeout: float = 60,
    retries: int = 5,
    backoff: float = 2.0,
    chunk_size: int = 1 << 20,
    progress: bool = False,
) -> Path:
    """Fetch ``url`` to ``dest`` (resuming a ``.part`` left by an earlier run), verify, rename; return ``dest``.

    ``md5`` is for sources that publish only that (Zenodo); sha256 is preferred where known.

    ``timeout`` bounds every socket read, so a stalled server fails instead of hanging. Attempt
    ``k`` (k >= 1) waits ``backoff * 2**(k-1)`` seconds first; ``retries`` extra attempts at most.
    """
    dest = Path(dest)
    if dest.exists():
        problem = _mismatch(dest, sha256, size, md5)
        if problem is None:
            log.debug("%s already present and verified; not downloading %s", dest, url)
            return dest
        log.warning("%s exists but has %s; downloading %s again", dest, problem, url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")

    last_cause: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            delay = backoff * 2 ** (attempt - 1)
            log.warning("%s: attempt %d/%d failed (%s); retrying in %.3g s", url, attempt, retries + 1,
                        last_cause, delay)
            time.sleep(delay)
        try:
            _fetch_into_part(url, part, size=size, timeout=timeout, chunk_size=chunk_size, progress=progress)
            break
        except _TransientError as exc:
            last_cause = exc
    else:
        raise DownloadError(f"{url}: failed after {retries + 1} attempt(s); last cause: {last_cause}")

    problem = _mismatch(part, sha256, size, md5)
    if problem is not None:
        part.unlink()  # a corrupt .part must not be resumed forever
        raise DownloadError(f"{url}: downloaded file for {dest} has {problem}; deleted {part.name}")
    os.replace(part, dest)
    log.info("downloaded %s -> %s (%d bytes)", url, dest, dest.stat().st_size)
    return dest


def _fetch_into_part(url: str, part: Path, *, size: int | None, timeout: float, chunk_size: int,
                     progress: bool) -> None:
    """One attempt: append the missing bytes to ``part``; raise _TransientError for retryable failures."""
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        log.warning("%s holds %d bytes, more than the expected %d; starting over", part, offset, size)
        part.unlink()
        offset = 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            match = _UNSATISFIED_RANGE.search(exc.headers.get("Content-Range", ""))
            total = size if size is not None else (int(match.group(1)) if match else None)
            if total == offset:
                log.info("%s: %s already holds all %d bytes", url, part.name, offset)
                return
            log.warning("%s: range %d- not satisfiable; restarting from zero", url, offset)
            part.unlink()
            return _fetch_into_part(url, part, size=size, timeout=timeout, chunk_size=chunk_size,
                                    progress=progress)
        if exc.code >= 500 or exc.code == 429:
            raise _TransientError(f"HTTP {exc.code} {exc.reason}") from exc
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise _TransientError(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}") from exc

    with response:
        mode = "ab"
        if offset and response.status == 206:
            match = _CONTENT_RANGE.search(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                part.unlink()
                raise _TransientError(f"server answered range {offset}- with Content-Range "
                                      f"{response.headers.get('Content-Range')!r}; restarting")
            log.info("%s: resuming at byte %d", url, offset)
        elif offset:
            log.warning("%s: server ignored the Range request (HTTP %d); restarting from zero",
                        url, response.status)
            mode, offset = "wb", 0
        length_header = response.headers.get("Content-Length")
        expected = int(length_header) if length_header is not None else None
        received = 0
        last_report = time.monotonic()
        try:
            with open(part, mode) as f:
                while chunk := response.read(chunk_size):
                    f.write(chunk)
                    received += len(chunk)
                    if progress and time.monotonic() - last_report >= _PROGRESS_EVERY_S:
                        last_report = time.monotonic()
                        total = f"/{(offset + expected) / 2**20:.1f}" if expected is not None else ""
                        log.info("%s: %.1f%s MiB", url, (offset + received) / 2**20, total)
        except (http.client.HTTPException, OSError) as exc:  # timeouts and resets mid-body
            raise _TransientError(f"{type(exc).__name__} after {offset + received} bytes: {exc}") from exc
    if expected is not None and received < expected:
        raise _TransientError(f"truncated body: got {received} of {expected} bytes (now {offset + received} "
                              f"in {part.name})")


def fetch_recorded(url: str, dest: str | os.PathLike, record_path: str | os.PathLike, *,
                   pinned: str | dict | None = None, **options) -> Path:
    """Download ``url`` to ``dest`` once, record its sha256 + size in ``record_path``, verify it on every run.

    ``pinned`` (a sha256, or ``{"sha256", "size"}``) is a hash the source publishes or we know;
    without one the first download is trusted and recorded (trust on first use), and DVC or the
    model folder versions the record. A present file that misses its checksum is deleted before it
    is fetched again (untrusted bytes are never left for a loader); bytes that change upstream stop
    the run and say how to accept them. ``options`` go to :func:`download`.
    """
    dest, record_path = Path(dest), Path(record_path)
    recorded = load_checksums(record_path)
    rec = recorded.get(dest.name)
    pin = {"sha256": pinned} if isinstance(pinned, str) else pinned
    if rec and pin and rec["sha256"] != pin["sha256"].lower():
        raise ChecksumMismatch(f"{dest.name}: {record_path.name} records sha256 {rec['sha256']} but the pinned hash "
                               f"is {pin['sha256']}; delete the folder and fetch it again")
    expected = pin or rec or {}
    sha256, size = expected.get("sha256"), expected.get("size")
    if dest.exists():
        if expected:
            problem = _mismatch(dest, sha256, size)
            if problem:
                log.warning("%s does not match its checksum (%s); deleting it and fetching it again from %s",
                            dest, problem, url)
                dest.unlink()
        else:
            log.info("%s exists and has no recorded checksum; trusting it on first use", dest)
    if not dest.exists():
        try:
            download(url, dest, sha256=sha256, size=size, **options)
        except DownloadError as err:
            if rec and not pin:
                raise DownloadError(f"{err}. The file differs from the copy recorded in {record_path}: it changed "
                                    f"upstream (or the transfer is corrupt). To accept the new version, remove its "
                                    f"entry from {record_path.name} and rerun.") from err
            raise
    if rec is None:
        recorded[dest.name] = ({"sha256": sha256.lower(), "size": dest.stat().st_size} if sha256
                               else file_checksum(dest))  # a verified pin needs no second pass over the file
        save_checksums(record_path, recorded)
    return dest


def listing_or_saved(fetch_listing, saved: str | os.PathLike, entry_type) -> list:
    """A source's file listing (``fetch_listing()``), or, with the source unreachable, the listing an
    earlier run saved at ``saved`` (entries rebuilt as ``entry_type(**entry)``), so a rerun offline
    still verifies, and never re-fetches, what is there."""
    saved = Path(saved)
    try:
        return fetch_listing()
    except DownloadError:
        if not saved.is_file():
            raise
        log.warning("source unreachable; using the file list saved by an earlier run (%s)", saved)
        return [entry_type(**entry) for entry in json.loads(saved.read_text())]


def download_options(params: dict) -> dict:
    """The keyword arguments of :func:`fetch_recorded` that params.yaml's `data.download` sets."""
    cfg = params["data"]["download"]
    return {"timeout": cfg["timeout"], "retries": cfg["retries"], "backoff": cfg["backoff"], "progress": True}
