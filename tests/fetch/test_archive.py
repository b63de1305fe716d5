"""Split-zip reading and safe FLAC extraction (scenesynth.fetch.archive).

Split fixtures are made two ways: ``make_split_zip`` below rewrites a normal zip the way Info-ZIP's
``zip -s`` lays one out (split signature first, per-member disk number + disk-relative offset,
EOCD disk fields), and, where the ``zip`` command exists, a real ``zip -s 64k`` archive is read too.
"""

from __future__ import annotations

import io
import random
import shutil
import stat
import struct
import subprocess
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile

from scenesynth.fetch.archive import (
    MultiPartFile,
    UnsafeArchiveError,
    extract_flac_members,
    extract_member,
    iter_members,
    read_member,
    split_parts,
)

PREFIX = "mnt/fast/nobackup/scratch4weeks/xm00178/WavCaps/data/waveforms/AudioSet_SL_flac/"
SPLIT_SIGNATURE = b"PK\x07\x08"


def flac_bytes(seed: int, seconds: float = 0.2, sample_rate: int = 32_000) -> bytes:
    """A small valid FLAC (white noise compresses badly, so the archive spans several parts)."""
    noise = np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * sample_rate)).astype("float32")
    buffer = io.BytesIO()
    soundfile.write(buffer, noise, sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def make_zip(path: Path, members: dict[str, bytes], compress_types: dict[str, int] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for index, (name, data) in enumerate(members.items()):
            default = zipfile.ZIP_DEFLATED if index % 2 else zipfile.ZIP_STORED  # exercise both methods
            archive.writestr(name, data, compress_type=(compress_types or {}).get(name, default))
    return path


def make_split_zip(zip_path: Path, part_size: int) -> list[Path]:
    """Rewrite a normal (non-ZIP64, no comment) zip as an Info-ZIP-style split archive.

    As ``zip -s`` does: the stream starts with the split signature 0x08074b50 (counted in disk 0's
    offsets), is cut every ``part_size`` bytes (headers and data may straddle cuts; the EOCD is kept
    whole in the last part), each central entry gets its local header's disk number and offset
    relative to that disk, and the EOCD gets this disk, the central directory's disk and relative
    offset, and the entry count on the last disk. Parts are named ``.z01``, ``.z02``, ..., ``.zip``.
    """
    stream = bytearray(SPLIT_SIGNATURE + zip_path.read_bytes())
    shift = len(SPLIT_SIGNATURE)
    eocd = len(stream) - 22
    assert stream[eocd : eocd + 4] == b"PK\x05\x06", "fixture zip must have no comment"
    entries, cd_size, cd_offset = struct.unpack_from("<HLL", stream, eocd + 10)
    locator = eocd - 20
    zip64_record = None
    if stream[locator : locator + 4] == b"PK\x06\x07":  # ZIP64 end record + locator precede the EOCD
        zip64_record = struct.unpack_from("<Q", stream, locator + 8)[0] + shift
        entries, cd_size, cd_offset = struct.unpack_from("<3Q", stream, zip64_record + 32)
    end_records = zip64_record if zip64_record is not None else eocd  # never cut inside these
    cuts = [cut for cut in range(part_size, len(stream), part_size) if not end_records < cut < len(stream)]
    starts = [0] + cuts
    last_disk = len(starts) - 1

    def disk_and_offset(position: int) -> tuple[int, int]:
        disk = max(index for index, start in enumerate(starts) if start <= position)
        return disk, position - starts[disk]

    cd_start = cd_offset + shift
    position, on_last_disk = cd_start, 0
    for _ in range(entries):
        assert stream[position : position + 4] == b"PK\x01\x02"
        disk, relative = disk_and_offset(struct.unpack_from("<L", stream, position + 42)[0] + shift)
        struct.pack_into("<H", stream, position + 34, disk)
        struct.pack_into("<L", stream, position + 42, relative)
        on_last_disk += disk_and_offset(position)[0] == last_disk
        name_len, extra_len, comment_len = struct.unpack_from("<3H", stream, position + 28)
        position += 46 + name_len + extra_len + comment_len
    cd_disk, cd_relative = disk_and_offset(cd_start)
    struct.pack_into("<4H2L", stream, eocd + 4, last_disk, cd_disk, min(on_last_disk, 0xFFFF), min(entries, 0xFFFF),
                     cd_size, cd_relative)
    if zip64_record is not None:
        struct.pack_into("<2LQ", stream, zip64_record + 16, last_disk, cd_disk, on_last_disk)
        struct.pack_into("<Q", stream, zip64_record + 48, cd_relative)
        struct.pack_into("<LQL", stream, locator + 4, *disk_and_offset(zip64_record), len(starts))

    stem = zip_path.with_suffix("")
    names = [Path(f"{stem}.z{index + 1:02d}") for index in range(len(starts) - 1)] + [zip_path]
    for name, start, end in zip(names, starts, starts[1:] + [len(stream)]):
        name.write_bytes(bytes(stream[start:end]))
    return names


@pytest.fixture
def flac_members() -> dict[str, bytes]:
    members = {f"{PREFIX}Y{ytid}.flac": flac_bytes(seed) for seed, ytid in enumerate(["abc-123", "DEF_456", "x0"])}
    members[f"{PREFIX}Yupper.FLAC"] = flac_bytes(7)
    members["mnt/json/as_final.json"] = b'{"data": []}'
    return members


@pytest.fixture
def split_archive(tmp_path: Path, flac_members: dict[str, bytes]) -> list[Path]:
    return make_split_zip(make_zip(tmp_path / "AudioSet_SL.zip", flac_members), part_size=5_000)


def test_multipart_file_matches_concatenated_bytes_across_boundaries(tmp_path: Path) -> None:
    rng = random.Random(0)
    sizes = [7, 0, 1, 13, 0, 5, 20]
    contents = [bytes(rng.randrange(256) for _ in range(size)) for size in sizes]
    parts = []
    for index, data in enumerate(contents):
        parts.append(tmp_path / f"part{index}")
        parts[-1].write_bytes(data)
    expected = io.BytesIO(b"".join(contents))
    with MultiPartFile(parts) as joined:
        assert joined.readable() and joined.seekable() and joined.size == sum(sizes)
        assert joined.read() == expected.read()
        for _ in range(300):
            whence = rng.choice([io.SEEK_SET, io.SEEK_CUR, io.SEEK_END])
            offset = rng.randrange(-10, 50) if whence != io.SEEK_SET else rng.randrange(0, 55)
            base = {io.SEEK_SET: 0, io.SEEK_CUR: expected.tell(), io.SEEK_END: sum(sizes)}[whence]
            if base + offset < 0:
                continue  # both raise on negative positions; not what this test is about
            assert joined.seek(offset, whence) == expected.seek(offset, whence)
            count = rng.randrange(-1, 30)
            assert joined.read(count) == expected.read(count)
            assert joined.tell() == expected.tell()
    assert joined.closed
    with pytest.raises(ValueError):
        joined.read(1)


def test_helper_split_archive_looks_like_info_zip(split_archive: list[Path]) -> None:
    count = len(split_archive)
    assert [p.suffix for p in split_archive] == [f".z{i:02d}" for i in range(1, count)] + [".zip"]
    assert count >= 4
    assert split_archive[0].read_bytes()[:4] == SPLIT_SIGNATURE
    assert split_parts(split_archive[-1]) == split_archive
    this_disk, cd_disk = struct.unpack_from("<2H", split_archive[-1].read_bytes()[-22:], 4)
    assert this_disk == count - 1 and cd_disk >= count - 2
    assert len({m.header_offset // 5_000 for m in iter_members(split_archive)}) >= 3


def test_plain_zipfile_misreads_the_concatenation(tmp_path: Path, split_archive: list[Path]) -> None:
    """Why this module exists: zipfile ignores disk numbers, so members are looked up at wrong offsets."""
    concatenated = tmp_path / "concatenated.zip"
    concatenated.write_bytes(b"".join(p.read_bytes() for p in split_archive))
    with zipfile.ZipFile(concatenated) as archive:
        failures = 0
        for name in archive.namelist():
            try:
                archive.read(name)
            except zipfile.BadZipFile:
                failures += 1
    assert failures > 0


def test_split_round_trip(tmp_path: Path, split_archive: list[Path], flac_members: dict[str, bytes]) -> None:
    members = list(iter_members(split_archive))
    assert [m.name for m in members] == list(flac_members)
    for member in members:
        data = read_member(split_archive, member)
        assert data == flac_members[member.name]
        assert zlib.crc32(data) == member.crc and len(data) == member.size
    destination = extract_member(split_archive, members[0], tmp_path / "one" / "Y.flac")
    assert destination.read_bytes() == flac_members[members[0].name]


def test_single_zip_uses_same_api_even_with_a_prefix(tmp_path: Path, flac_members: dict[str, bytes]) -> None:
    normal = make_zip(tmp_path / "plain.zip", flac_members)
    prefixed = tmp_path / "prefixed.zip"
    prefixed.write_bytes(b"#!self-extractor stub\n" * 5 + normal.read_bytes())
    for archive in (normal, prefixed, [normal]):
        assert {m.name: read_member(archive, m) for m in iter_members(archive)} == flac_members


def test_extract_flac_members_flattens_and_resumes(
    tmp_path: Path, split_archive: list[Path], flac_members: dict[str, bytes]
) -> None:
    target = tmp_path / "audio"
    report = extract_flac_members(split_archive, target)
    flacs = [name for name in flac_members if name.lower().endswith(".flac")]
    assert report.extracted == flacs and not report.rejected and not report.skipped_existing
    assert sorted(p.name for p in target.iterdir()) == sorted(name.rsplit("/", 1)[1] for name in flacs)
    for name in flacs:
        assert (target / name.rsplit("/", 1)[1]).read_bytes() == flac_members[name]
        assert soundfile.info(target / name.rsplit("/", 1)[1]).samplerate == 32_000

    (target / "Yx0.flac").unlink()
    (target / "YDEF_456.flac").write_bytes(b"half")  # an interrupted copy from some other tool
    again = extract_flac_members(split_archive, target)
    assert sorted(again.extracted) == sorted([f"{PREFIX}Yx0.flac", f"{PREFIX}YDEF_456.flac"])
    assert sorted(again.skipped_existing) == sorted([f"{PREFIX}Yabc-123.flac", f"{PREFIX}Yupper.FLAC"])
    assert (target / "YDEF_456.flac").read_bytes() == flac_members[f"{PREFIX}YDEF_456.flac"]


def test_zip64_records_are_followed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   flac_members: dict[str, bytes]) -> None:
    """The real archive is far over 4 GiB: shrink zipfile's limits so it writes ZIP64 records for a tiny one."""
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 1_000)
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 2)
    archive = make_zip(tmp_path / "zip64.zip", flac_members)
    monkeypatch.undo()
    raw = archive.read_bytes()
    assert b"PK\x06\x06" in raw and b"PK\x06\x07" in raw  # ZIP64 end record and locator present
    members = list(iter_members(archive))
    assert any(m.header_offset > 1_000 for m in members)
    assert {m.name: read_member(archive, m) for m in members} == flac_members


def test_split_archive_with_zip64_end_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              flac_members: dict[str, bytes]) -> None:
    """AudioSet_SL has > 65 535 members, so its end records are ZIP64 ones, located through disk numbers."""
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 2)
    archive = make_zip(tmp_path / "AS64.zip", flac_members)
    monkeypatch.undo()
    parts = make_split_zip(archive, part_size=4_000)
    assert len(parts) >= 4 and b"PK\x06\x07" in parts[-1].read_bytes()
    report = extract_flac_members(parts, tmp_path / "audio")
    assert len(report.extracted) == 4 and not report.rejected
    for name in report.extracted:
        assert (tmp_path / "audio" / name.rsplit("/", 1)[1]).read_bytes() == flac_members[name]


