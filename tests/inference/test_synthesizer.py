"""The Python way in: load once, prompts and a seed in, arrays and a sample rate out, reproducibly."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import venv_env, with_overrides
from scenesynth.inference.protocol import ModelFileError, VocoderMismatch
from scenesynth.inference.synthesizer import PromptError, Synthesizer, check_prompt


@pytest.fixture(scope="module")
def synth(tiny_model, tmp_path_factory):
    return Synthesizer(tiny_model["model"], tiny_model["params"], device="cpu",
                       pretrained=tmp_path_factory.mktemp("no_pretrained"))


def test_same_prompt_and_seed_give_the_same_clip_wherever_the_prompt_stands(synth, tiny_model):
    gen = tiny_model["params"]["generate"]
    both = synth(["a siren wailing with traffic in the background", "birds chirping"], seed=3)
    alone = synth("birds chirping", seed=3)
    assert both.sample_rate == gen["sample_rate"]
    assert both.audio.shape == (2, round(gen["crop_seconds"] * gen["sample_rate"])) and both.audio.dtype == np.float32
    np.testing.assert_array_equal(both.audio[1], alone.audio[0])
    assert both.records[1] == alone.records[0] and alone.records[0]["prompt"] == "birds chirping"
    assert not np.array_equal(synth("birds chirping", seed=4).audio[0], alone.audio[0])  # the seed matters
    assert not np.array_equal(both.audio[0], both.audio[1])                               # and so does the prompt
    assert np.abs(both.audio).max() <= 1.0 and np.abs(both.audio).max() > 0


def test_settings_come_from_params_and_the_model_file(synth, tiny_model):
    params = tiny_model["params"]
    assert synth.gen_cfg["vocoder"] == "griffin_lim"          # what the model file names
    assert synth.gen_cfg["rerank"] == "discriminator"         # auto, and no CLAP folder there
    assert synth.gen_cfg["n_candidates"] == params["generate"]["n_candidates"]
    assert synth("a dog barks").records[0]["seed"] == params["synthesize"]["seed"]
    described = synth.describe()
    assert described["model"]["sha256"] and described["model"]["text_encoder"] == "hash"
    assert (described["format"], described["seconds"]) == ("challenge", params["generate"]["crop_seconds"])


def test_full_format_is_the_whole_clip_at_the_vocoder_rate(tiny_model, tmp_path):
    audio = tiny_model["params"]["audio"]
    full = Synthesizer(tiny_model["model"], tiny_model["params"], device="cpu", format="full", candidates=3,
                       pretrained=tmp_path)
    out = full(["a dog barks"], seed=0)
    assert out.sample_rate == audio["sample_rate"]
    assert out.audio.shape == (1, audio["n_frames"] * audio["hop_length"])
    assert len(out.records[0]["scores"]) == 3 and "crop" not in out.records[0]


def test_clap_reranks_when_its_folder_is_there(tiny_model, tmp_path):
    from tiny_clap import write_tiny_clap_folder

    write_tiny_clap_folder(tmp_path / "clap_rerank")
    synth = Synthesizer(tiny_model["model"], with_overrides(tiny_model["params"], generate={"n_crops": 3}),
                        device="cpu", pretrained=tmp_path)
    assert synth.gen_cfg["rerank"] == "clap"
    record = synth("a dog barks", seed=1).records[0]
    assert len(record["scores"]) == tiny_model["params"]["generate"]["n_candidates"] and len(record["crop_scores"]) == 3
    assert record["crop_score"] == max(record["crop_scores"]) and record["score"] == max(record["scores"])


@pytest.mark.parametrize("prompt, problem", [
    ("   ", "the prompt is empty"),
    ("x" * 10_000, "has 10000 characters; at most 1000"),
    ("a dog\x07 barks", "control character U+0007 at character 6"),
    ("two\nlines", "control character U+000A"),
    (42, "not text but int"),
])
def test_bad_prompts_are_named_in_one_line(synth, prompt, problem):
    with pytest.raises(PromptError) as caught:
        synth(prompt, seed=0)
    assert problem in str(caught.value) and "\n" not in str(caught.value) and len(str(caught.value)) < 200


def test_prompts_lose_only_surrounding_white_space():
    assert check_prompt("  rain on a tin roof \t", 100) == "rain on a tin roof"
    assert check_prompt("café, 雨の音", 100) == "café, 雨の音"


@pytest.mark.parametrize("settings, problem", [
    ({"device": "tpu"}, "unknown device 'tpu'"),
    ({"format": "mp3"}, "format 'mp3' is not one of challenge, full"),
    ({"candidates": 0}, "candidates must be a whole number >= 1"),
])
def test_bad_settings_are_refused_before_the_model_loads(tiny_model, tmp_path, settings, problem):
    with pytest.raises(ValueError, match=problem):
        Synthesizer(tmp_path / "not_even_there.pt", tiny_model["params"], **settings)


def test_bad_seeds_are_refused(synth):
    for seed in (-1, 2**32, 1.5, True):
        with pytest.raises(ValueError, match="is not an integer from 0 to 4294967295"):
            synth("a dog barks", seed=seed)


def test_old_model_files_load_and_a_vocoder_is_never_guessed(tiny_model, tmp_path):
    saved = torch.load(tiny_model["model"], weights_only=True)
    assert saved["vocoder"] == "griffin_lim"
    del saved["vocoder"]  # as exported before the key existed: the stand-ins record it
    torch.save(saved, tmp_path / "old.pt")
    old = Synthesizer(tmp_path / "old.pt", tiny_model["params"], pretrained=tmp_path)
    assert old.gen_cfg["vocoder"] == "griffin_lim"
    del saved["stand_ins"]["generate.vocoder"]
    torch.save(saved, tmp_path / "older.pt")
    with pytest.raises(ModelFileError, match="older.pt: the model file does not say which vocoder"):
        Synthesizer(tmp_path / "older.pt", tiny_model["params"], pretrained=tmp_path)
    chosen = Synthesizer(tmp_path / "older.pt", tiny_model["params"], vocoder="griffin_lim", pretrained=tmp_path)
    assert chosen("a dog barks").audio.shape[0] == 1


def test_the_hifigan_is_refused_for_mels_it_was_not_trained_on(tiny_model, tmp_path):
    from dataclasses import asdict, replace

    from scenesynth.inference.hifigan import HIFIGAN_48K, HifiGanGenerator

    config = replace(HIFIGAN_48K, upsample_initial_channel=32)  # the 48 kHz, 256-mel layout, narrow
    folder = tmp_path / "hifigan_48k"
    folder.mkdir()
    torch.save({"generator": HifiGanGenerator(config).state_dict()}, folder / "generator.pt")
    fields = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
    (folder / "config.json").write_text(json.dumps({**fields, "resblock": "1", "hop_size": config.hop_length}))
    n_mels = tiny_model["params"]["audio"]["n_mels"]
    with pytest.raises(VocoderMismatch, match=rf"model.pt: a model made for the griffin_lim vocoder: .*'n_mels': "
                                              rf"\({n_mels}, 256\).*Griffin-Lim"):
        Synthesizer(tiny_model["model"], tiny_model["params"], vocoder="hifigan", pretrained=tmp_path)


def test_corrupt_and_foreign_model_files_are_named(tiny_model, tmp_path):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(tiny_model["model"].read_bytes()[:5000])
    with pytest.raises(ModelFileError, match="truncated.pt: not a readable model file"):
        Synthesizer(truncated, tiny_model["params"])
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ModelFileError, match="foreign.pt: not a model exported by `scenesynth train` "
                                             "\\(no generator, discriminator"):
        Synthesizer(foreign, tiny_model["params"])


def test_the_package_exports_the_synthesizer_without_importing_it_up_front():
    code = ("import sys, scenesynth\n"
            "assert 'scenesynth.inference.synthesizer' not in sys.modules and 'torch' not in sys.modules\n"
            "from scenesynth import Synthesizer, Synthesis\n"
            "from scenesynth.inference import synthesizer\n"
            "assert Synthesizer is synthesizer.Synthesizer and 'Synthesizer' in dir(scenesynth)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=venv_env(), timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


# ------------------------------------------------- issue 22: what the model says, text as it looks, the API
def test_the_clip_length_comes_from_the_model_and_a_crop_is_never_padded(tiny_model, tmp_path, caplog):
    audio = tiny_model["params"]["audio"]
    whole = audio["n_frames"] * audio["hop_length"] / audio["sample_rate"]  # the tiny model's 0.64 s
    paper_crop = with_overrides(tiny_model["params"], generate={"crop_seconds": 4.0})
    with caplog.at_level("WARNING"):
        synth = Synthesizer(tiny_model["model"], paper_crop, device="cpu", pretrained=tmp_path)
    out = synth("a dog barks", seed=0)
    rate = paper_crop["generate"]["sample_rate"]
    assert synth.seconds == whole and out.audio.shape == (1, round(whole * rate))
    assert np.abs(out.audio[0, -rate // 10:]).max() > 0  # no tail of digital silence
    assert "generate.crop_seconds 4 does not fit" in caplog.text
    shorter = Synthesizer(tiny_model["model"], paper_crop, device="cpu", seconds=0.25, pretrained=tmp_path)
    assert shorter("a dog barks", seed=0).audio.shape == (1, round(0.25 * rate))
    with pytest.raises(ValueError, match=r"seconds 4: longer than the 0.64 s clips .*model.pt makes.*never padded"):
        Synthesizer(tiny_model["model"], paper_crop, device="cpu", seconds=4.0, pretrained=tmp_path)
    from scenesynth.inference.protocol import random_crops

    with pytest.raises(ValueError, match="a 4 s crop of a 2 s clip"):
        random_crops(np.ones(2000, np.float32), 1000, 4.0, 1, np.random.default_rng(0))


def test_settings_from_another_overlay_than_the_model_s_are_announced(tiny_model, tmp_path, caplog):
    plain = dict(tiny_model["params"], overlay=None)  # e.g. no --overlay for a model trained with one
    with caplog.at_level("WARNING"):
        Synthesizer(tiny_model["model"], plain, device="cpu", pretrained=tmp_path)
    trained = tiny_model["params"]["overlay"]
    assert f"was trained with overlay {trained}" in caplog.text and f"add --overlay {trained}" in caplog.text
    assert f"{plain['generate']['n_candidates']} candidates" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        Synthesizer(tiny_model["model"], tiny_model["params"], device="cpu", pretrained=tmp_path)
    assert "was trained with overlay" not in caplog.text


@pytest.mark.parametrize("prompt, problem", [
    ("\u200b", "invisible or unassigned character U+200B (ZERO WIDTH SPACE) at character 1"),
    ("\ufeffa dog barks", "U+FEFF (ZERO WIDTH NO-BREAK SPACE) at character 1"),
    ("a dog\u2060 barks", "U+2060 (WORD JOINER) at character 6"),
    ("\u0301\u0301", "no visible character"),
])
def test_prompts_that_are_not_what_they_look_like_are_refused(synth, prompt, problem):
    with pytest.raises(PromptError, match=re.escape(problem)):
        synth(prompt, seed=0)


def test_text_that_looks_the_same_is_the_same_prompt():
    assert check_prompt("cafe\u0301 noise", 100) == check_prompt("caf\u00e9 noise", 100) == "caf\u00e9 noise"
    assert check_prompt("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", 100).count("\u200c") == 1  # Persian ZWNJ


def test_a_params_dict_takes_its_overlay_and_a_partial_one_is_named(tiny_model, tmp_path):
    overlay = tmp_path / "three.yaml"
    overlay.write_text("generate: {n_candidates: 3}\n")
    synth = Synthesizer(tiny_model["model"], tiny_model["params"], overlay=overlay, device="cpu", pretrained=tmp_path)
    assert synth.gen_cfg["n_candidates"] == 3 and len(synth("a dog barks").records[0]["scores"]) == 3
    from scenesynth.config import ConfigError

    with pytest.raises(ConfigError, match="the params dict: missing section.*generate.*load_params"):
        Synthesizer(tiny_model["model"], {"synthesize": tiny_model["params"]["synthesize"]}, pretrained=tmp_path)


class Payload:  # any object that is not a tensor: torch pickles it, weights_only refuses it
    pass


def test_a_model_file_holding_code_is_named_as_such_not_with_torch_s_advice(tiny_model, tmp_path):
    saved = torch.load(tiny_model["model"], weights_only=True)
    saved["extra"] = Payload()
    torch.save(saved, tmp_path / "code.pt")
    with pytest.raises(ModelFileError) as caught:
        Synthesizer(tmp_path / "code.pt", tiny_model["params"], pretrained=tmp_path)
    message = str(caught.value)
    assert "code.pt: not loaded: it holds pickled Python objects besides weights" in message
    assert "weights_only" not in message and "False" not in message and "\n" not in message
    (tmp_path / "garbage.pt").write_bytes(b"<html>not a model</html>")
    with pytest.raises(ModelFileError) as caught:
        Synthesizer(tmp_path / "garbage.pt", tiny_model["params"], pretrained=tmp_path)
    message = str(caught.value)
    assert "garbage.pt: not a readable model file (UnpicklingError: Unsupported operand" in message
    assert "weights_only" not in message and "can still be loaded" not in message


def test_the_vocoder_loader_words_a_file_holding_code_alike(tmp_path):
    from scenesynth.inference.hifigan import CheckpointError, _torch_load

    torch.save({"generator": Payload()}, tmp_path / "generator.pt")
    with pytest.raises(CheckpointError, match="generator.pt: not loaded: it holds pickled Python objects") as caught:
        _torch_load(tmp_path / "generator.pt")
    assert "weights_only" not in str(caught.value)
