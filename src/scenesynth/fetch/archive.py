"""Read (split) zip archives in place and extract their FLAC members safely.

WavCaps ships AudioSet_SL as an Info-ZIP split archive (``zip -s``): parts
``AudioSet_SL.z01``, ``.z02``, ..., and a final ``AudioSet_SL.zip``. Every part
is a "disk". The central directory stores, per member, the disk on which its
local header starts and an offset *relative to the start of that disk*; the
first part begins with the 4-byte split signature ``PK\\x07\\x08`` (0x08074b50),
and offsets on disk 0 count it. Python's ``zipfile`` ignores disk numbers, so
on the plain concatenation of the parts it finds the central directory but
reads members at wrong offsets (``zip -FF`` fixes this by rewriting the
archive, which costs a second copy of ~100 GB).

Here the parts are presented as one stream (:class:`MultiPartFile`, no copy),
the central directory is parsed directly (EOCD and ZIP64 records) and every
(disk, relative offset) is mapped to ``sum(sizes of previous parts) + offset``.
Members are decompressed (stored or deflate) while streaming, CRC32-checked.
A single, non-split ``.zip`` goes through the same code as a one-part archive.
"""

from __future__ import annotations

import bisect
import io
import os
import re
import stat
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

from scenesynth.utils.atomic import atomic_path

__all__ = [
    "ArchiveFormatError",
    "ExtractionReport",
    "MemberInfo",
    "MultiPartFile",
    "UnsafeArchiveError",
    "extract_flac_members",
    "extract_member",
    "iter_members",
    "open_member",
    "read_member",
    "split_parts",
    "unsafe_name_reason",
]

_EOCD_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_EOCD_SIGNATURE = b"PK\x06\x06"
_CENTRAL_HEADER_SIGNATURE = b"PK\x01\x02"
_LOCAL_HEADER_SIGNATURE = b"PK\x03\x04"
_EOCD = struct.Struct("<4s4H2LH")  # sig, disk, cd disk, entries here, entries, cd size, cd offset, comment len
_ZIP64_LOCATOR = struct.Struct("<4sLQL")  # sig, disk of zip64 eocd, its relative offset, total disks
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")  # sig, size, versions, disk, cd disk, entries here, entries, cd size, offset
_CENTRAL_HEADER = struct.Struct("<4s6H3L5H2L")
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_MAX_EOCD_SEARCH = _EOCD.size + 0xFFFF  # the EOCD may be followed by a comment of up to 64 KiB
_STORED, _DEFLATED = 0, 8
_FLAG_ENCRYPTED, _FLAG_UTF8 = 0x1, 0x800
_CHUNK = 1 << 20


class ArchiveFormatError(ValueError):
    """The archive is not a zip we can read (truncated, missing part, unsupported feature)."""


class UnsafeArchiveError(ValueError):
    """A member would be written outside the target or is a symlink: the archive is not trusted."""


@dataclass(frozen=True)
class MemberInfo:
    name: str
    size: int
    compressed_size: int
    crc: int
    compress_type: int = _STORED
    flags: int = 0
    external_attr: int = 0
    header_offset: int = 0  # global offset of the local header in the concatenated parts

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.external_attr >> 16)

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")


@dataclass
class ExtractionReport:
    extracted: list[str] = field(default_factory=list)
    skipped_existing: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (member name, reason)


class MultiPartFile(io.RawIOBase):
    """Several files read as one contiguous, seekable byte stream, without copying them."""

    def __init__(self, parts: Sequence[str | os.PathLike]):
        super().__init__()
        if not parts:
            raise ValueError("MultiPartFile needs at least one part")
        self.parts = [Path(p) for p in parts]
        self.part_sizes = [p.stat().st_size for p in self.parts]
        self.part_starts = [sum(self.part_sizes[:i]) for i in range(len(self.parts))]
        self.size = sum(self.part_sizes)
        self._handles: dict[int, BinaryIO] = {}
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._position = base + offset
        return self._position

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        self._check_open()
        end = self.size if size is None or size < 0 else min(self.size, self._position + size)
        chunks = []
        while self._position < end:
            index = self._part_index(self._position)
            within = self._position - self.part_starts[index]
            count = min(end - self._position, self.part_sizes[index] - within)
            handle = self._handle(index)
            handle.seek(within)
            data = handle.read(count)
            if len(data) != count:
                raise ArchiveFormatError(f"{self.parts[index]} shrank while being read")
            chunks.append(data)
            self._position += count
        return b"".join(chunks)

    def readall(self) -> bytes:
        return self.read(-1)

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()
        super().close()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed MultiPartFile")

    def _part_index(self, position: int) -> int:
        """Index of the last non-empty part starting at or before ``position``."""
        index = bisect.bisect_right(self.part_starts, position) - 1
        while index > 0 and not self.part_sizes[index]:
            index -= 1
        return index

    def _handle(self, index: int) -> BinaryIO:
        if index not in self._handles:  # opened lazily: a 100-part archive need not hold 100 fds at once
            self._handles[index] = open(self.parts[index], "rb")
        return self._handles[index]


