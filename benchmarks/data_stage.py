"""Data-stage throughput: clips/s per core of decode + resample + mel + shard writing, and the loader.

Synthesises N 10 s 32 kHz mono FLAC clips (noise + tones, fixed seed) in a temp dir and times, on one
core (OMP/MKL/OpenBLAS threads = 1, set before numpy and torch load; torch.set_num_threads(1)):

- project, stages: what `scenesynth resample` + `scenesynth mel` run per clip: `resample_clip`
  (soundfile decode, soxr to 48 kHz, 16-bit 48 kHz FLAC or WAV written: `resample.format`), then the mel stage's job
  (`load_mono` of that FLAC, `MelFrontEnd.clip_to_mel` -> float16 [256, 1024]) into `write_shards`.
  The headline `clips_per_s_per_core` is this path with params.yaml's (+ overlay) `resample.format`.
- project, fused: the same functions without the intermediate 48 kHz FLAC (decode, soxr,
  clip_to_mel, write_shards): what a one-stage front end would cost.
- peer: what a user would write, one clip at a time: `librosa.load(sr=48000)` (soxr_hq),
  `librosa.feature.melspectrogram(n_fft 2048, hop 480, 256 mels, 20-24000 Hz)`, `np.log` of the
  clamped mel, float16, written with the SAME shard writer (so the ratio compares the audio work).

Each path processes all N clips once per repeat; the paths are interleaved (rotated order) inside
every repeat so that load from other processes hits them alike; one warm-up pass per path is not
timed; the figure is N / median(repeat CPU time of this one-thread process), which other processes on
a shared machine disturb far less than wall time (also printed; on a quiet machine the two agree).
A per-component breakdown (CPU ms per clip) follows.

Loader: the shards of the project path are read back through the training loader
(`scenesynth.training.data.batch_stream`) and its samples/s set against what a paper-size training
step consumes: d_steps x batch_size samples (2 x 16) per step, for assumed GPU step times
(--step-times). Loader figures are wall time (DataLoader workers are separate processes).

    python benchmarks/data_stage.py                      # 64 clips, 3 repeats, VHQ and HQ, loader 0 and 2 workers
    python benchmarks/data_stage.py --clips 128 --repeats 5 --json
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
             "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"  # per core = one core: must be set before numpy / torch are imported

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable, Iterator  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import soxr  # noqa: E402
import torch  # noqa: E402

from scenesynth.config import load_params  # noqa: E402
from scenesynth.audio_io import flac16_bytes, load_mono  # noqa
from scenesynth.data.resample import resample_clip  # noqa: E402
from scenesynth.features.mel import MelFrontEnd  # noqa: E402
from scenesynth.features.shards import write_shards  # noqa: E402
from scenesynth.training.data import batch_stream  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SOURCE_RATE = 32000


def synth_clips(folder: Path, n: int, seconds: float, seed: int) -> list[Path]:
    """N mono 16-bit FLAC clips at 32 kHz: pink-ish noise plus a few tones, each clip different."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SOURCE_RATE)) / SOURCE_RATE
    paths = []
    for i in range(n):
        noise = np.cumsum(rng.standard_normal(t.size)) * 0.002
        noise -= np.convolve(noise, np.ones(64) / 64, mode="same")  # remove the random walk's drift
        tones = sum(rng.uniform(0.05, 0.2) * np.sin(2 * np.pi * rng.uniform(60, 15000) * t + rng.uniform(0, 6))
                    for _ in range(3))
        envelope = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.1, 2) * t)
        wav = np.clip(0.05 * rng.standard_normal(t.size) + noise + envelope * tones, -1, 1)
        paths.append(folder / f"clip{i:05d}.flac")
        sf.write(paths[-1], wav.astype(np.float32), SOURCE_RATE, subtype="PCM_16", format="FLAC")
    return paths


