"""download(): resume, verification, retries and timeouts against a local HTTP server with fault hooks.

The server serves files from a temp folder on 127.0.0.1 (OS-chosen port) and records every
request, so tests can assert how many requests were made and which byte ranges were asked for.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scenesynth.fetch import download as download_module
from scenesynth.fetch.download import (
    DownloadError,
    download,
    file_checksum,
    load_checksums,
    save_checksums,
    sha256_file,
)

PAYLOAD = random.Random(0).randbytes(300_000)
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
FAST = dict(timeout=2.0, backoff=0.001, chunk_size=4096)  # tiny backoff: retries cost milliseconds


@dataclass
class ServerState:
    """Per-test fault hooks (keyed by URL path) and the log of requests the handler saw."""

    root: Path
    requests: list[dict] = field(default_factory=list)
    cut_at: dict[str, int] = field(default_factory=dict)  # never send file bytes past this offset
    status_queue: dict[str, list[int]] = field(default_factory=dict)  # answer these codes first, one each
    always_status: dict[str, int] = field(default_factory=dict)
    ignore_range: set[str] = field(default_factory=set)
    stall_s: dict[str, float] = field(default_factory=dict)  # sleep after the headers
    release: threading.Event = field(default_factory=threading.Event)  # wakes stalled handlers at teardown
    lock: threading.Lock = field(default_factory=threading.Lock)


class FaultyRangeHandler(BaseHTTPRequestHandler):
    """Serves ``state.root`` with Range support (206/416) and the fault hooks of ``ServerState``."""

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        state: ServerState = self.server.state
        path = self.path.split("?")[0]
        range_header = self.headers.get("Range")
        with state.lock:
            state.requests.append({"path": path, "range": range_header})
            queued = state.status_queue.get(path)
            status = queued.pop(0) if queued else state.always_status.get(path)
        if status is not None:
            return self.send_error(status)
        file = state.root / path.lstrip("/")
        if not file.is_file():
            return self.send_error(404)
        data = file.read_bytes()
        start = 0
        if range_header and path not in state.ignore_range:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if path in state.stall_s:
            state.release.wait(state.stall_s[path])
        end = min(len(data), state.cut_at.get(path, len(data)))
        self.wfile.write(data[start:max(start, end)])


@dataclass
class LocalServer:
    state: ServerState
    base_url: str

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def publish(self, name: str, data: bytes = PAYLOAD) -> str:
        (self.state.root / name).write_bytes(data)
        return self.url(name)


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FaultyRangeHandler)
    httpd.state = ServerState(root)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield LocalServer(httpd.state, f"http://127.0.0.1:{httpd.server_address[1]}")
    finally:
        httpd.state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def out_dir(tmp_path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    return out


def test_download_verifies_and_leaves_only_the_destination(server, out_dir):
    url = server.publish("part.z01")
    dest = download(url, out_dir / "part.z01", sha256=PAYLOAD_SHA, size=len(PAYLOAD), **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in out_dir.iterdir()) == ["part.z01"]
    assert server.state.requests == [{"path": "/part.z01", "range": None}]


@pytest.mark.parametrize("expect", [{"sha256": PAYLOAD_SHA}, {"size": len(PAYLOAD)}, {}])
def test_verified_existing_file_makes_no_request(server, out_dir, expect):
    url = server.publish("a.csv")
    (out_dir / "a.csv").write_bytes(PAYLOAD)
    assert download(url, out_dir / "a.csv", **expect, **FAST) == out_dir / "a.csv"
    assert server.state.requests == []


def test_mismatching_existing_file_is_downloaded_again(server, out_dir, caplog):
    url = server.publish("a.csv")
    (out_dir / "a.csv").write_bytes(b"stale")
    with caplog.at_level(logging.WARNING, logger=download_module.__name__):
        download(url, out_dir / "a.csv", sha256=PAYLOAD_SHA, **FAST)
    assert (out_dir / "a.csv").read_bytes() == PAYLOAD
    assert len(server.state.requests) == 1
    assert "downloading" in caplog.text and "again" in caplog.text


def test_interrupted_download_resumes_with_a_range_request(server, out_dir):
    url = server.publish("big.zip")
    cut = 123_457
    server.state.cut_at["/big.zip"] = cut
    with pytest.raises(DownloadError, match="truncated"):
        download(url, out_dir / "big.zip", sha256=PAYLOAD_SHA, retries=0, **FAST)
    part = out_dir / "big.zip.part"
    assert part.stat().st_size == cut
    assert not (out_dir / "big.zip").exists()

    del server.state.cut_at["/big.zip"]
    download(url, out_dir / "big.zip", sha256=PAYLOAD_SHA, retries=0, **FAST)
    assert server.state.requests[-1]["range"] == f"bytes={cut}-"
    assert (out_dir / "big.zip").read_bytes() == PAYLOAD
    assert not part.exists()


def test_truncated_body_is_retried_then_fails_naming_url_and_cause(server, out_dir):
    url = server.publish("big.zip")
    server.state.cut_at["/big.zip"] = 1000
    with pytest.raises(DownloadError) as err:
        download(url, out_dir / "big.zip", retries=2, **FAST)
    assert url in str(err.value) and "3 attempt" in str(err.value) and "truncated" in str(err.value)
    assert [r["range"] for r in server.state.requests] == [None, "bytes=1000-", "bytes=1000-"]
    assert (out_dir / "big.zip.part").stat().st_size == 1000  # kept, so the next run resumes


def test_server_errors_are_retried_until_success(server, out_dir):
    url = server.publish("a.csv")
    server.state.status_queue["/a.csv"] = [500, 503, 429]
    download(url, out_dir / "a.csv", sha256=PAYLOAD_SHA, retries=5, **FAST)
    assert (out_dir / "a.csv").read_bytes() == PAYLOAD
    assert len(server.state.requests) == 4


def test_persistent_server_error_fails_after_the_last_retry(server, out_dir):
    url = server.publish("a.csv")
    server.state.always_status["/a.csv"] = 500
    with pytest.raises(DownloadError) as err:
        download(url, out_dir / "a.csv", retries=2, **FAST)
    message = str(err.value)
    assert url in message and "HTTP 500" in message and "3 attempt" in message
    assert len(server.state.requests) == 3
    assert not (out_dir / "a.csv").exists()


def test_not_found_fails_at_once_without_retry(server, out_dir):
    url = server.url("missing.csv")
    with pytest.raises(DownloadError) as err:
        download(url, out_dir / "missing.csv", retries=5, **FAST)
    assert url in str(err.value) and "404" in str(err.value)
    assert len(server.state.requests) == 1


def test_server_ignoring_range_restarts_from_zero(server, out_dir):
    url = server.publish("a.bin")
    server.state.ignore_range.add("/a.bin")
    (out_dir / "a.bin.part").write_bytes(b"x" * 5000)  # wrong bytes: must be overwritten, not appended to
    download(url, out_dir / "a.bin", sha256=PAYLOAD_SHA, **FAST)
    assert server.state.requests == [{"path": "/a.bin", "range": "bytes=5000-"}]
    assert (out_dir / "a.bin").read_bytes() == PAYLOAD


def test_complete_part_answered_416_goes_to_verification(server, out_dir):
    url = server.publish("a.bin")
    (out_dir / "a.bin.part").write_bytes(PAYLOAD)
    download(url, out_dir / "a.bin", sha256=PAYLOAD_SHA, size=len(PAYLOAD), **FAST)
    assert server.state.requests == [{"path": "/a.bin", "range": f"bytes={len(PAYLOAD)}-"}]
    assert (out_dir / "a.bin").read_bytes() == PAYLOAD
    assert not (out_dir / "a.bin.part").exists()


def test_wrong_sha256_raises_and_deletes_the_part(server, out_dir):
    url = server.publish("a.bin")
    wrong = "0" * 64
    with pytest.raises(DownloadError) as err:
        download(url, out_dir / "a.bin", sha256=wrong, **FAST)
    message = str(err.value)
    assert url in message and "a.bin" in message and wrong in message and PAYLOAD_SHA in message
    assert list(out_dir.iterdir()) == []


def test_wrong_size_raises_and_deletes_the_part(server, out_dir):
    url = server.publish("a.bin")
    with pytest.raises(DownloadError) as err:
        download(url, out_dir / "a.bin", size=len(PAYLOAD) + 1, **FAST)
    message = str(err.value)
    assert url in message and str(len(PAYLOAD)) in message and str(len(PAYLOAD) + 1) in message
    assert list(out_dir.iterdir()) == []


def test_stalled_server_times_out_within_bounded_time(server, out_dir):
    url = server.publish("a.bin")
    server.state.stall_s["/a.bin"] = 30.0
    started = time.monotonic()
    with pytest.raises(DownloadError, match="timed out"):
        download(url, out_dir / "a.bin", timeout=0.5, retries=1, backoff=0.001)
    assert time.monotonic() - started < 5.0
    assert len(server.state.requests) == 2
    assert not (out_dir / "a.bin").exists()


def test_backoff_doubles_between_attempts(server, out_dir, monkeypatch):
    url = server.publish("a.csv")
    server.state.always_status["/a.csv"] = 503
    delays: list[float] = []
    monkeypatch.setattr(download_module.time, "sleep", delays.append)
    with pytest.raises(DownloadError):
        download(url, out_dir / "a.csv", retries=3, backoff=2.0, timeout=2.0)
    assert delays == [2.0, 4.0, 8.0]


def test_checksums_round_trip_and_sha256_file(tmp_path):
    blob = tmp_path / "blob.bin"
    blob.write_bytes(PAYLOAD)
    assert sha256_file(blob, chunk_size=1000) == PAYLOAD_SHA
    record = tmp_path / "checksums.json"
    assert load_checksums(record) == {}
    save_checksums(record, {"blob.bin": file_checksum(blob)})
    assert load_checksums(record) == {"blob.bin": {"sha256": PAYLOAD_SHA, "size": len(PAYLOAD)}}


def test_part_longer_than_the_file_restarts_from_zero(server, out_dir):
    url = server.publish("a.bin")
    (out_dir / "a.bin.part").write_bytes(b"x" * (len(PAYLOAD) + 10))  # e.g. the file changed upstream
    download(url, out_dir / "a.bin", sha256=PAYLOAD_SHA, **FAST)
    assert [r["range"] for r in server.state.requests] == [f"bytes={len(PAYLOAD) + 10}-", None]
    assert (out_dir / "a.bin").read_bytes() == PAYLOAD
