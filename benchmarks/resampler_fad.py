"""The scorer's resampler against the organisers': soxr VHQ vs torchaudio's Kaiser-windowed sinc.

The DCASE 2024 Task 7 fadtk fork resamples every clip to 32 kHz with
``torchaudio.transforms.Resample(orig, 32000, lowpass_filter_width=64, rolloff=0.9475937167399596,
resampling_method="sinc_interp_kaiser", beta=14.769656459379492)`` (fadtk/fad.py ``load_audio``);
the project's scorer uses soxr VHQ (evaluation/clip_prep.py), since torchaudio does not run here
(docs/paper.md section 0). This script rebuilds torchaudio's kernel in numpy
(``functional._get_sinc_resample_kernel`` + ``_apply_sinc_resample_kernel``: the float64 kernel cast
to float32 as ``transforms.Resample`` keeps it, zero padding of ``width`` / ``width + orig`` samples,
a convolution strided by ``orig``, the output cut to ceil(new * n / orig)) and measures, on
real-format input (the demo's synthetic scenes rendered at 48 kHz and 44.1 kHz, 16-bit WAV, 4 s):

- the waveforms: SNR of soxr's output against the Kaiser sinc's, both after the scorer's 16-bit
  round trip, and how many 16-bit steps they differ by;
- PANNs' own front end: the max and mean absolute difference of the 64-band log-mel in dB;
- PANNs-shaped embeddings: the full-size Wavegram-Logmel-CNN14 with seeded random weights (the
  public checkpoint cannot be fetched here), each clip's 2048-d ``embedding`` through both
  resamplers: their relative L2 difference, and the FAD between the two resampled versions of the
  same clips, next to the FAD between two halves of the clip set (what a real difference of
  content gives with the same network). A random network's embeddings say little about scale, so
  the same two FADs are also given for the project's deterministic ``logmel_stats`` embedding
  (statistics of PANNs' own log-mel front end).

    python benchmarks/resampler_fad.py                 # 16 clips per rate, full-size random PANNs
    python benchmarks/resampler_fad.py --clips 4 --width-divisor 16 --json
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import soxr
import torch

from scenesynth.audio_io import load_mono, pcm16
from scenesynth.data.demo.scenes import synthesize_demo
from scenesynth.evaluation.embeddings import LogMelStatsEmbedding
from scenesynth.evaluation.frechet import frechet_distance, merged_statistics
from scenesynth.evaluation.panns import WavegramLogmelCnn14

TARGET = 32_000
KAISER = {"lowpass_filter_width": 64, "rolloff": 0.9475937167399596, "beta": 14.769656459379492}


def kaiser_sinc_kernel(orig: int, new: int, lowpass_filter_width: int, rolloff: float, beta: float
                       ) -> tuple[np.ndarray, int, int, int]:
    """torchaudio's sinc_interp_kaiser kernel [new', 2 width + orig'] (orig', new' reduced by their gcd)."""
    gcd = math.gcd(orig, new)
    orig, new = orig // gcd, new // gcd
    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base)
    idx = np.arange(-width, width + orig, dtype=np.float64)[None, :] / orig
    t = np.arange(0, -new, -1, dtype=np.float32)[:, None] / np.float32(new) + idx
    t = np.clip(t * base, -lowpass_filter_width, lowpass_filter_width)
    window = np.i0(beta * np.sqrt(1 - (t / lowpass_filter_width) ** 2)) / np.i0(beta)
    t = t * math.pi
    with np.errstate(invalid="ignore", divide="ignore"):
        kernel = np.where(t == 0, 1.0, np.sin(t) / t)
    return (kernel * window * (base / orig)).astype(np.float32), width, orig, new


def kaiser_resample(wave: np.ndarray, orig: int, new: int) -> np.ndarray:
    """``torchaudio.transforms.Resample(orig, new, **KAISER)`` of a mono float32 wave, in numpy."""
    if orig == new:
        return wave.astype(np.float32)
    kernel, width, orig_r, new_r = kaiser_sinc_kernel(orig, new, **KAISER)
    padded = np.pad(wave.astype(np.float32), (width, width + orig_r))
    taps = kernel.shape[1]
    frames = np.lib.stride_tricks.sliding_window_view(padded, taps)[::orig_r]  # conv1d, stride orig
    out = (frames.astype(np.float64) @ kernel.T.astype(np.float64)).astype(np.float32).reshape(-1)
    return out[: math.ceil(new_r * len(wave) / orig_r)]


def scorer_round_trip(wave: np.ndarray) -> np.ndarray:
    return pcm16(wave).astype(np.float32) / np.float32(32768)


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    noise = np.sum((reference.astype(np.float64) - other) ** 2)
    return float("inf") if noise == 0 else float(10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / noise))


