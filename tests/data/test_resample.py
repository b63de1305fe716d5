import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr

from scenesynth.data.manifest import ManifestError, read_manifest, write_manifest
from scenesynth.audio_io import AudioReadError, flac16_bytes, load_mono
from scenesynth.data.resample import resample_clip, resample_manifest


def settings(rate: int, quality: str, audio_format: str = "flac", min_duration: float = 0.1) -> dict:
    """The params sections the resample stage reads."""
    return {"audio": {"sample_rate": rate}, "resample": {"quality": quality, "format": audio_format, "workers": 1},
            "data": {"min_duration": min_duration}}


def make_source(tmp_path, n=3, rate=32000, seconds=0.5):
    rows = []
    for i in range(n):
        path = tmp_path / "src" / f"clip{i}.wav"
        path.parent.mkdir(exist_ok=True)
        t = np.arange(int(rate * seconds)) / rate
        sf.write(path, 0.3 * np.sin(2 * np.pi * 440 * (i + 1) * t), rate, subtype="PCM_16")
        rows.append({"key": f"clip{i}", "path": str(path), "caption": f"tone {i}", "source": "test",
                     "duration": seconds, "sample_rate": rate, "split": "train"})
    manifest = tmp_path / "src" / "manifest.parquet"
    write_manifest(pd.DataFrame(rows), manifest)
    return manifest


def test_manifest_paths_are_relative_on_disk_and_absolute_in_memory(tmp_path):
    manifest = make_source(tmp_path)
    on_disk = pd.read_parquet(manifest)
    assert on_disk["path"].tolist() == ["clip0.wav", "clip1.wav", "clip2.wav"]
    assert all(p.startswith("/") for p in read_manifest(manifest)["path"])


