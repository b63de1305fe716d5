"""Safe tar extraction: an unsafe member refuses the whole archive before a byte is written."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path, PurePosixPath

import pytest

from scenesynth.fetch.archive import ArchiveFormatError, UnsafeArchiveError
from scenesynth.fetch.tar_archive import extract_tar, list_tar


def npy_only(name: PurePosixPath) -> str | None:
    return None if name.suffix == ".npy" else "not a .npy file"


def make_tar(path: Path, members: list[tuple[str, bytes | None, bytes]], mode: str = "w:xz") -> Path:
    """members: (name, data or None, type); type tarfile.REGTYPE/SYMTYPE/LNKTYPE/... (linkname in data)."""
    with tarfile.open(path, mode) as tar:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = data.decode()
                tar.addfile(info)
            elif kind == tarfile.DIRTYPE:
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


GOOD = [("embeddings", None, tarfile.DIRTYPE),
        ("embeddings/panns-wavegram-logmel/001.npy", b"first", tarfile.REGTYPE),
        ("embeddings/vggish/001.npy", b"second", tarfile.REGTYPE),
        ("embeddings/README.txt", b"hello", tarfile.REGTYPE)]


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_wanted_members_are_extracted_and_the_rest_listed_as_skipped(tmp_path):
    archive = make_tar(tmp_path / "embeddings.tar.xz", GOOD)
    report = extract_tar(archive, tmp_path / "out", npy_only)
    assert sorted(report.extracted) == ["embeddings/panns-wavegram-logmel/001.npy", "embeddings/vggish/001.npy"]
    assert report.skipped == [("embeddings/README.txt", "not a .npy file")]
    assert (tmp_path / "out/embeddings/vggish/001.npy").read_bytes() == b"second"
    assert not (tmp_path / "out/embeddings/README.txt").exists()
    assert len(list_tar(archive)) == 4


@pytest.mark.parametrize("bad, reason", [
    (("../escape.npy", b"x", tarfile.REGTYPE), "'..' component"),
    (("embeddings/../../escape.npy", b"x", tarfile.REGTYPE), "'..' component"),
    (("/tmp/absolute.npy", b"x", tarfile.REGTYPE), "absolute path"),
    (("embeddings/link.npy", b"/etc/passwd", tarfile.SYMTYPE), "symbolic link"),
    (("embeddings/hard.npy", b"embeddings/vggish/001.npy", tarfile.LNKTYPE), "hard link"),
    (("embeddings/fifo.npy", b"", tarfile.FIFOTYPE), "not a regular file"),
])
def test_an_unsafe_member_anywhere_refuses_the_archive_with_nothing_written(tmp_path, bad, reason):
    # the bad member comes last, so extracting member by member would already have written the others
    archive = make_tar(tmp_path / "a.tar.xz", [*GOOD, bad])
    work = tmp_path / "work"
    work.mkdir()
    before = tree(tmp_path)
    with pytest.raises(UnsafeArchiveError, match=reason) as caught:
        extract_tar(archive, work / "out", npy_only)
    assert str(archive) in str(caught.value) and "nothing extracted" in str(caught.value)
    assert tree(tmp_path) == before  # nothing inside the target, nothing beside or above it


def test_a_truncated_stream_is_a_clear_error_and_keeps_the_previous_extraction(tmp_path):
    archive = make_tar(tmp_path / "a.tar.xz", [*GOOD, ("embeddings/vggish/big.npy", bytes(range(256)) * 4000,
                                                         tarfile.REGTYPE)])
    extract_tar(archive, tmp_path / "out", npy_only)
    previous = tree(tmp_path / "out")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArchiveFormatError, match=r"a\.tar\.xz: corrupt or truncated archive"):
        extract_tar(archive, tmp_path / "out", npy_only)
    assert tree(tmp_path / "out") == previous
    assert not (tmp_path / ".out.partial").exists()
    archive.write_bytes(b"not an archive at all")
    with pytest.raises(ArchiveFormatError, match="corrupt or truncated"):
        list_tar(archive)


def test_debris_of_an_interrupted_extraction_is_removed(tmp_path):
    (tmp_path / ".out.partial/embeddings").mkdir(parents=True)
    (tmp_path / ".out.partial/embeddings/half.npy").write_bytes(b"half")
    extract_tar(make_tar(tmp_path / "a.tar.xz", GOOD), tmp_path / "out", npy_only)
    assert not (tmp_path / ".out.partial").exists()
    assert "embeddings/half.npy" not in tree(tmp_path / "out")
