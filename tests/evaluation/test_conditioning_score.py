"""Which prompts training's evaluation chooses its best step on (conditioning_score.selection_prompts); the
audio reading's resynthesised clips."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from scenesynth.config import load_params
from scenesynth.evaluation import conditioning_score
from scenesynth.evaluation.conditioning_score import RealClips, mlflow_metrics, selection_prompts
from scenesynth.features.mel import MelFrontEnd
from scenesynth.inference.griffin_lim import griffin_lim
from scenesynth.inference.protocol import to_output_rate


def clips(rows: list[tuple[str, str]]) -> RealClips:
    train = pd.DataFrame({"key": [f"train-{i:03d}" for i in range(len(rows))],
                          "caption": [f"{fg} over {bg} ({i})" for i, (fg, bg) in enumerate(rows)],
                          "foreground": [fg for fg, _ in rows], "background": [bg for _, bg in rows]})
    return RealClips(train, [], train.iloc[:0], [], [])


DEV = pd.DataFrame({"key": ["dev-0", "dev-1"], "caption": ["a clock over water", "a siren over crowd"],
                    "foreground": ["clock", "siren"], "background": ["water", "crowd"]})


def test_training_captions_with_the_dev_labels_the_same_number_per_foreground_kind():
    real = clips([("clock", "water")] * 10 + [("siren", "crowd")] * 10 + [("clock", "none")] * 10
                 + [("engine", "water")] * 10)
    drawn = selection_prompts(real, DEV, 8, seed=0)
    assert drawn["foreground"].value_counts().to_dict() == {"clock": 4, "siren": 4}  # engine: not a dev kind
    assert set(drawn["background"]) == {"water", "crowd"}  # 'none' is never a dev background
    assert drawn["key"].is_unique and set(drawn["key"]) <= set(real.train["key"])
    again = selection_prompts(real, DEV, 8, seed=0)
    assert again.equals(drawn) and not selection_prompts(real, DEV, 8, seed=1)["key"].equals(drawn["key"])


def test_a_kind_with_fewer_clips_gives_what_it_has_and_no_match_is_an_error():
    real = clips([("clock", "water")] * 2 + [("siren", "crowd")] * 10)
    assert selection_prompts(real, DEV, 8, seed=0)["foreground"].value_counts().to_dict() == {"clock": 2, "siren": 4}
    with pytest.raises(ValueError, match="no training clip has the dev set's labels"):
        selection_prompts(clips([("engine", "none")] * 3), DEV, 8, seed=0)


def test_the_mean_accuracy_reads_foreground_and_background_together():
    cond = {"generated": {"fg_accuracy": 0.9, "bg_accuracy": 0.5, "fg_per_kind": {"clock": 0.9}}}
    flat = mlflow_metrics(cond)
    assert flat["cond_mean_accuracy"] == pytest.approx(0.7) and flat["cond_fg_kind_clock"] == 0.9
    assert "cond_mean_accuracy" not in mlflow_metrics({"generated": {"fg_accuracy": 0.9}})


def test_the_worst_kind_accuracy_is_the_lowest_foreground_kind():
    flat = mlflow_metrics({"generated": {"fg_per_kind": {"clock": 0.9, "knocking": 0.2, "siren": 0.6},
                                         "bg_per_kind": {"rain": 0.1}}})
    assert flat["cond_fg_worst_kind_accuracy"] == pytest.approx(0.2)
    assert "cond_fg_worst_kind_accuracy" not in mlflow_metrics({"generated": {"fg_accuracy": 0.9}})


def test_the_generator_reads_many_prompts_per_pass_as_it_reads_each_alone(tiny_model, monkeypatch):
    """Batching prompts changes no prompt's log-mels (up to float rounding): no row meets another's caption or z."""
    captions = ["a clock ticking over water", "a siren wailing", "birds chirping with crowd in the background"]
    batched = conditioning_score.generator_mels(tiny_model["model"], captions, 3, 0, tiny_model["run"] / "none")
    monkeypatch.setattr(conditioning_score, "GENERATOR_BATCH", 1)  # one prompt per pass
    alone = conditioning_score.generator_mels(tiny_model["model"], captions, 3, 0, tiny_model["run"] / "none")
    assert batched.shape == alone.shape == (3, 3, *batched.shape[2:])
    np.testing.assert_allclose(batched, alone, atol=1e-4)
    assert not np.allclose(batched[0], batched[1], atol=1e-4)  # the prompts differ, so a mix-up would show


DEMO_OVERLAY = Path(__file__).resolve().parents[2] / "config" / "demo.yaml"


def demo_params() -> dict:
    return load_params(DEMO_OVERLAY.parents[1] / "params.yaml", DEMO_OVERLAY)


def broadband_mel(front_end: MelFrontEnd, seed: int = 0) -> np.ndarray:
    """A real log-mel of white noise: energy in every bin, up to 24 kHz."""
    wave = np.random.default_rng(seed).normal(0, 0.1, int(2.56 * front_end.settings.sample_rate)).astype(np.float32)
    mel, frames = front_end.clip_to_mel(wave)
    return mel[:, :frames].astype(np.float32)


def test_the_audio_readers_clips_are_the_generate_stages_files_read_back(tmp_path):
    """A resynthesised clip for the audio reading's readers is what the generate stage would write (its
    output rate, clipped, 16 bit) and the reading would load (load_at): the same log-mel to float
    precision, and at 32 kHz the demo's top mel bin (above 16 kHz) near the floor, not as at 48 kHz."""
    params = demo_params()
    front_end, rate = MelFrontEnd.from_params(params["audio"]), params["audio"]["sample_rate"]
    out_rate = params["generate"]["sample_rate"]
    mel = broadband_mel(front_end)
    wave = griffin_lim(mel, front_end, n_iter=4, seed=0)  # what resynthesised draws for clip 0
    path = tmp_path / "clip.wav"
    sf.write(path, np.clip(to_output_rate(wave, rate, out_rate, len(wave) / rate), -1, 1), out_rate, subtype="PCM_16")
    _, (as_read,), _ = conditioning_score.real_mels(pd.DataFrame({"key": ["k"], "path": [str(path)]}), front_end)
    (written,) = conditioning_score.resynthesised([mel], front_end, 4, out_rate)
    (at_48k,) = conditioning_score.resynthesised([mel], front_end, 4)
    np.testing.assert_allclose(written, as_read[:, : written.shape[1]], atol=1e-4)
    assert written[-1].mean() < at_48k[-1].mean() - 3.0  # the top bin lost its energy above 16 kHz
    np.testing.assert_allclose(written[:-2].mean(axis=1), at_48k[:-2].mean(axis=1), atol=0.5)  # the rest kept


def test_the_audio_reading_resynthesises_at_the_generate_stages_output_rate(monkeypatch):
    params = demo_params()
    params["generate"].update(vocoder="griffin_lim", sample_rate=24_000)
    train = pd.DataFrame({"key": ["t0", "t1"], "caption": ["a", "b"], "foreground": ["clock", "siren"],
                          "background": ["water", "crowd"]})
    real = RealClips(train, [np.zeros((16, 8), np.float32)] * 2, train.iloc[:0], [], [])
    asked = []

    class Stop(Exception):
        pass

    def record(mels, front_end, iters, out_rate=None):
        asked.append((iters, out_rate))
        raise Stop

    monkeypatch.setattr(conditioning_score, "resynthesised", record)
    with pytest.raises(Stop):
        conditioning_score.audio_reading(params, real, DEV, {})
    assert asked == [(params["generate"]["griffin_lim_iters"], 24_000)]