def test_read_manifest_errors(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "none.parquet")
    pd.DataFrame({"key": ["a"]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ManifestError, match=r"bad\.parquet: missing columns"):
        read_manifest(tmp_path / "bad.parquet")


def test_resample_to_48k_flac(tmp_path):
    manifest = make_source(tmp_path)
    out, rejects = resample_manifest(settings(48000, "VHQ"), manifest, tmp_path / "out", workers=1)
    assert rejects == [] and len(out) == 3
    info = sf.info(out["path"].iloc[1])
    assert (info.samplerate, info.channels, info.format, info.frames) == (48000, 1, "FLAC", 24000)
    # the tone survives: its spectrum peaks at 880 Hz
    audio, _ = sf.read(out["path"].iloc[1])
    peak_hz = np.argmax(np.abs(np.fft.rfft(audio))) * 48000 / len(audio)
    assert abs(peak_hz - 880) < 4


def test_corrupt_and_empty_clips_are_skipped_and_recorded(tmp_path):
    manifest = make_source(tmp_path, n=4)
    (tmp_path / "src" / "clip1.wav").write_bytes(b"RIFF....not really a wave file")
    (tmp_path / "src" / "clip2.wav").write_bytes(b"")
    (tmp_path / "src" / "clip3.wav").unlink()
    out, rejects = resample_manifest(settings(48000, "HQ"), manifest, tmp_path / "out", workers=2)
    assert out["key"].tolist() == ["clip0"]
    table = pd.read_csv(tmp_path / "out" / "rejects.csv")
    reasons = dict(zip(table["key"], table["reason"]))
    assert reasons["clip1"].startswith("unreadable audio")
    assert reasons["clip2"] == "empty file (0 bytes)"
    assert reasons["clip3"] == "missing file"
    assert set(table["stage"]) == {"resample"}
    assert read_manifest(tmp_path / "out" / "manifest.parquet")["key"].tolist() == ["clip0"]


def test_existing_outputs_are_kept_on_rerun(tmp_path):
    manifest = make_source(tmp_path)
    out, _ = resample_manifest(settings(48000, "HQ"), manifest, tmp_path / "out", workers=1)
    first = out["path"].iloc[0]
    stamp = (tmp_path / "out" / "audio" / "clip0.flac").stat().st_mtime_ns
    resample_manifest(settings(48000, "HQ"), manifest, tmp_path / "out", workers=1)
    assert (tmp_path / "out" / "audio" / "clip0.flac").stat().st_mtime_ns == stamp
    assert first.endswith("clip0.flac")
    assert not list((tmp_path / "out" / "audio").glob(".*"))  # no temporary leftovers


def test_load_mono_rejects_non_finite(tmp_path):
    path = tmp_path / "nan.wav"
    sf.write(path, np.array([0.0, np.nan, 0.1], dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(AudioReadError, match="non-finite"):
        load_mono(path)


def test_outputs_of_other_inputs_are_not_reused(tmp_path):
    manifest = make_source(tmp_path)
    resample_manifest(settings(48000, "HQ"), manifest, tmp_path / "out", workers=1)
    resample_manifest(settings(44100, "HQ"), manifest, tmp_path / "out", workers=1)
    assert sf.info(tmp_path / "out" / "audio" / "clip0.flac").samplerate == 44100


def _edge_waveform() -> np.ndarray:
    """Random samples plus the cases a float -> int16 conversion can get wrong: exact
    halfway points (round half to even), +-1, beyond +-1 (clipping) and tiny values."""
    rng = np.random.default_rng(7)
    steps = np.arange(-40, 40, dtype=np.float64)
    halfway = np.concatenate([(steps + 0.5) / 32768, (32767 - steps[steps >= 0] - 0.5) / 32768,
                              -(32767 - steps[steps >= 0] + 0.5) / 32768])
    edges = np.array([-1.5, -1.0, -1 + 2**-16, 0.0, 1 - 2**-16, 32767 / 32768, 32767.5 / 32768, 1.0, 1.5, 1e-9])
    wav = np.concatenate([rng.uniform(-1.2, 1.2, 30_000), halfway, edges]).astype(np.float32)
    return np.clip(wav, -1.0, 1.0)


def test_fast_flac_writer_gives_the_bytes_of_soundfiles_own_float_write(tmp_path):
    """The in-memory int16 encoder is a speed-up only: same file as sf.write(float32)."""
    wav = _edge_waveform()
    sf.write(tmp_path / "reference.flac", wav, 48000, subtype="PCM_16", format="FLAC")
    assert flac16_bytes(wav, 48000) == (tmp_path / "reference.flac").read_bytes()


def test_resample_clip_output_equals_the_plain_soundfile_soxr_path(tmp_path):
    rng = np.random.default_rng(3)
    src = tmp_path / "src.flac"
    sf.write(src, np.clip(rng.normal(0, 0.4, 32000), -1, 1), 32000, subtype="PCM_16", format="FLAC")
    duration, reason = resample_clip(str(src), str(tmp_path / "fast.flac"), 48000, "VHQ")
    audio, rate = sf.read(src, dtype="float32", always_2d=True)
    plain = np.clip(soxr.resample(audio.mean(axis=1), rate, 48000, quality="VHQ"), -1.0, 1.0)
    sf.write(tmp_path / "plain.flac", plain, 48000, subtype="PCM_16", format="FLAC")
    assert reason is None and duration == 1.0
    assert (tmp_path / "fast.flac").read_bytes() == (tmp_path / "plain.flac").read_bytes()
    assert np.abs(plain).max() > 0.99  # loud enough that clipping and the extremes are exercised


def test_load_mono_averages_channels_and_keeps_mono_as_is(tmp_path):
    stereo = np.stack([np.linspace(-0.5, 0.5, 100), np.linspace(0.5, -0.25, 100)], axis=1).astype(np.float32)
    sf.write(tmp_path / "stereo.wav", stereo, 16000, subtype="FLOAT")
    sf.write(tmp_path / "mono.wav", stereo[:, 0], 16000, subtype="FLOAT")
    both, _ = load_mono(tmp_path / "stereo.wav")
    mono, _ = load_mono(tmp_path / "mono.wav")
    np.testing.assert_array_equal(both, stereo.mean(axis=1))
    np.testing.assert_array_equal(mono, stereo[:, 0])
    assert mono.dtype == both.dtype == np.float32 and mono.ndim == 1 and mono.flags.c_contiguous


def test_wav_copies_hold_the_same_samples_as_flac(tmp_path):
    manifest = make_source(tmp_path)
    flac, _ = resample_manifest(settings(48000, "HQ"), manifest, tmp_path / "flac", workers=1)
    wav, _ = resample_manifest(settings(48000, "HQ", "wav"), manifest, tmp_path / "wav", workers=1)
    assert all(p.endswith(".wav") for p in wav["path"]) and sf.info(wav["path"].iloc[0]).format == "WAV"
    for a, b in zip(flac["path"], wav["path"]):
        assert np.array_equal(sf.read(a, dtype="int16")[0], sf.read(b, dtype="int16")[0])
    # switching the format discards the other format's files instead of mixing them
    resample_manifest(settings(48000, "HQ", "wav"), manifest, tmp_path / "flac", workers=1)
    assert not list((tmp_path / "flac/audio").glob("*.flac"))


def test_an_unsafe_key_is_rejected_and_nothing_is_written_outside_out(tmp_path):
    """A manifest key `../../x` once wrote `out/audio/../../x.flac`: now the row is a reject."""
    manifest = make_source(tmp_path, n=2)
    table = pd.read_parquet(manifest)
    table.loc[1, "key"] = "../../escaped"
    table.to_parquet(manifest, index=False)
    out, rejects = resample_manifest(settings(48000, "HQ"), manifest, tmp_path / "deep" / "out", workers=1)
    assert out["key"].tolist() == ["clip0"]
    assert [(r["key"], r["stage"]) for r in rejects] == [("../../escaped", "resample")]
    assert rejects[0]["reason"].startswith("unsafe key")
    assert not list(tmp_path.rglob("escaped*"))
    assert pd.read_csv(tmp_path / "deep/out/rejects.csv")["key"].tolist() == ["../../escaped"]


def test_clips_shorter_than_the_minimum_are_rejected_even_when_already_resampled(tmp_path):
    manifest = make_source(tmp_path, n=2, seconds=0.3)
    sf.write(tmp_path / "src" / "clip1.wav", np.full(10, 0.1, np.float32), 32000)  # a 10-sample file
    out, rejects = resample_manifest(settings(48000, "HQ", min_duration=0.1), manifest, tmp_path / "out", workers=1)
    assert out["key"].tolist() == ["clip0"]
    assert rejects[0]["key"] == "clip1" and rejects[0]["reason"] == "too short: 0.0003 s < data.min_duration 0.1 s"
    assert not (tmp_path / "out/audio/clip1.flac").exists()
    # a stricter minimum also applies to files an earlier run finished
    out, rejects = resample_manifest(settings(48000, "HQ", min_duration=0.5), manifest, tmp_path / "out", workers=1)
    assert out.empty and {r["key"] for r in rejects} == {"clip0", "clip1"}
