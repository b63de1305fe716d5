"""Shared fixtures: the tiny demo config and its data stages, built once per test session."""

from __future__ import annotations

import functools
import os
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scenesynth.config import load_params

REPO = Path(__file__).resolve().parents[1]
TINY_OVERLAY = REPO / "config" / "tiny.yaml"


def venv_env() -> dict[str, str]:
    """Environment whose PATH finds this interpreter's `scenesynth`, `snakemake` and `dvc`."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="session")
def tiny_params() -> dict:
    return load_params(REPO / "params.yaml", TINY_OVERLAY)


def build_data(params: dict, root: Path, captions_of: str | None = None) -> dict[str, Path]:
    """acquire -> resample -> mel -> text through the library functions; the text cache holds the
    captions of every clip, or of the ``captions_of`` split only (as the pipeline's text stage)."""
    from scenesynth.data.acquire import acquire
    from scenesynth.data.manifest import read_manifest
    from scenesynth.data.resample import resample_manifest
    from scenesynth.features.mel_shards import build_mel_shards
    from scenesynth.text.cache import build_text_cache

    raw = acquire(params, root / "raw")
    resample_manifest(params, raw, root / "audio48k", workers=1)
    build_mel_shards(params, root / "audio48k" / "manifest.parquet", root / "mels", workers=1)
    table = read_manifest(root / "audio48k" / "manifest.parquet" if captions_of is None else raw)
    if captions_of is not None:
        table = table[table["split"] == captions_of]
    build_text_cache(params, list(table["caption"]), root / "text")
    return {"root": root, "raw": raw, "audio48k": root / "audio48k" / "manifest.parquet",
            "mels": root / "mels", "text": root / "text"}


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory, tiny_params) -> dict[str, Path]:
    """acquire -> resample -> mel -> text on the tiny config."""
    return build_data(tiny_params, tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def with_overrides(params: dict, **sections: dict) -> dict:
    """A copy of params with some keys of some sections replaced."""
    import copy

    out = copy.deepcopy(params)
    for name, values in sections.items():
        out[name].update(values)
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tiny_params, tiny_data, mlflow_uri) -> dict:
    """A 4-step training run on the tiny data (shared by the inference and evaluation tests)."""
    from scenesynth.training.loop import train

    run = tmp_path_factory.mktemp("run")
    params = with_overrides(tiny_params, mlflow={"tracking_uri": mlflow_uri, "experiment": "tests"})
    summary = train(params, tiny_data["mels"], tiny_data["text"], run, run / "train.json")
    return {"run": run, "model": run / "model.pt", "params": params, "summary": summary}


@pytest.fixture(scope="module")
def single_thread():
    """One torch/BLAS thread for numeric-heavy test modules: on a busy 2-core machine,
    thread pools spinning against other processes make small ops several times slower."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # only a speed-up
        yield
    else:
        with threadpool_limits(limits=1):
            yield
    torch.set_num_threads(previous)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output readable
        pass


@pytest.fixture
def static_server(tmp_path):
    """Serve a folder over HTTP on 127.0.0.1: returns ``serve(root) -> base_url``.

    Stands in for Hugging Face, Zenodo or GitHub in tests of the real download code;
    every server started is shut down when the test ends.
    """
    servers = []

    def serve(root: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(root))
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        servers.append((httpd, thread))
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield serve
    for httpd, thread in servers:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
