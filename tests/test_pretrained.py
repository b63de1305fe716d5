import json
import logging

import pytest

from scenesynth.fetch.download import DownloadError, sha256_file
from scenesynth.fetch.download import ChecksumMismatch
from scenesynth.pretrained.fetch import fetch_file, fetch_hf_folder, fetch_pretrained
from scenesynth.pretrained.folder import checkpoint_record, missing_model_files, verify_folder
from scenesynth.pretrained.models import CHECKPOINTS, CLAP_FILES

REPO, REVISION = "someone/model", "0123456789abcdef0123456789abcdef01234567"
FILES = {"config.json": b'{"a": 1}', "pytorch_model.bin": bytes(range(256)) * 40, "vocab.json": b"{}"}
DEAD_ENDPOINT = "http://127.0.0.1:9"  # nothing listens: any download attempt would fail


def serve_repo(tmp_path, static_server, files=FILES, repo=REPO, revision=REVISION):
    root = tmp_path / "server"
    folder = root / repo / "resolve" / revision
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return static_server(root), folder


def test_fetch_records_checksums_and_never_downloads_again(tmp_path, static_server):
    base, _ = serve_repo(tmp_path, static_server)
    dest = fetch_hf_folder(REPO, REVISION, list(FILES), tmp_path / "local", endpoint=base)
    for name, data in FILES.items():
        assert (dest / name).read_bytes() == data
    sums = json.loads((dest / "checksums.json").read_text())
    assert sums["pytorch_model.bin"] == {"sha256": sha256_file(dest / "pytorch_model.bin"), "size": 10240}
    assert json.loads((dest / "source.json").read_text())["revision"] == REVISION
    fetch_hf_folder(REPO, REVISION, list(FILES), dest, endpoint=DEAD_ENDPOINT)  # all verified: no network
    verify_folder(dest)
    assert checkpoint_record(dest)["weights_sha256"] == sums["pytorch_model.bin"]["sha256"]


def test_tampered_file_is_detected_and_restored(tmp_path, static_server, caplog):
    base, served = serve_repo(tmp_path, static_server)
    dest = fetch_hf_folder(REPO, REVISION, list(FILES), tmp_path / "local", endpoint=base)
    (dest / "vocab.json").write_bytes(b"{tampered}")
    with pytest.raises(ChecksumMismatch, match="vocab.json"):
        verify_folder(dest)
    with caplog.at_level(logging.WARNING):
        fetch_hf_folder(REPO, REVISION, list(FILES), dest, endpoint=base)
    assert "does not match its checksum" in caplog.text
    assert (dest / "vocab.json").read_bytes() == FILES["vocab.json"]
    # the server now serves other bytes than those recorded on first use: refused
    (served / "vocab.json").write_bytes(b"{changed upstream}")
    (dest / "vocab.json").write_bytes(b"{tampered}")
    with pytest.raises(DownloadError, match="expected"):
        fetch_hf_folder(REPO, REVISION, list(FILES), dest, endpoint=base)
    assert not (dest / "vocab.json").exists()  # untrusted bytes are not left for a loader


def test_pinned_checksums_are_enforced(tmp_path, static_server):
    base, _ = serve_repo(tmp_path, static_server)
    with pytest.raises(DownloadError, match="expected"):
        fetch_hf_folder(REPO, REVISION, ["config.json"], tmp_path / "a", endpoint=base,
                        checksums={"config.json": "0" * 64})
    good = sha256_file(tmp_path / "server" / REPO / "resolve" / REVISION / "config.json")
    dest = fetch_hf_folder(REPO, REVISION, ["config.json"], tmp_path / "b", endpoint=base,
                           checksums={"config.json": {"sha256": good, "size": len(FILES["config.json"])}})
    with pytest.raises(ChecksumMismatch, match="pinned"):  # a record that disagrees with the pin
        fetch_hf_folder(REPO, REVISION, ["config.json"], dest, endpoint=base, checksums={"config.json": "1" * 64})


def test_fetch_file_records_beside_the_file(tmp_path, static_server):
    root = tmp_path / "zenodo"
    root.mkdir()
    (root / "ckpt.pth").write_bytes(b"weights" * 100)
    base = static_server(root)
    path = fetch_file(f"{base}/ckpt.pth", tmp_path / "pre" / "ckpt.pth", sha256=sha256_file(root / "ckpt.pth"))
    assert json.loads((path.parent / "checksums.json").read_text())["ckpt.pth"]["size"] == 700
    assert fetch_file(f"{DEAD_ENDPOINT}/ckpt.pth", path) == path  # verified: no download
    with pytest.raises(ChecksumMismatch, match="pinned"):
        fetch_file(f"{base}/ckpt.pth", path, sha256="f" * 64)


def test_checkpoint_table_and_missing_files(tmp_path):
    for ckpt in CHECKPOINTS.values():
        assert len(ckpt.revision) == 40 and ckpt.weights_file == "pytorch_model.bin" and "config.json" in ckpt.files
    assert set(CLAP_FILES) >= {"tokenizer.json", "vocab.json", "merges.txt", "preprocessor_config.json"}
    with pytest.raises(KeyError, match="clap_rerank"):
        fetch_pretrained("nope", tmp_path)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "vocab.json").write_text("{}")
    missing = missing_model_files(tmp_path, need_audio=True)
    assert missing == ["model.safetensors or pytorch_model.bin", "tokenizer.json (or vocab.json + merges.txt)",
                       "preprocessor_config.json"]
    assert checkpoint_record(tmp_path)["repo"] is None
