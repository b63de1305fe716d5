import json

import pytest
import soundfile as sf

from conftest import with_overrides
from scenesynth.data.manifest import read_manifest
from scenesynth.inference.generate import (RerankerUnavailable, VocoderUnavailable, crop_and_resample,
                                           generate_dev_set)


@pytest.fixture(scope="module")
def generated(tmp_path_factory, tiny_model, tiny_data):
    out = tmp_path_factory.mktemp("generated")
    record = generate_dev_set(tiny_model["params"], tiny_model["model"], tiny_data["text"], tiny_data["raw"], out)
    return out, record


def test_one_challenge_format_wav_per_prompt_and_seed(generated, tiny_model, tiny_data):
    out, record = generated
    params = tiny_model["params"]
    dev_keys = sorted(read_manifest(tiny_data["raw"]).query("split == 'dev'")["key"])
    n_samples = int(params["generate"]["crop_seconds"] * params["generate"]["sample_rate"])
    for seed in params["generate"]["seeds"]:
        files = sorted(p.stem for p in (out / f"seed{seed}").glob("*.wav"))
        assert files == dev_keys
        info = sf.info(out / f"seed{seed}" / f"{dev_keys[0]}.wav")
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (
            params["generate"]["sample_rate"], 1, "PCM_16", n_samples)
    assert record["generated_this_run"] == len(dev_keys) * len(params["generate"]["seeds"])


def test_generation_record_names_the_stand_ins(generated):
    out, _ = generated
    record = json.loads((out / "generation.json").read_text())
    assert record["vocoder"] == "griffin_lim" and record["rerank"] == "discriminator"
    assert record["text_encoder"] == "hash" and record["stand_ins"]["data.source"] == "demo"
    assert all(0 <= c["candidate"] < record["n_candidates"] for c in record["choices"].values())


def test_rerun_reuses_clips_and_a_new_model_discards_them(generated, tiny_model, tiny_data, tmp_path):
    out, _ = generated
    again = generate_dev_set(tiny_model["params"], tiny_model["model"], tiny_data["text"], tiny_data["raw"], out)
    assert again["generated_this_run"] == 0
    other = dict(tiny_model["params"], generate=dict(tiny_model["params"]["generate"], seeds=[5]))
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(out, copy)
    record = generate_dev_set(other, tiny_model["model"], tiny_data["text"], tiny_data["raw"], copy)
    assert not (copy / "seed0").exists() and record["generated_this_run"] > 0


def test_generation_is_deterministic(generated, tiny_model, tiny_data, tmp_path):
    out, _ = generated
    generate_dev_set(tiny_model["params"], tiny_model["model"], tiny_data["text"], tiny_data["raw"], tmp_path)
    for path in (out / "seed0").glob("*.wav"):
        assert (tmp_path / "seed0" / path.name).read_bytes() == path.read_bytes()


def test_missing_real_parts_fail_clearly(tiny_model, tiny_data, tmp_path):
    hifigan = with_overrides(tiny_model["params"], generate={"vocoder": "hifigan"})
    with pytest.raises(VocoderUnavailable, match="griffin_lim"):
        generate_dev_set(hifigan, tiny_model["model"], tiny_data["text"], tiny_data["raw"], tmp_path)
    clap = with_overrides(tiny_model["params"], generate={"rerank": "clap"})
    with pytest.raises(RerankerUnavailable, match="discriminator"):
        generate_dev_set(clap, tiny_model["model"], tiny_data["text"], tiny_data["raw"], tmp_path)


def test_crop_pads_short_clips_to_exact_length():
    import numpy as np

    rng = np.random.default_rng(0)
    out = crop_and_resample(np.ones(1000, np.float32), 48000, 0.5, 32000, rng)
    assert out.shape == (16000,) and abs(out[:600].mean() - 1) < 0.05 and np.abs(out[800:]).max() < 1e-3
    long = crop_and_resample(rng.standard_normal(48000).astype(np.float32), 48000, 0.5, 32000, rng)
    assert long.shape == (16000,)
