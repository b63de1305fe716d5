"""Safe extraction of (compressed) tar archives: every member is judged before a byte is written.

The DCASE 2024 Task 7 development set ships its reference embeddings as ``embeddings.tar.xz``
(docs/paper.md section 6). A tar member can be a symbolic or hard link, a device, or a name
that climbs out of the target (``../x``, ``/etc/x``); Python's own ``extractall`` writes members
one by one, so a bad member late in the archive would find the earlier ones already on disk.
Here the whole member list is read first (for an xz stream that means decompressing it once,
which also finds a truncated or corrupt stream), any unsafe member refuses the archive with
nothing written, and only then are the wanted regular files extracted, into a fresh temporary
folder that replaces the target in one rename. An interrupted extraction leaves only that
temporary folder, which the next run removes.
"""

from __future__ import annotations

import lzma
import shutil
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from scenesynth.fetch.archive import ArchiveFormatError, UnsafeArchiveError, unsafe_name_reason

__all__ = ["TarExtraction", "extract_tar", "list_tar"]

_STREAM_ERRORS = (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error, OSError)


@dataclass
class TarExtraction:
    """What an extraction did: files written (relative names) and members left out, with why."""

    extracted: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _unsafe_reason(member: tarfile.TarInfo) -> str | None:
    if member.issym():
        return f"is a symbolic link (to {member.linkname!r})"
    if member.islnk():
        return f"is a hard link (to {member.linkname!r})"
    if not (member.isreg() or member.isdir()):
        return "is not a regular file or folder (device, fifo or other special member)"
    return unsafe_name_reason(member.name)


def list_tar(archive: str | Path) -> list[tarfile.TarInfo]:
    """Every member of ``archive`` (any compression tarfile reads); ArchiveFormatError names the file
    when the stream is corrupt or truncated."""
    archive = Path(archive)
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            return tar.getmembers()
    except _STREAM_ERRORS as err:
        raise ArchiveFormatError(f"{archive}: corrupt or truncated archive ({type(err).__name__}: {err})") from err


def extract_tar(archive: str | Path, target: str | Path, wanted: Callable[[PurePosixPath], str | None]) -> TarExtraction:
    """Extract the regular-file members ``wanted`` accepts into ``target`` (replaced as a whole).

    ``wanted(name)`` returns None to extract the member, or the reason to leave it out (recorded in
    ``skipped``). Links, special files, absolute names, drive letters and ``..`` anywhere in the
    archive raise UnsafeArchiveError before anything is written; a corrupt stream raises
    ArchiveFormatError and leaves the previous ``target`` as it was.
    """
    archive, target = Path(archive), Path(target)
    members = list_tar(archive)
    for member in members:
        reason = _unsafe_reason(member)
        if reason:
            raise UnsafeArchiveError(f"{archive}: member {member.name!r} {reason}; nothing extracted")
    report, chosen = TarExtraction(), {}
    for member in members:
        if member.isdir():
            continue
        relative = PurePosixPath(member.name.replace("\\", "/"))
        refusal = wanted(relative)
        if refusal:
            report.skipped.append((member.name, refusal))
        elif str(relative) in chosen:
            report.skipped.append((member.name, "repeats an earlier member's name"))
        else:
            chosen[str(relative)] = member.name
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)  # debris of an interrupted run
    staging.mkdir(parents=True)
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                relative = str(PurePosixPath(member.name.replace("\\", "/")))
                if chosen.get(relative) != member.name:
                    continue
                destination = (staging / relative).resolve()
                if staging.resolve() not in destination.parents:  # belt and braces after the name checks
                    raise UnsafeArchiveError(f"{archive}: member {member.name!r} would leave {target}")
                destination.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                with open(destination, "wb") as out:
                    shutil.copyfileobj(source, out)
                report.extracted.append(relative)
    except _STREAM_ERRORS as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise ArchiveFormatError(f"{archive}: corrupt or truncated archive ({type(err).__name__}: {err})") from err
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return report
