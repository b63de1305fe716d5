"""The conditioning readers on synthetic log-mels whose kinds differ the way the demo's do: by the
band a foreground occupies and how it moves (steady, beating), over a background slope."""

import numpy as np
import pytest

from scenesynth.evaluation.conditioning import (diversity, fit_reader, majority_rate, mel_features, peaks, per_kind_line,
                                                reading)

BINS, FRAMES = 16, 40
FOREGROUNDS = ("low", "high", "beat")
BACKGROUNDS = ("flat", "tilted")


def fake_mel(fg: str, bg: str, rng: np.random.Generator, frames: int = FRAMES) -> np.ndarray:
    mel = rng.normal(-6.0, 0.5, size=(BINS, frames))
    mel += np.linspace(0, -3, BINS)[:, None] if bg == "tilted" else 0.0
    if fg == "low":
        mel[2:5] += 4.0
    elif fg == "high":
        mel[10:13] += 4.0
    else:
        mel[6:9] += 4.0 * (np.arange(frames) % 4 < 2)
    return mel


def scenes(n: int, seed: int, frames: int = FRAMES):
    rng = np.random.default_rng(seed)
    fg = [FOREGROUNDS[i % 3] for i in range(n)]
    bg = [BACKGROUNDS[(i // 3) % 2] for i in range(n)]
    return np.stack([fake_mel(f, b, rng, frames) for f, b in zip(fg, bg)]), fg, bg


def test_features_are_per_bin_statistics_whatever_the_length():
    mels, _, _ = scenes(4, 0)
    features = mel_features(mels)
    assert features.shape == (4, 3 * BINS)
    np.testing.assert_allclose(features[:, :BINS], mels.mean(axis=2))
    assert mel_features([mels[0][:, :10], mels[1]]).shape == (2, 3 * BINS)
    with pytest.raises(ValueError, match="frames >= 2"):
        mel_features([np.zeros((BINS, 1))])


def test_a_generator_that_follows_its_prompts_scores_near_its_ceiling_and_one_that_ignores_them_at_chance():
    train, train_fg, train_bg = scenes(60, 1)
    dev, dev_fg, dev_bg = scenes(18, 2)
    follows = scenes(18, 3)[0]  # same kinds in the same order: the prompts were followed
    ignores = np.stack([fake_mel("low", "flat", np.random.default_rng(i)) for i in range(18)])
    f = mel_features
    real = {"ceiling": f(dev), "ceiling_fg": dev_fg, "ceiling_bg": dev_bg}
    good = reading(f(train), train_fg, train_bg, f(follows), dev_fg, dev_bg, **real)
    bad = reading(f(train), train_fg, train_bg, f(ignores), dev_fg, dev_bg, **real)
    assert (good["ceiling"]["fg_accuracy"], good["ceiling"]["bg_accuracy"]) == (1.0, 1.0)
    assert good["generated"]["fg_accuracy"] == 1.0 and good["generated"]["bg_accuracy"] == 1.0
    assert bad["generated"]["fg_accuracy"] == pytest.approx(1 / 3) == bad["generated"]["fg_chance"]
    assert bad["generated"]["fg_predicted"] == ["low"] * 18
    assert good["generated"]["fg_predicted"] == dev_fg and good["generated"]["fg_classes"] == sorted(FOREGROUNDS)


def test_readers_trained_on_shuffled_labels_learn_nothing():
    train, train_fg, train_bg = scenes(90, 4)
    dev, dev_fg, dev_bg = scenes(30, 5)
    shuffled = list(np.random.default_rng(0).permutation(train_fg))
    result = reading(mel_features(train), shuffled, train_bg, mel_features(dev), dev_fg, dev_bg)
    assert result["generated"]["fg_accuracy"] < 0.6 and result["ceiling"] == {}


def test_diversity_sees_mode_collapse():
    train, fg, bg = scenes(60, 6)
    features = mel_features(train)
    real_groups = [features[[i for i in range(60) if (fg[i], bg[i]) == kind]] for kind in set(zip(fg, bg))]
    varied = [mel_features(scenes(12, seed)[0][:4]) for seed in (7, 8, 9)]
    collapsed = [np.repeat(group[:1], 4, axis=0) for group in varied]
    assert diversity(features, varied, real_groups)["ratio"] > 0.5
    assert diversity(features, collapsed, real_groups)["ratio"] == 0.0


def test_chance_is_the_majority_rate_and_bad_input_is_refused():
    assert majority_rate(["a", "b", "b", "c"]) == 0.5
    with pytest.raises(ValueError, match="one label only"):
        fit_reader(np.zeros((3, 2)), ["a", "a", "a"])
    with pytest.raises(ValueError, match="3 feature rows but 2 labels"):
        fit_reader(np.zeros((3, 2)), ["a", "b"])
    with pytest.raises(ValueError, match="3 generated rows but 2/2 labels"):
        reading(np.zeros((4, 2)), list("abab"), list("abab"), np.zeros((3, 2)), list("ab"), list("ab"))


def test_per_kind_accuracy_names_the_kind_the_generator_never_makes_and_what_it_makes_instead():
    train, train_fg, train_bg = scenes(60, 10)
    dev, dev_fg, dev_bg = scenes(18, 11)
    rng = np.random.default_rng(12)
    # sustained kinds made as asked, the beating one made as the low band: a 2/3 mean hides a 0
    made = np.stack([fake_mel("low" if fg == "beat" else fg, bg, rng) for fg, bg in zip(dev_fg, dev_bg)])
    f = mel_features
    result = reading(f(train), train_fg, train_bg, f(made), dev_fg, dev_bg, ceiling=f(dev), ceiling_fg=dev_fg,
                     ceiling_bg=dev_bg)
    g = result["generated"]
    assert g["fg_accuracy"] == pytest.approx(2 / 3)
    assert g["fg_per_kind"] == {"beat": 0.0, "high": 1.0, "low": 1.0} and g["fg_worst_kind"] == "beat"
    assert g["fg_confusion"]["beat"] == {"low": 6} and g["fg_confusion"]["low"] == {"low": 6}
    assert g["bg_per_kind"] == {"flat": 1.0, "tilted": 1.0}
    assert result["ceiling"]["fg_per_kind"] == {"beat": 1.0, "high": 1.0, "low": 1.0}
    line = per_kind_line({"generated": g, "audio": {"generated": g}})
    assert line.startswith("foreground per kind (mel / audio): beat 0.00 / 0.00, high 1.00 / 1.00, low 1.00 / 1.00; "
                           "worst: beat (mel), beat (audio); background per kind")


def test_each_prompts_spread_over_noise_vectors_is_on_the_diversity_scale():
    train, fg, bg = scenes(60, 13)
    features = mel_features(train)
    real_groups = [features[[i for i in range(60) if (fg[i], bg[i]) == kind]] for kind in set(zip(fg, bg))]
    varied = mel_features(scenes(12, 14)[0][:4])
    result = diversity(features, [varied, np.repeat(varied[:1], 4, axis=0)], real_groups)
    assert result["per_group_ratio"][1] == 0.0 and result["per_group_ratio"][0] > 0.5
    assert np.mean(result["per_group_ratio"]) == pytest.approx(result["ratio"])


def test_a_reader_is_fitted_once_per_clips_and_labels(monkeypatch):
    """Training's evaluation reads the same real clips every time: the fit is reused, a change refits."""
    from scenesynth.evaluation import conditioning

    fits = []
    real_fit = conditioning._fit
    monkeypatch.setattr(conditioning, "_FITTED", {})
    monkeypatch.setattr(conditioning, "_fit", lambda features, labels: fits.append(1) or real_fit(features, labels))
    mels, fg, bg = scenes(60, seed=0)
    features = mel_features(mels)
    first = reading(features, fg, bg, features[:6], fg[:6], bg[:6])
    again = reading(features.copy(), fg, bg, features[6:12], fg[6:12], bg[6:12])
    assert len(fits) == 2 and first["generated"]["fg_classes"] == again["generated"]["fg_classes"]  # fg and bg once
    reading(features, fg[::-1], bg, features[:6], fg[:6], bg[:6])  # other labels: the foreground reader again
    reading(features + 1.0, fg, bg, features[:6], fg[:6], bg[:6])  # other clips: both again
    assert len(fits) == 5


def test_peaks_measure_how_far_a_generated_clips_loudest_value_is_above_real_clips_of_its_kind():
    """A clip with one hot bin-frame 3 nats above what real clips of its kind reach has an excess near 3; the same
    clip without it near 0; each kind is compared with its own real clips, never with another's."""
    rng = np.random.default_rng(0)
    real = [rng.normal(-4.0, 0.3, (8, 16)) for _ in range(6)]
    for mel in real[:3]:
        mel[2, 5] = 0.5   # chirps: loudest value 0.5
    for mel in real[3:]:
        mel[6, 7] = -1.0  # clock: loudest value -1.0
    real_fg = ["chirps"] * 3 + ["clock"] * 3
    calm = [mel.copy() for mel in real]
    hot = [mel.copy() for mel in real]
    for mel in hot[:3]:
        mel[2, 5] = 3.5
    assert abs(peaks(calm, real_fg, real, real_fg)["excess"]) < 1e-9
    out = peaks(hot, real_fg, real, real_fg)
    assert out["excess"] == pytest.approx(1.5)  # half the clips 3 above, half 0
    assert out["generated_per_kind"]["chirps"] == pytest.approx(3.5) and out["real_per_kind"]["chirps"] == pytest.approx(0.5)
    swapped = peaks(calm[3:], ["chirps"] * 3, real, real_fg)  # clock-like clips asked as chirps: 1.5 below
    assert swapped["excess"] == pytest.approx(-1.5)
    uneven = peaks(hot[:1] + calm[3:], ["chirps", "clock", "clock", "clock"], real, real_fg)
    assert uneven["excess"] == pytest.approx(0.75)  # averaged over clips (3 + 0 + 0 + 0) / 4, not over kinds (1.5)
    unknown = peaks(hot[:2], ["chirps", "siren"], real, real_fg)  # no real siren: left out of the excess
    assert unknown["excess"] == pytest.approx(3.0) and set(unknown["real_per_kind"]) == {"chirps"}
    assert np.isnan(peaks(hot[:1], ["siren"], real, real_fg)["excess"])