def _sample(path: Path, mel: np.ndarray, true_frames: int) -> dict:
    return {"key": path.stem, "mel": mel, "meta": {"caption": f"synthetic {path.stem}", "source": "synthetic",
                                                    "true_frames": int(true_frames), "split": "train"}}


# --------------------------------------------------------------------------- the timed paths
def project_stages(clips: list[Path], out: Path, fe: MelFrontEnd, rate: int, quality: str, shard_size: int,
                   audio_format: str = "flac") -> None:
    """Resample stage (48 kHz FLAC or WAV per clip), then the mel stage's job into the shard writer."""
    audio_dir = out / "audio48k"
    audio_dir.mkdir(parents=True)
    resampled = [audio_dir / f"{p.stem}.{audio_format}" for p in clips]
    for src, dst in zip(clips, resampled):
        _, reason = resample_clip(str(src), str(dst), rate, quality)
        if reason is not None:
            raise RuntimeError(f"{src}: {reason}")

    def samples() -> Iterator[dict]:
        for path in resampled:
            audio, _ = load_mono(path)
            yield _sample(path, *fe.clip_to_mel(audio))

    write_shards(samples(), out / "mels", shard_size=shard_size)


def project_fused(clips: list[Path], out: Path, fe: MelFrontEnd, rate: int, quality: str, shard_size: int) -> None:
    """The same functions without the intermediate 48 kHz file."""
    def samples() -> Iterator[dict]:
        for path in clips:
            audio, source_rate = load_mono(path)
            audio = np.clip(soxr.resample(audio, source_rate, rate, quality=quality), -1.0, 1.0)
            yield _sample(path, *fe.clip_to_mel(audio))

    write_shards(samples(), out / "mels", shard_size=shard_size)


def peer_librosa(clips: list[Path], out: Path, fe: MelFrontEnd, rate: int, quality: str, shard_size: int) -> None:
    """librosa one clip at a time (its own resampler, soxr_hq), written by the same shard writer."""
    import librosa

    s = fe.settings

    def samples() -> Iterator[dict]:
        for path in clips:
            wav, _ = librosa.load(path, sr=rate)
            mel = librosa.feature.melspectrogram(y=wav, sr=rate, n_fft=s.n_fft, hop_length=s.hop_length,
                                                 n_mels=s.n_mels, fmin=s.fmin, fmax=s.fmax)
            log_mel = np.log(np.clip(mel, s.log_clamp, None)).astype(np.float16)
            yield _sample(path, log_mel, log_mel.shape[1])

    write_shards(samples(), out / "mels", shard_size=shard_size)


def time_paths(paths: dict[str, Callable[[Path], None]], work: Path, clips: int, repeats: int) -> dict[str, dict]:
    """Interleaved repeats (rotated order); clips/s from the median repeat, by CPU and by wall time.

    Per core = per CPU-second of this single-threaded process (time.process_time), which other
    processes on a shared machine barely disturb; on a quiet machine it equals the wall-clock figure.
    """
    for name, run in paths.items():  # warm-up: imports, caches, first-call costs
        run(work / f"warm-{name}")
        shutil.rmtree(work / f"warm-{name}")
    cpu: dict[str, list[float]] = {name: [] for name in paths}
    wall: dict[str, list[float]] = {name: [] for name in paths}
    names = list(paths)
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            out = work / f"{name}-{r}"
            started, started_cpu = time.perf_counter(), time.process_time()
            paths[name](out)
            cpu[name].append(time.process_time() - started_cpu)
            wall[name].append(time.perf_counter() - started)
            if r < repeats - 1:
                shutil.rmtree(out)
    return {name: {"clips_per_s": clips / statistics.median(cpu[name]),
                   "wall_clips_per_s": clips / statistics.median(wall[name])} for name in paths}