def split_parts(archive: str | os.PathLike) -> list[Path]:
    """Given ``X.zip``, return ``[X.z01, X.z02, ..., X.zip]`` (just ``[X.zip]`` if it is not split)."""
    final = Path(archive)
    parts = []
    for number in range(1, 10_000):
        candidate = final.with_suffix(f".z{number:02d}")
        if not candidate.exists():
            break
        parts.append(candidate)
    return parts + [final]


def _as_parts(parts: Sequence[str | os.PathLike] | str | os.PathLike) -> list[Path]:
    return [Path(parts)] if isinstance(parts, (str, os.PathLike)) else [Path(p) for p in parts]


def _archive_name(parts: Sequence[Path]) -> str:
    return str(parts[-1])


def _read_exact(stream: BinaryIO, offset: int, size: int, what: str) -> bytes:
    stream.seek(offset)
    data = stream.read(size)
    if len(data) != size:
        raise ArchiveFormatError(f"truncated archive while reading {what} at offset {offset}")
    return data


def _global_offset(stream: MultiPartFile, disk: int, relative_offset: int) -> int:
    if disk >= len(stream.part_starts):
        raise ArchiveFormatError(
            f"archive refers to disk {disk + 1} but only {len(stream.parts)} part(s) were given"
        )
    return stream.part_starts[disk] + relative_offset


def _read_central_directory(stream: MultiPartFile) -> list[MemberInfo]:
    tail_start = max(0, stream.size - _MAX_EOCD_SEARCH)
    tail = _read_exact(stream, tail_start, stream.size - tail_start, "end of central directory")
    eocd_at = tail.rfind(_EOCD_SIGNATURE)
    if eocd_at < 0 or eocd_at + _EOCD.size > len(tail):
        raise ArchiveFormatError("no end of central directory record: not a zip, or last part missing")
    eocd_position = tail_start + eocd_at
    (_, this_disk, cd_disk, _, entries, cd_size, cd_offset, _) = _EOCD.unpack_from(tail, eocd_at)
    if len(stream.parts) > 1 and this_disk != len(stream.parts) - 1:
        raise ArchiveFormatError(
            f"last part says it is disk {this_disk + 1}, but {len(stream.parts)} parts were given"
        )
    locator_position = eocd_position - _ZIP64_LOCATOR.size
    locator = b""
    if locator_position >= 0:
        locator = _read_exact(stream, locator_position, _ZIP64_LOCATOR.size, "zip64 locator")
    zip64 = locator[:4] == _ZIP64_LOCATOR_SIGNATURE
    if zip64:
        _, zip64_disk, zip64_offset, _ = _ZIP64_LOCATOR.unpack(locator)
        zip64_position = _global_offset(stream, zip64_disk, zip64_offset)
        fields = _ZIP64_EOCD.unpack(_read_exact(stream, zip64_position, _ZIP64_EOCD.size, "zip64 end record"))
        if fields[0] != _ZIP64_EOCD_SIGNATURE:
            raise ArchiveFormatError("bad zip64 end of central directory signature")
        cd_disk, entries, cd_size, cd_offset = fields[5], fields[7], fields[8], fields[9]
    if len(stream.parts) == 1 and not zip64:
        # A single-file zip may carry a prefix (self-extractor); zipfile applies the same correction.
        cd_start = eocd_position - cd_size
    else:
        cd_start = _global_offset(stream, cd_disk, cd_offset)
    prefix = cd_start - cd_offset if len(stream.parts) == 1 else 0
    directory = _read_exact(stream, cd_start, cd_size, "central directory")
    members, position = [], 0
    for _ in range(entries):
        members.append(_parse_central_header(stream, directory, position, prefix))
        position += _CENTRAL_HEADER.size + sum(_CENTRAL_HEADER.unpack_from(directory, position)[10:13])
    return members


