"""The FAD's floor: real clips scored like a generated set against the same reference."""

import numpy as np
import pandas as pd
import soundfile as sf

from scenesynth.evaluation.clip_prep import ClipRecipe, prepare_clip
from scenesynth.evaluation.embeddings import get_embedding
from scenesynth.evaluation.fd_floor import floor_line, prepare_real, real_floor
from scenesynth.evaluation.reference import Reference

RATE = 32_000


def tone(path, hz: float, seconds: float, seed: int):
    t = np.arange(int(seconds * RATE)) / RATE
    noise = 0.05 * np.random.default_rng(seed).standard_normal(len(t))
    sf.write(path, (0.3 * np.sin(2 * np.pi * hz * t) + noise).astype(np.float32), RATE, subtype="PCM_16")


def test_a_training_clip_is_cut_or_padded_to_the_scored_length(tmp_path):
    tone(tmp_path / "long.wav", 440, 1.5, 0)
    tone(tmp_path / "short.wav", 440, 0.5, 0)
    recipe = ClipRecipe(seconds=1.0)
    assert len(prepare_real(tmp_path / "long.wav", recipe)) == RATE
    short = prepare_real(tmp_path / "short.wav", recipe)
    assert len(short) == RATE and not short[RATE // 2 + 10:].any()
    assert len(prepare_real(tmp_path / "long.wav", ClipRecipe())) == int(1.5 * RATE)


def _setup(tmp_path, train_hz: list[float], ref_hz: list[float]):
    embedding = get_embedding("logmel_stats")
    rows = []
    for i, hz in enumerate(train_hz):
        tone(tmp_path / f"t{i}.wav", hz, 1.0, i)
        rows.append({"key": f"t{i}", "path": f"t{i}.wav", "caption": "a tone", "split": "train", "source": "test",
                     "duration": 1.0, "sample_rate": RATE})
    manifest = tmp_path / "manifest.parquet"
    pd.DataFrame(rows).to_parquet(manifest)
    ref_paths = []
    for i, hz in enumerate(ref_hz):
        tone(tmp_path / f"r{i}.wav", hz, 1.0, 100 + i)
        ref_paths.append(tmp_path / f"r{i}.wav")
    vectors = [embedding.embed(prepare_clip(p, ClipRecipe()))[None, :].astype(np.float16) for p in ref_paths]
    reference = Reference("audio", "test tones", [p.stem for p in ref_paths], vectors, False)
    return embedding, manifest, reference


def test_the_floor_is_low_for_real_clips_of_the_reference_s_kind_and_high_for_another_kind(tmp_path):
    params = {"seed": 0, "evaluate": {"fd_floor_draws": 2, "sqrtm_check": False}}
    hz = [300, 500, 700, 900, 1100, 1300]
    same_kind = tmp_path / "same"
    same_kind.mkdir()
    embedding, manifest, reference = _setup(same_kind, hz * 2, hz)
    floor = real_floor(params, manifest, 6, reference, embedding, {"test": 1}, tmp_path / "cache", ClipRecipe(seconds=1.0))
    other = tmp_path / "other"
    other.mkdir()
    embedding, manifest, reference = _setup(other, [5000 + 100 * i for i in range(12)], hz)
    away = real_floor(params, manifest, 6, reference, embedding, {"test": 1}, tmp_path / "cache", ClipRecipe(seconds=1.0))
    assert (floor["n_clips"], floor["draws"], len(floor["fd_per_draw"])) == (6, 2, 2)
    assert 0 < floor["fd_mean"] < away["fd_mean"] / 2  # 1.7e3 against 5.1e3 (6 clips a set: covariances dominate)
    line = floor_line({"real_floor": floor, "fad_over_floor": 3.0})
    assert line.startswith("FD floor (real training clips vs the same reference, 6 clips x 2 draws): ")
    assert line.endswith("this run: 3.00 x its floor")
    assert real_floor({**params, "evaluate": {"fd_floor_draws": 0, "sqrtm_check": False}}, manifest, 6, reference,
                      embedding, {}, tmp_path / "cache", ClipRecipe()) is None