# --------------------------------------------------------------------------- breakdown
def breakdown(clips: list[Path], work: Path, fe: MelFrontEnd, rate: int, quality: str, shard_size: int) -> dict:
    """CPU ms per clip of each piece of the project path (same functions, timed one by one)."""
    import librosa

    acc = {k: 0.0 for k in ("decode 32 kHz FLAC", f"soxr 32->48 kHz ({quality})", "write 48 kHz FLAC",
                            "decode 48 kHz FLAC", "clip_to_mel", "shard writing",
                            "peer: librosa.load(sr=48000)", "peer: melspectrogram + log")}
    keys = list(acc)
    s, tmp = fe.settings, work / "breakdown.flac"
    # The mels are kept for the shard-writing timing in one array allocated up front: a growing list
    # of fresh arrays would charge the allocator's page faults to clip_to_mel, as the stages do not.
    mels = np.zeros((len(clips), s.n_mels, s.n_frames), dtype=np.float16)
    true_frames = [0] * len(clips)

    def timed(key: str, fn: Callable, *args, **kwargs):
        started = time.process_time()
        value = fn(*args, **kwargs)
        acc[key] += time.process_time() - started
        return value

    for i, path in enumerate(clips):
        audio, source_rate = timed(keys[0], load_mono, path)
        audio = np.clip(timed(keys[1], soxr.resample, audio, source_rate, rate, quality=quality), -1.0, 1.0)
        timed(keys[2], lambda a: tmp.write_bytes(flac16_bytes(a, rate)), audio)
        audio, _ = timed(keys[3], load_mono, tmp)
        mel, true_frames[i] = timed(keys[4], fe.clip_to_mel, audio)
        mels[i] = mel
        del mel
        wav, _ = timed(keys[6], librosa.load, path, sr=rate)
        timed(keys[7], lambda w: np.log(np.clip(librosa.feature.melspectrogram(
            y=w, sr=rate, n_fft=s.n_fft, hop_length=s.hop_length, n_mels=s.n_mels, fmin=s.fmin, fmax=s.fmax),
            s.log_clamp, None)), wav)
    samples = (_sample(path, mels[i], true_frames[i]) for i, path in enumerate(clips))
    timed(keys[5], write_shards, samples, work / "breakdown-mels", shard_size=shard_size)
    return {key: 1000 * total / len(clips) for key, total in acc.items()}


# --------------------------------------------------------------------------- loader
def loader_rate(shard_dir: Path, batch: int, workers: int, batches: int, shuffle_buffer: int, seed: int) -> float:
    """Samples/s of the training loader's batch stream after one warm-up batch."""
    stream = batch_stream(shard_dir, batch_size=batch, seed=seed, shuffle_buffer=shuffle_buffer,
                          num_workers=workers)
    next(stream)  # worker start-up and the shuffle buffer's fill are not steady state
    started = time.perf_counter()
    for _ in range(batches):
        mels, captions = next(stream)
        assert mels.shape[0] == batch == len(captions)
    elapsed = time.perf_counter() - started
    del stream  # shuts the DataLoader workers down
    return batches * batch / elapsed