def _parse_central_header(stream: MultiPartFile, directory: bytes, position: int, prefix: int) -> MemberInfo:
    if position + _CENTRAL_HEADER.size > len(directory):
        raise ArchiveFormatError("central directory is shorter than its entry count")
    (signature, _, _, flags, method, _, _, crc, compressed, size, name_len, extra_len, _, disk, _, external,
     offset) = _CENTRAL_HEADER.unpack_from(directory, position)
    if signature != _CENTRAL_HEADER_SIGNATURE:
        raise ArchiveFormatError(f"bad central directory entry signature at {position}")
    name_start = position + _CENTRAL_HEADER.size
    raw_name = directory[name_start : name_start + name_len]
    name = raw_name.decode("utf-8" if flags & _FLAG_UTF8 else "cp437")
    extra = directory[name_start + name_len : name_start + name_len + extra_len]
    size, compressed, offset, disk = _apply_zip64_extra(extra, size, compressed, offset, disk)
    header_offset = _global_offset(stream, disk, offset) + prefix
    return MemberInfo(name, size, compressed, crc, method, flags, external, header_offset)


def _apply_zip64_extra(extra: bytes, size: int, compressed: int, offset: int, disk: int
                       ) -> tuple[int, int, int, int]:
    """ZIP64 stores the real values, in this order, only for the fields that are saturated."""
    position = 0
    while position + 4 <= len(extra):
        tag, length = struct.unpack_from("<2H", extra, position)
        if tag == 0x0001:
            values = iter(struct.unpack_from(f"<{length // 8}Q", extra, position + 4))
            size = next(values) if size == 0xFFFFFFFF else size
            compressed = next(values) if compressed == 0xFFFFFFFF else compressed
            offset = next(values) if offset == 0xFFFFFFFF else offset
            if disk == 0xFFFF:
                disk = struct.unpack_from("<L", extra, position + 4 + 8 * (length // 8))[0]
            break
        position += 4 + length
    return size, compressed, offset, disk


def iter_members(parts: Sequence[str | os.PathLike] | str | os.PathLike) -> Iterator[MemberInfo]:
    """Members of a split (``.z01``..``.zip``, in order) or single zip, from its central directory."""
    with MultiPartFile(_as_parts(parts)) as stream:
        yield from _read_central_directory(stream)


def _iter_member_chunks(stream: MultiPartFile, member: MemberInfo, archive: str) -> Iterator[bytes]:
    """Decompressed bytes of ``member`` in chunks; raises ArchiveFormatError on CRC or size mismatch."""
    if member.flags & _FLAG_ENCRYPTED:
        raise ArchiveFormatError(f"{archive}: member {member.name!r} is encrypted")
    if member.compress_type not in (_STORED, _DEFLATED):
        raise ArchiveFormatError(
            f"{archive}: member {member.name!r} uses unsupported compression method {member.compress_type}"
        )
    header = _read_exact(stream, member.header_offset, _LOCAL_HEADER.size, f"local header of {member.name!r}")
    fields = _LOCAL_HEADER.unpack(header)
    if fields[0] != _LOCAL_HEADER_SIGNATURE:
        raise ArchiveFormatError(f"{archive}: no local header for {member.name!r} at {member.header_offset}")
    stream.seek(member.header_offset + _LOCAL_HEADER.size + fields[9] + fields[10])  # name + local extra
    decompressor = zlib.decompressobj(-15) if member.compress_type == _DEFLATED else None
    remaining, crc, produced = member.compressed_size, 0, 0
    while remaining:
        raw = stream.read(min(_CHUNK, remaining))
        if not raw:
            raise ArchiveFormatError(f"{archive}: member {member.name!r} is truncated")
        remaining -= len(raw)
        data = decompressor.decompress(raw) if decompressor else raw
        if decompressor and not remaining:
            data += decompressor.flush()
        crc, produced = zlib.crc32(data, crc), produced + len(data)
        yield data
    if produced != member.size or crc != member.crc:
        raise ArchiveFormatError(
            f"{archive}: member {member.name!r} fails its check (size {produced}/{member.size}, "
            f"crc {crc:08x}/{member.crc:08x})"
        )


def open_member(parts: Sequence[str | os.PathLike] | str | os.PathLike, member: MemberInfo) -> Iterator[bytes]:
    """Stream a member's bytes chunk by chunk (CRC checked at the end)."""
    part_paths = _as_parts(parts)
    with MultiPartFile(part_paths) as stream:
        yield from _iter_member_chunks(stream, member, _archive_name(part_paths))


def read_member(parts: Sequence[str | os.PathLike] | str | os.PathLike, member: MemberInfo) -> bytes:
    return b"".join(open_member(parts, member))


def extract_member(parts: Sequence[str | os.PathLike] | str | os.PathLike, member: MemberInfo,
                   dest_path: str | os.PathLike) -> Path:
    """Write one member to ``dest_path`` atomically; nothing appears there if the CRC check fails."""
    with atomic_path(dest_path) as tmp, open(tmp, "wb") as out:
        for chunk in open_member(parts, member):
            out.write(chunk)
    return Path(dest_path)


_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")


def _unsafe_reason(member: MemberInfo) -> str | None:
    return "is a symbolic link" if member.is_symlink else unsafe_name_reason(member.name)


def unsafe_name_reason(name: str) -> str | None:
    """Why an archive member's name could write outside the target folder (zip and tar alike), or None."""
    if "\x00" in name:
        return "has a NUL byte in its name"
    if name.startswith(("/", "\\")):
        return "has an absolute path"
    if _DRIVE_LETTER.match(name):
        return "has a drive letter"
    if ".." in re.split(r"[/\\]", name):
        return "has a '..' component"
    return None


def _destination(member: MemberInfo, target: Path, flatten: bool) -> Path:
    relative = Path(member.name.replace("\\", "/").rsplit("/", 1)[-1]) if flatten else Path(member.name)
    destination = (target / relative).resolve()
    if destination == target or target not in destination.parents:
        raise UnsafeArchiveError(f"member {member.name!r} would be written outside {target}")
    return destination


def _flac_readability_problem(path: Path) -> str | None:
    import soundfile  # local import: listing or extracting archives should not need libsndfile

    try:
        with soundfile.SoundFile(path) as audio:
            while len(audio.read(1 << 16, dtype="int16")):
                pass
    except Exception as error:  # libsndfile raises RuntimeError/LibsndfileError/others on bad data
        return f"unreadable FLAC: {error}"
    return None


class _RejectedMember(Exception):
    pass


def extract_flac_members(parts: Sequence[str | os.PathLike] | str | os.PathLike, target_dir: str | os.PathLike,
                         flatten: bool = True, check_audio: bool = True,
                         suffixes: tuple[str, ...] = (".flac",)) -> ExtractionReport:
    """Extract every ``*.flac`` (or other ``suffixes``) member into ``target_dir``; resumable, atomic, safe.

    All member names (not only FLAC ones) are validated before anything is written: one absolute,
    drive-letter, ``..`` or symlink member makes the whole archive suspect, so UnsafeArchiveError is
    raised and nothing is extracted. Files already present with the member's size are skipped.
    CRC mismatches and (with ``check_audio``) FLAC data soundfile cannot decode are left out and
    listed in ``report.rejected``; so are later members whose flattened name repeats an earlier one.
    """
    part_paths = _as_parts(parts)
    archive = _archive_name(part_paths)
    target = Path(target_dir).resolve()
    members = list(iter_members(part_paths))
    flac_members = []
    for member in members:
        reason = _unsafe_reason(member)
        if reason:
            raise UnsafeArchiveError(f"{archive}: member {member.name!r} {reason}; nothing extracted")
        if not member.is_dir and member.name.lower().endswith(suffixes):
            try:
                flac_members.append((member, _destination(member, target, flatten)))
            except UnsafeArchiveError as error:
                raise UnsafeArchiveError(f"{archive}: {error}; nothing extracted") from None

    report, claimed = ExtractionReport(), set()
    with MultiPartFile(part_paths) as stream:
        for member, destination in flac_members:
            if destination in claimed:
                report.rejected.append((member.name, f"duplicate destination {destination.name}"))
                continue
            claimed.add(destination)
            if destination.is_file() and destination.stat().st_size == member.size:
                report.skipped_existing.append(member.name)
                continue
            try:
                with atomic_path(destination) as tmp:
                    with open(tmp, "wb") as out:
                        for chunk in _iter_member_chunks(stream, member, archive):
                            out.write(chunk)
                    problem = _flac_readability_problem(tmp) if check_audio else None
                    if problem:
                        raise _RejectedMember(problem)
            except (ArchiveFormatError, _RejectedMember) as error:
                report.rejected.append((member.name, str(error)))
                continue
            report.extracted.append(member.name)
    return report