def embed(model: WavegramLogmelCnn14, waves: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """[N, 2048] embeddings (float16, as the scorer keeps them) and [N, 64, frames] log-mels in dB."""
    with torch.inference_mode():
        batch = torch.from_numpy(np.stack(waves))
        embedding = model(batch)["embedding"].numpy().astype(np.float16)
        log_mel = model.log_mel(batch)[:, 0].numpy()
    return embedding, log_mel


def fad(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance(*merged_statistics(list(a[:, None]))[:2], *merged_statistics(list(b[:, None]))[:2])


def measure(rate: int, clips: int, seconds: float, model: WavegramLogmelCnn14, folder: Path) -> dict:
    table = synthesize_demo(folder / str(rate), n_train=0, n_dev=clips, sample_rate=rate, duration=seconds, seed=7,
                            workers=1)
    sources = [load_mono(folder / str(rate) / p)[0] for p in table["path"]]
    started = time.perf_counter()
    by_soxr = [scorer_round_trip(soxr.resample(w, rate, TARGET, quality="VHQ")) for w in sources]
    soxr_s = time.perf_counter() - started
    started = time.perf_counter()
    by_kaiser = [scorer_round_trip(kaiser_resample(w, rate, TARGET)) for w in sources]
    kaiser_s = time.perf_counter() - started
    lengths = {(len(a), len(b)) for a, b in zip(by_soxr, by_kaiser)}
    n = min(min(pair) for pair in lengths)
    by_soxr, by_kaiser = [w[:n] for w in by_soxr], [w[:n] for w in by_kaiser]
    steps = [np.abs(np.rint(a * 32768) - np.rint(b * 32768)) for a, b in zip(by_soxr, by_kaiser)]
    emb_soxr, mel_soxr = embed(model, by_soxr)
    emb_kaiser, mel_kaiser = embed(model, by_kaiser)
    relative = np.linalg.norm(emb_soxr.astype(np.float64) - emb_kaiser, axis=1) / \
        np.maximum(np.linalg.norm(emb_kaiser.astype(np.float64), axis=1), 1e-12)
    half = clips // 2
    stats = LogMelStatsEmbedding()
    stats_soxr = np.stack([stats.embed(w) for w in by_soxr]).astype(np.float16)
    stats_kaiser = np.stack([stats.embed(w) for w in by_kaiser]).astype(np.float16)
    return {
        "rate": rate, "clips": clips, "seconds": seconds, "lengths": sorted(lengths),
        "snr_db_median": float(np.median([snr_db(b, a) for a, b in zip(by_soxr, by_kaiser)])),
        "snr_db_min": float(np.min([snr_db(b, a) for a, b in zip(by_soxr, by_kaiser)])),
        "lsb_diff_max": int(max(s.max() for s in steps)), "lsb_diff_mean": float(np.mean([s.mean() for s in steps])),
        "logmel_db_diff_max": float(np.abs(mel_soxr - mel_kaiser).max()),
        "logmel_db_diff_mean": float(np.abs(mel_soxr - mel_kaiser).mean()),
        "embedding_relative_l2_median": float(np.median(relative)),
        "embedding_relative_l2_max": float(np.max(relative)),
        "fad_soxr_vs_kaiser_same_clips": fad(emb_soxr, emb_kaiser),
        "fad_half_vs_half_same_resampler": fad(emb_kaiser[:half], emb_kaiser[half:]) if half >= 2 else None,
        "logmel_stats_fad_soxr_vs_kaiser_same_clips": fad(stats_soxr, stats_kaiser),
        "logmel_stats_fad_half_vs_half": fad(stats_kaiser[:half], stats_kaiser[half:]) if half >= 2 else None,
        "seconds_per_clip": {"soxr": soxr_s / clips, "kaiser_numpy": kaiser_s / clips},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rates", default="48000,44100")
    parser.add_argument("--width-divisor", type=int, default=1, help="1 = the public network's size")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = WavegramLogmelCnn14(width_divisor=args.width_divisor).eval()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(int(r), args.clips, args.seconds, model, Path(tmp)) for r in args.rates.split(",")]
    result = {"kaiser": KAISER, "width_divisor": args.width_divisor, "weights": "random (seed 0)", "rows": rows}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for row in rows:
        print(f"{row['rate']} Hz -> 32 kHz, {row['clips']} clips of {row['seconds']} s: SNR soxr vs Kaiser "
              f"{row['snr_db_median']:.1f} dB (min {row['snr_db_min']:.1f}), max {row['lsb_diff_max']} LSB; "
              f"log-mel diff max {row['logmel_db_diff_max']:.3f} dB (mean {row['logmel_db_diff_mean']:.4f}); "
              f"embedding rel. L2 median {row['embedding_relative_l2_median']:.2e}; FAD same clips "
              f"{row['fad_soxr_vs_kaiser_same_clips']:.3g} vs halves {row['fad_half_vs_half_same_resampler']}; "
              f"logmel_stats FAD same clips {row['logmel_stats_fad_soxr_vs_kaiser_same_clips']:.3g} vs halves "
              f"{row['logmel_stats_fad_half_vs_half']}")


if __name__ == "__main__":
    main()
