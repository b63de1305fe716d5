import json

import pytest
import soundfile as sf

from conftest import with_overrides
from scenesynth.data.manifest import read_manifest
from scenesynth.pretrained.models import MissingPretrained
from scenesynth.inference.generate import generate_dev_set


@pytest.fixture(scope="module")
def generated(tmp_path_factory, tiny_model, tiny_data):
    out = tmp_path_factory.mktemp("generated")
    record = generate_dev_set(tiny_model["params"], tiny_model["model"], tiny_data["raw"], out)
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
    again = generate_dev_set(tiny_model["params"], tiny_model["model"], tiny_data["raw"], out)
    assert again["generated_this_run"] == 0
    other = dict(tiny_model["params"], generate=dict(tiny_model["params"]["generate"], seeds=[5]))
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(out, copy)
    record = generate_dev_set(other, tiny_model["model"], tiny_data["raw"], copy)
    assert not (copy / "seed0").exists() and record["generated_this_run"] > 0


def test_generation_is_deterministic(generated, tiny_model, tiny_data, tmp_path):
    out, _ = generated
    generate_dev_set(tiny_model["params"], tiny_model["model"], tiny_data["raw"], tmp_path)
    for path in (out / "seed0").glob("*.wav"):
        assert (tmp_path / "seed0" / path.name).read_bytes() == path.read_bytes()


def test_missing_real_parts_fail_clearly(tiny_model, tiny_data, tmp_path):
    nothing = tmp_path / "no_pretrained"
    hifigan = with_overrides(tiny_model["params"], generate={"vocoder": "hifigan"})
    with pytest.raises(MissingPretrained, match="fetch-pretrained --name hifigan_48k"):
        generate_dev_set(hifigan, tiny_model["model"], tiny_data["raw"], tmp_path, nothing)
    clap = with_overrides(tiny_model["params"], generate={"rerank": "clap"})
    with pytest.raises(MissingPretrained, match="fetch-pretrained --name clap_rerank"):
        generate_dev_set(clap, tiny_model["model"], tiny_data["raw"], tmp_path, nothing)


def test_clap_reranks_candidates_then_crops(tiny_model, tiny_data, tmp_path):
    """The protocol of docs/paper.md section 5 with a (tiny, random) CLAP: n candidates, then n_crops crops, scored as audio."""
    from tiny_clap import write_tiny_clap_folder

    write_tiny_clap_folder(tmp_path / "pretrained" / "clap_rerank")
    params = with_overrides(tiny_model["params"], generate={"rerank": "clap", "n_candidates": 3, "n_crops": 4,
                                                            "seeds": [0]})
    record = generate_dev_set(params, tiny_model["model"], tiny_data["raw"], tmp_path / "out",
                              tmp_path / "pretrained")
    assert record["rerank"] == "clap" and "best of 4" in record["crop"]
    choices = list(record["choices"].values())
    assert all(0 <= c["candidate"] < 3 and 0 <= c["crop"] < 4 for c in choices)
    assert all(-1.0 <= c["score"] <= 1.0 and -1.0 <= c["crop_score"] <= 1.0 for c in choices)  # cosine scores
