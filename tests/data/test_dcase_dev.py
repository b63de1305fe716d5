"""The DCASE 2024 Task 7 dev set as published (captions.csv + embeddings.tar.xz), against a local Zenodo."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest

from remote_sources import PUBLISHED_MODELS, embeddings_archive, published_vectors, write_zenodo_listing
from scenesynth.data.dcase_dev import DevSetError, background_of, fetch_dcase_dev, read_dev_prompts
from scenesynth.fetch.archive import ArchiveFormatError, UnsafeArchiveError
from scenesynth.fetch.download import DownloadError
from test_sources import params_for, remote  # noqa: F401  (remote is a fixture)


def serve_archive(remote: dict, extra: list[tarfile.TarInfo]) -> None:
    """Replace the served embeddings.tar.xz (and the record's md5) with one holding ``extra`` too."""
    embeddings_archive(remote["root"] / "zenodo-files/embeddings.tar.xz", extra)
    write_zenodo_listing(remote["root"], remote["url"])


def member(name: str, kind: bytes = tarfile.REGTYPE, size: int = 3, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size if kind == tarfile.REGTYPE else 0, link
    return info


def test_the_published_files_are_fetched_checked_and_extracted(tmp_path, remote):
    serve_archive(remote, [member("embeddings/README.txt"), member("embeddings/vggish/._001.npy"),
                           member("embeddings/vggish/notes.txt")])
    report = fetch_dcase_dev(params_for(tmp_path, remote), tmp_path / "dcase")
    assert report["prompts"] == 3 and report["backgrounds"] == {"water": 1, "traffic": 1, "crowd": 1}
    assert report["models"] == {model: 3 for model in PUBLISHED_MODELS}
    assert {m["member"]: m["reason"] for m in report["members_left_out"]} == {
        "embeddings/README.txt": "not of the form embeddings/<model>/<file>.npy",
        "embeddings/vggish/._001.npy": "a hidden file (e.g. macOS metadata)",
        "embeddings/vggish/notes.txt": "not a .npy file"}
    stored = np.load(tmp_path / "dcase/published/embeddings/panns-wavegram-logmel/002.npy")
    assert stored.dtype == np.float16 and np.array_equal(stored, published_vectors("panns-wavegram-logmel", 1))
    assert set(report["files"]) == {"captions.csv", "embeddings.tar.xz"}

    # A rerun neither downloads (the server is gone) nor extracts again.
    stamp = (tmp_path / "dcase/published/embeddings/vggish/001.npy").stat().st_mtime_ns
    for path in (remote["root"] / "zenodo-files").iterdir():
        path.unlink()
    assert fetch_dcase_dev(params_for(tmp_path, remote), tmp_path / "dcase")["models"] == report["models"]
    assert (tmp_path / "dcase/published/embeddings/vggish/001.npy").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("bad, error", [
    (member("../escape.npy"), "'..' component"),
    (member("embeddings/panns-wavegram-logmel/link.npy", tarfile.SYMTYPE, link="/etc/passwd"), "symbolic link"),
    (member("/abs/evil.npy"), "absolute path"),
])
def test_an_unsafe_archive_is_refused_with_nothing_written(tmp_path, remote, bad, error):
    serve_archive(remote, [bad])
    with pytest.raises(UnsafeArchiveError, match=error):
        fetch_dcase_dev(params_for(tmp_path, remote), tmp_path / "work/dcase")
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")}
    assert not any(name.endswith(("escape.npy", "link.npy", "evil.npy")) for name in written)
    assert not (tmp_path / "work/dcase/published").exists()


def test_a_truncated_archive_is_a_clear_error(tmp_path, remote):
    served = remote["root"] / "zenodo-files/embeddings.tar.xz"
    served.write_bytes(served.read_bytes()[: served.stat().st_size // 2])
    write_zenodo_listing(remote["root"], remote["url"])  # the record "publishes" the truncated file
    with pytest.raises(ArchiveFormatError, match=r"embeddings\.tar\.xz: corrupt or truncated archive"):
        fetch_dcase_dev(params_for(tmp_path, remote), tmp_path / "dcase")
    assert not (tmp_path / "dcase/published").exists()


def test_a_dev_file_with_a_wrong_md5_is_rejected(tmp_path, remote):
    served = remote["root"] / "zenodo-files/captions.csv"
    served.write_text(served.read_text().replace("dog", "cat"))  # same size, other md5
    with pytest.raises(DownloadError, match="md5"):
        fetch_dcase_dev(params_for(tmp_path, remote), tmp_path / "dcase")


def test_dev_prompts_columns_ids_and_backgrounds(tmp_path):
    path = tmp_path / "captions.csv"
    path.write_text("Prompt,File name\nBirds chirp with water in the background,a-1.wav\nA bell rings,b_2.wav\n")
    table = read_dev_prompts(path)
    assert table["prompt_id"].tolist() == ["a-1", "b_2"] and table["background"].tolist() == ["water", "none"]
    path.write_text("what,ever\nx,y\n")
    with pytest.raises(DevSetError, match=r"captions\.csv: cannot tell which column holds the caption"):
        read_dev_prompts(path)
    assert read_dev_prompts(path, caption_column="what", id_column="ever")["prompt_id"].tolist() == ["y"]
    path.write_text("caption,id\nx,../../evil\n")
    with pytest.raises(DevSetError, match="not a safe file name"):
        read_dev_prompts(path)
    assert background_of("Footsteps with the traffic noise in the background") == "traffic"