def test_extract_without_flatten_keeps_member_paths(tmp_path: Path, flac_members: dict[str, bytes]) -> None:
    archive = make_zip(tmp_path / "plain.zip", flac_members)
    report = extract_flac_members(archive, tmp_path / "tree", flatten=False)
    assert len(report.extracted) == 4
    assert (tmp_path / "tree" / f"{PREFIX}Yx0.flac").read_bytes() == flac_members[f"{PREFIX}Yx0.flac"]


def _symlink_zip(path: Path, good: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{PREFIX}Ygood.flac", good)
        link = zipfile.ZipInfo(f"{PREFIX}Ylink.flac")
        link.create_system = 3  # Unix, so the high 16 bits of external_attr are a st_mode
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    return path


@pytest.mark.parametrize(
    "bad_name",
    ["../../x.flac", "/etc/x.flac", "C:/Windows/x.flac", "mnt/../x.flac", "mnt\\..\\..\\x.flac", "../notes.json"],
)
def test_unsafe_member_aborts_before_writing_anything(tmp_path: Path, bad_name: str) -> None:
    archive = make_zip(tmp_path / "evil.zip", {f"{PREFIX}Ygood.flac": flac_bytes(1), bad_name: flac_bytes(2)})
    target = tmp_path / "sandbox" / "audio"
    with pytest.raises(UnsafeArchiveError) as caught:
        extract_flac_members(archive, target)
    assert "evil.zip" in str(caught.value) and repr(bad_name) in str(caught.value)
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["evil.zip"]


def test_symlink_member_is_refused(tmp_path: Path) -> None:
    archive = _symlink_zip(tmp_path / "links.zip", flac_bytes(3))
    target = tmp_path / "audio"
    with pytest.raises(UnsafeArchiveError, match="Ylink.flac.*symbolic link"):
        extract_flac_members(archive, target)
    assert not target.exists()


def test_corrupt_flac_and_crc_mismatch_are_rejected_with_reason(tmp_path: Path) -> None:
    good, broken_audio, bit_flipped = flac_bytes(4), b"fLaC" + bytes(range(256)) * 8, flac_bytes(5)
    names = [f"{PREFIX}Ygood.flac", f"{PREFIX}Ybroken.flac", f"{PREFIX}Yflipped.flac"]
    archive = make_zip(tmp_path / "mixed.zip", dict(zip(names, [good, broken_audio, bit_flipped])),
                       compress_types=dict.fromkeys(names, zipfile.ZIP_STORED))
    raw = bytearray(archive.read_bytes())
    flipped_at = raw.index(bit_flipped) + 1000
    raw[flipped_at] ^= 0xFF
    archive.write_bytes(bytes(raw))

    target = tmp_path / "audio"
    report = extract_flac_members(archive, target)
    assert report.extracted == [names[0]]
    reasons = dict(report.rejected)
    assert reasons.keys() == {names[1], names[2]}
    assert "unreadable FLAC" in reasons[names[1]]
    assert "crc" in reasons[names[2]]
    assert sorted(p.name for p in target.iterdir()) == ["Ygood.flac"]  # no temp files left behind


@pytest.mark.skipif(shutil.which("zip") is None, reason="Info-ZIP `zip` command not installed")
def test_reads_a_real_info_zip_split_archive(tmp_path: Path) -> None:
    source = tmp_path / "src"
    member_dir = source / "mnt" / "wavcaps" / "AudioSet_SL_flac"
    member_dir.mkdir(parents=True)
    expected = {}
    for seed in range(3):  # ~64 KB of FLAC each; zip -s needs parts of at least 64 KiB
        data = flac_bytes(seed, seconds=1.0)
        (member_dir / f"Y{seed}.flac").write_bytes(data)
        expected[f"Y{seed}.flac"] = data
    (member_dir / "Y0.json").write_text("{}")
    subprocess.run(["zip", "-q", "-r", "-s", "64k", str(tmp_path / "AS.zip"), "mnt"], cwd=source, check=True)
    parts = split_parts(tmp_path / "AS.zip")
    assert len(parts) >= 3 and parts[0].read_bytes()[:4] == SPLIT_SIGNATURE

    report = extract_flac_members(parts, tmp_path / "audio")
    assert len(report.extracted) == 3 and not report.rejected
    assert {p.name: p.read_bytes() for p in (tmp_path / "audio").iterdir()} == expected


@pytest.mark.skipif(shutil.which("zip") is None, reason="Info-ZIP `zip` command not installed")
def test_info_zip_accepts_the_helper_split_archive(tmp_path: Path, split_archive: list[Path],
                                                   flac_members: dict[str, bytes]) -> None:
    """Cross-check of make_split_zip: Info-ZIP's `zip -FF` merges it into a zip that zipfile reads.

    Not with `-q`: quiet mode answers its prompt differently and writes an empty zip.
    """
    merged = tmp_path / "merged.zip"
    subprocess.run(["zip", "-FF", str(split_archive[-1]), "--out", str(merged)],
                   stdin=subprocess.DEVNULL, check=True, capture_output=True)
    with zipfile.ZipFile(merged) as archive:
        assert {name: archive.read(name) for name in archive.namelist()} == flac_members
