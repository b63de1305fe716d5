"""`scenesynth fetch-pretrained`: each model the pipeline uses, fetched from a local copy of its real host."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from conftest import REPO, with_overrides
from scenesynth.cli import main
from scenesynth.config import load_params
from scenesynth.fetch.download import DownloadError
from scenesynth.pretrained.fetch import fetch_for_pipeline
from scenesynth.pretrained.models import CHECKPOINTS, needed_models
from tiny_clap import write_tiny_clap_folder
from scenesynth.workflow.rules import pretrained_inputs


@pytest.fixture
def hosts(tmp_path, static_server):
    """Hugging Face (`<repo>/resolve/<rev>/<file>`) and Zenodo (`api/records/<id>`) on 127.0.0.1."""
    root = tmp_path / "hosts"
    url = static_server(root)
    rerank = CHECKPOINTS["clap_rerank"]
    write_tiny_clap_folder(root / rerank.repo / "resolve" / rerank.revision)
    vocoder = root / "haoheliu/audioldm_48k/resolve/main/audioldm_48k.pth"
    vocoder.parent.mkdir(parents=True)
    vocoder.write_bytes(b"stand-in bytes: only the transfer is under test here" * 100)
    panns = root / "files/Wavegram_Logmel_Cnn14_mAP=0.439.pth"
    panns.parent.mkdir(parents=True)
    panns.write_bytes(bytes(range(256)) * 64)
    (root / "api/records").mkdir(parents=True)
    record = {"files": [{"key": panns.name, "size": panns.stat().st_size,
                         "checksum": "md5:" + hashlib.md5(panns.read_bytes()).hexdigest(),
                         "links": {"self": f"{url}/files/{panns.name}"}}]}
    (root / "api/records/3987831").write_text(json.dumps(record))
    params = load_params(REPO / "params.yaml")
    params = with_overrides(params, pretrained={"hf_endpoint": url, "zenodo_api": f"{url}/api"})
    return {"root": root, "url": url, "params": params}


def test_each_model_is_fetched_with_its_source_and_checksums(tmp_path, hosts):
    out = tmp_path / "pretrained"
    for name in ("clap_rerank", "hifigan_48k", "panns"):
        folder = fetch_for_pipeline(hosts["params"], name, out)
        assert (folder / "source.json").is_file(), name
    assert json.loads((out / "clap_rerank/source.json").read_text())["repo"] == "laion/clap-htsat-unfused"
    assert set(json.loads((out / "clap_rerank/checksums.json").read_text())) >= {"config.json", "pytorch_model.bin"}
    assert (out / "hifigan_48k/audioldm_48k.pth").stat().st_size == 5200
    assert json.loads((out / "panns/source.json").read_text())["zenodo_record"] == 3987831

    from scenesynth.inference.rerank import ClapReranker  # the fetched folder loads offline and scores audio

    scores = ClapReranker(out / "clap_rerank").scores(np.zeros((2, 48000), np.float32), "a dog barks")
    assert scores.shape == (2,) and np.isfinite(scores).all()


def test_a_zenodo_file_that_misses_its_md5_is_refused(tmp_path, hosts):
    served = hosts["root"] / "files/Wavegram_Logmel_Cnn14_mAP=0.439.pth"
    served.write_bytes(served.read_bytes()[::-1])  # same size, other bytes
    with pytest.raises(DownloadError, match="md5"):
        fetch_for_pipeline(hosts["params"], "panns", tmp_path / "pretrained")
    assert not (tmp_path / "pretrained/panns" / served.name).exists()


def test_a_new_vocoder_source_replaces_the_old_files(tmp_path, hosts):
    out = tmp_path / "pretrained"
    fetch_for_pipeline(hosts["params"], "hifigan_48k", out)
    other = hosts["root"] / "someone/vocoder48k/resolve/v2/g_02500000"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"another checkpoint")
    params = with_overrides(hosts["params"], pretrained={"hifigan_48k": {"repo": "someone/vocoder48k", "revision": "v2",
                                                                       "file": "g_02500000"}})
    fetch_for_pipeline(params, "hifigan_48k", out)
    assert sorted(p.name for p in (out / "hifigan_48k").iterdir()) == ["checksums.json", "g_02500000", "source.json"]


def test_cli_verb_and_the_stages_that_need_each_model(tmp_path, hosts):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(f"pretrained:\n  hf_endpoint: {hosts['url']}\n  zenodo_api: {hosts['url']}/api\n")
    assert main(["fetch-pretrained", "--overlay", str(overlay), "--name", "panns", "--out", str(tmp_path / "p")]) == 0
    paper = load_params(REPO / "params.yaml")
    assert needed_models(paper) == {"text": ["clap_text"], "generate": ["clap_text", "hifigan_48k", "clap_rerank"],
                                    "evaluate": ["panns", "clap_rerank"]}  # FAD, and the CLAP score
    assert pretrained_inputs(paper, "evaluate") == ["data/pretrained/panns/source.json",
                                                    "data/pretrained/clap_rerank/source.json"]
    demo = load_params(REPO / "params.yaml", REPO / "config/demo.yaml")
    assert needed_models(demo) == {"text": [], "generate": [], "evaluate": []}