# --------------------------------------------------------------------------- main
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=64, help="synthetic clips (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per path (default %(default)s)")
    parser.add_argument("--qualities", default="VHQ,HQ", help="soxr qualities to time (first = headline)")
    parser.add_argument("--shard-size", type=int, default=16, help="samples per shard (default %(default)s)")
    parser.add_argument("--loader-workers", default="0,2", help="DataLoader worker counts to time")
    parser.add_argument("--loader-batches", type=int, default=20, help="timed batches per loader run")
    parser.add_argument("--shuffle-buffer", type=int, default=64,
                        help="loader shuffle buffer (params: 1000; smaller keeps memory low, same steady state)")
    parser.add_argument("--step-times", default="0.25,0.5,1",
                        help="assumed seconds per training step, for the loader's required rate (default %(default)s)")
    parser.add_argument("--overlay", default=None, help="params overlay (audio, train settings)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-breakdown", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    params = load_params(REPO / "params.yaml", args.overlay)
    fe = MelFrontEnd.from_params(params["audio"])
    rate = fe.settings.sample_rate
    qualities = args.qualities.split(",")
    audio_format = params["resample"]["format"]  # the headline is the pipeline as params configure it
    batch, d_steps = params["train"]["batch_size"], params["train"]["d_steps"]
    step_times = [float(t) for t in args.step_times.split(",")]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="data_stage-") as tmp:
        work = Path(tmp)
        (work / "src").mkdir()
        clips = synth_clips(work / "src", args.clips, args.seconds, args.seed)
        kw = dict(fe=fe, rate=rate, shard_size=args.shard_size)
        paths: dict[str, Callable[[Path], None]] = {}
        for q in qualities:
            for fmt in ("flac", "wav"):
                paths[f"project stages {q} {fmt}"] = \
                    lambda out, q=q, fmt=fmt: project_stages(clips, out, quality=q, audio_format=fmt, **kw)
            paths[f"project fused {q}"] = lambda out, q=q: project_fused(clips, out, quality=q, **kw)
        paths["peer librosa"] = lambda out: peer_librosa(clips, out, quality="", **kw)
        timing = time_paths(paths, work, args.clips, args.repeats)
        parts = {} if args.no_breakdown else breakdown(clips, work, quality=qualities[0], **kw)
        shard_dir = work / f"project stages {qualities[0]} {audio_format}-{args.repeats - 1}" / "mels"
        loader = {int(w): loader_rate(shard_dir, batch, int(w), args.loader_batches, args.shuffle_buffer, args.seed)
                  for w in args.loader_workers.split(",") if w != ""}
    load_after = os.getloadavg()[0]

    peer = timing["peer librosa"]["clips_per_s"]
    head = timing[f"project stages {qualities[0]} {audio_format}"]["clips_per_s"]
    per_step = batch * d_steps
    result = {
        "clips": args.clips, "clip_seconds": args.seconds, "repeats": args.repeats, "quality": qualities[0],
        "resample_format": audio_format,
        "clips_per_s_per_core": head,
        "fused_clips_per_s_per_core": timing[f"project fused {qualities[0]}"]["clips_per_s"],
        "peer_clips_per_s_per_core": peer,
        "ratio_to_peer": head / peer,
        "paths": timing,
        "ms_per_clip": parts,
        "loader_samples_per_s": {str(w): v for w, v in loader.items()},
        "samples_per_step": per_step,
        "required_samples_per_s": {f"{t:g}": per_step / t for t in step_times},
        "load_average": [load_before, load_after], "cpu_count": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"Data stage, {args.clips} clips of {args.seconds:g} s at 32 kHz, one thread, median of {args.repeats} "
          f"interleaved repeats; load average {load_before:.2f} -> {load_after:.2f} on {os.cpu_count()} cores")
    print("peer = librosa.load(sr=48000) + melspectrogram + np.log, float16, written by the same shard writer")
    print("| path | clips/s/core (CPU time) | x peer | clips/s (wall) |")
    print("| --- | --- | --- | --- |")
    for name, t in timing.items():
        print(f"| {name} | {t['clips_per_s']:.1f} | {t['clips_per_s'] / peer:.2f} | {t['wall_clips_per_s']:.1f} |")
    if parts:
        print(f"\nBreakdown (CPU ms per clip, {qualities[0]}):")
        print("| piece | ms/clip |")
        print("| --- | --- |")
        for key, ms in parts.items():
            print(f"| {key} | {ms:.2f} |")
    print(f"\nLoader (batch_stream, wall time, batch {batch}, shuffle buffer {args.shuffle_buffer}); one step reads "
          f"d_steps x batch = {per_step} samples")
    print("| DataLoader workers | samples/s | " + " | ".join(f"x need at {t:g} s/step ({per_step / t:.0f}/s)"
                                                       for t in step_times) + " |")
    print("| --- | --- |" + " --- |" * len(step_times))
    for w, rate_w in loader.items():
        print(f"| {w} | {rate_w:.0f} | " + " | ".join(f"{rate_w * t / per_step:.1f}" for t in step_times) + " |")


if __name__ == "__main__":
    main()
