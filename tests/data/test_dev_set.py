"""The dev-set stage: prompts + a record of the FAD reference, for the published DCASE set and the demo."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from remote_sources import DEV_PROMPTS, PUBLISHED_MODELS
from scenesynth.data.dcase_dev import DevSetError, fetch_dcase_dev
from scenesynth.data.dev_set import build_dev_set
from scenesynth.data.manifest import NO_AUDIO, read_dev_prompts, read_manifest
from scenesynth.fetch.download import sha256_file
from test_sources import params_for, remote  # noqa: F401  (remote is a fixture)

IDS = [pid for pid, _ in DEV_PROMPTS]


@pytest.fixture
def fetched(tmp_path, remote):
    params = params_for(tmp_path, remote)
    fetch_dcase_dev(params, tmp_path / "dev/dcase")
    return params, tmp_path / "dev/dcase"


def test_the_published_dev_set_has_prompts_without_audio_and_its_embeddings_as_reference(tmp_path, fetched):
    params, dcase = fetched
    reference = build_dev_set(params, tmp_path / "dev", dcase_dir=dcase)
    dev = read_dev_prompts(tmp_path / "dev/manifest.parquet")
    assert list(dev["key"]) == IDS and set(dev["path"]) == {NO_AUDIO} and set(dev["split"]) == {"dev"}
    assert dict(zip(dev["key"], dev["background"])) == {"001": "water", "002": "traffic", "003": "crowd"}
    assert reference == json.loads((tmp_path / "dev/reference.json").read_text())
    assert reference["kind"] == "published_embeddings" and reference["n_prompts"] == 3
    models = reference["published"]["models"]
    assert set(models) == set(PUBLISHED_MODELS)
    panns = models["panns-wavegram-logmel"]
    assert (panns["count"], panns["rows"], panns["dim"], panns["dtype"], panns["paired_with_prompts"]) == \
        (3, 3, 2048, ["float16"], 3)
    assert models["vggish"]["rows"] == 12  # fadtk keeps one row per VGGish frame
    folder = tmp_path / "dev" / panns["folder"]
    assert panns["sha256"] == {f"{i}.npy": sha256_file(folder / f"{i}.npy") for i in IDS}


def test_reference_audio_a_user_holds_is_used_when_set_and_must_cover_every_prompt(tmp_path, remote, fetched):
    _, dcase = fetched
    audio = tmp_path / "my_refs/nested"
    audio.mkdir(parents=True)
    for i, pid in enumerate(IDS):
        sf.write(audio / f"{pid}.wav", np.full(32000, 0.01 * (i + 1), np.float32), 32000, subtype="PCM_16")
    params = params_for(tmp_path, remote, dcase_dev={"reference_audio_dir": str(tmp_path / "my_refs")})
    reference = build_dev_set(params, tmp_path / "dev", dcase_dir=dcase)
    dev = read_manifest(tmp_path / "dev/manifest.parquet")
    assert reference["kind"] == "audio" and reference["count"] == 3
    assert [p.split("/")[-1] for p in dev.sort_values("key")["path"]] == ["001.wav", "002.wav", "003.wav"]
    assert set(dev["sample_rate"]) == {32000} and "published" in reference  # recorded all the same
    (audio / "002.wav").unlink()
    with pytest.raises(DevSetError, match=r"my_refs: no reference audio for 1 of 3 prompts \(first: '002'"):
        build_dev_set(params, tmp_path / "dev2", dcase_dir=dcase)


def test_a_broken_published_embedding_is_named(tmp_path, fetched):
    params, dcase = fetched
    bad = dcase / "published/embeddings/panns-wavegram-logmel/003.npy"
    bad.write_bytes(b"garbage")
    with pytest.raises(DevSetError, match=r"003\.npy: not a readable \.npy array"):
        build_dev_set(params, tmp_path / "dev", dcase_dir=dcase)
    np.save(bad, np.full((1, 2048), np.nan, np.float16))
    with pytest.raises(DevSetError, match=r"003\.npy: NaN or Inf"):
        build_dev_set(params, tmp_path / "dev", dcase_dir=dcase)


def test_the_demo_dev_set_is_acquire_s_dev_split_with_its_audio(tmp_path, tiny_params, tiny_data):
    reference = build_dev_set(tiny_params, tmp_path / "dev", raw_manifest=tiny_data["raw"])
    raw = read_manifest(tiny_data["raw"])
    dev = read_dev_prompts(tmp_path / "dev/manifest.parquet")
    assert list(dev["key"]) == sorted(raw.loc[raw["split"] == "dev", "key"])
    assert set(dev["path"]) == set(raw.loc[raw["split"] == "dev", "path"])  # relative paths resolve to the same files
    assert {"foreground", "background"} <= set(dev.columns)
    assert reference["kind"] == "audio" and reference["count"] == len(dev) == tiny_params["data"]["demo"]["n_dev"]
    with pytest.raises(DevSetError, match="pass --dcase"):
        build_dev_set(params_for_source(tiny_params, "audiocaps_wavcaps"), tmp_path / "x", raw_manifest=tiny_data["raw"])


def params_for_source(params: dict, source: str) -> dict:
    return {**params, "data": {**params["data"], "source": source}}
