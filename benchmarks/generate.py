"""Generation speed per prompt (docs/paper.md section 5), with random weights at paper size.

Per prompt the generate stage makes n candidates of 256 x 1024 log-mels, vocodes all of them with the
48 kHz HiFi-GAN, keeps the one CLAP (HTSAT-tiny) scores best against the prompt, scores n_crops random
4 s crops of it with CLAP again and resamples the best to 32 kHz. This script times each of those parts
separately and the project's own `pick_clip` call, on models built at their real sizes with random
weights (no checkpoint is needed: time does not depend on the weights), saved into a temporary
`data/pretrained` layout and loaded back through `make_vocoder` / `make_reranker`.

    python benchmarks/generate.py                 # paper setup, everything at full length (slow on a CPU)
    python benchmarks/generate.py --vocoder-frames 64,256,1024 --vocoder-candidates 4 --offline
                                                  # HiFi-GAN on 4 candidates at three lengths, scaled to 10;
                                                  # plus the offline path (Griffin-Lim + discriminator)
    python benchmarks/generate.py --tiny --frames 16 --candidates 2 --crops 2 --json   # smoke test

The HiFi-GAN dominates on a CPU, so `--vocoder-frames` / `--vocoder-candidates` run it on fewer
frames or candidates: its time per second of audio is measured at every length given (side by side,
so their ratio shows whether time is linear in frames) and the per-prompt vocoder time is scaled
linearly from the longest; every such row is marked. `pick_clip` runs with the shortest length, and
its vocoder share is swapped for the full-length estimate. CLAP always sees 10 s of audio (longer
candidates are centre-cropped, the 4 s crops repeat-padded), so its cost does not depend on the
length. The discriminator path (the offline demo's re-ranker) vocodes one candidate and is always
measured at full length.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from scenesynth.config import load_params
from scenesynth.features.mel import MelFrontEnd, MelSettings
from scenesynth.inference.protocol import (discriminator_scores, make_reranker, make_vocoder, pick_clip,
                                           random_crops, to_output_rate)
from scenesynth.inference.hifigan import HIFIGAN_48K, HifiGanConfig, HifiGanGenerator
from scenesynth.models import build_models
from scenesynth.pretrained.clap import offline_transformers
from scenesynth.text.batch import TextBatch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the tiny CLAP folder of the tests gives the real tokenizer files
from tiny_clap import write_tiny_clap_folder  # noqa: E402
CAPTION = "a dog barks with traffic in the background"
# laion/clap-htsat-unfused (630k-audioset-best.pt): HTSAT-tiny audio tower, RoBERTa-base text tower.
HTSAT_TINY = dict(patch_embeds_hidden_size=96, depths=[2, 2, 6, 2], num_attention_heads=[4, 8, 16, 32],
                  window_size=8, spec_size=256, num_mel_bins=64, patch_size=4, patch_stride=[4, 4],
                  hidden_size=768, mlp_ratio=4.0, enable_fusion=False, projection_dim=512)
ROBERTA_BASE = dict(vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                    intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1, projection_dim=512)
TINY_HIFIGAN = HifiGanConfig(upsample_initial_channel=32, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1,),))
OFFLINE = ("griffin_lim", "discriminator")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeats: int, device: torch.device):
    """(wall s, process CPU s, result) of the fastest of `repeats` calls: the least disturbed on a shared box.

    CPU time (user + sys of all threads) next to wall time shows contention: with the cores to itself
    a call's wall time is about its CPU time / threads."""
    best, out = (math.inf, math.inf), None
    for _ in range(repeats):
        sync(device)
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        sync(device)
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best[0], best[1], out


def random_text(n: int, sentence_dim: int, word_dim: int, device: torch.device) -> TextBatch:
    """CLAP-shaped conditioning (77 tokens, 20 real) standing in for the text cache."""
    gen = torch.Generator().manual_seed(0)
    mask = (torch.arange(77)[None, :] < 20).expand(n, 77).clone()
    words = torch.randn(n, 77, word_dim, generator=gen) * mask[..., None]
    return TextBatch(torch.randn(n, sentence_dim, generator=gen), words,
                     mask, torch.zeros(n, dtype=torch.long)).to(device)


def write_hifigan(folder: Path, config: HifiGanConfig) -> None:
    """A random-weight generator in checkpoint format (a): generator.pt + jik876 config.json."""
    folder.mkdir(parents=True)
    torch.save({"generator": HifiGanGenerator(config).state_dict()}, folder / "generator.pt")
    cfg = {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(config).items()}
    (folder / "config.json").write_text(json.dumps({**cfg, "resblock": "1", "hop_size": config.hop_length}))


def write_clap(folder: Path, tiny: bool) -> None:
    """The tiny test CLAP's folder (tokenizer, feature extractor), with real-size weights unless `tiny`."""
    write_tiny_clap_folder(folder)
    if tiny:
        return
    transformers = offline_transformers()
    config = transformers.ClapConfig(text_config=ROBERTA_BASE, audio_config=HTSAT_TINY, projection_dim=512)
    torch.save(transformers.ClapModel(config).state_dict(), folder / "pytorch_model.bin")
    config.save_pretrained(str(folder))


def build_gan(params: dict, n_mels: int, frames: int):
    """G and D of params' `model` section at [n_mels, frames], keeping the config's number of blocks."""
    cfg = dict(params["model"])
    k = (params["audio"]["n_mels"] // cfg["init_shape"][0]).bit_length() - 1
    if frames % 2**k:
        raise SystemExit(f"--frames must be a multiple of {2**k} for this model ({k} blocks)")
    cfg["init_shape"] = [n_mels >> k, frames >> k]
    return build_models(cfg, n_mels, frames, params["text"]["sentence_dim"], params["text"]["word_dim"])


class Bench:
    """Shared state of one invocation: models, the generated mels, and the timing rows."""

    def __init__(self, args: argparse.Namespace, pretrained: Path):
        self.args, self.pretrained = args, pretrained
        self.device = torch.device(args.device)
        self.params = load_params(REPO / "params.yaml", REPO / "config/tiny.yaml" if args.tiny else None)
        self.gen_cfg = {**self.params["generate"], "n_candidates": args.candidates, "n_crops": args.crops}
        self.front_end = MelFrontEnd(MelSettings(n_frames=args.frames))  # the vocoder's 48 kHz front end
        self.rate, self.hop = self.front_end.settings.sample_rate, self.front_end.settings.hop_length
        # A crop is never longer than the clip it is cut from (protocol.random_crops refuses to pad): at the
        # shortest length measured (tiny models, --vocoder-frames) the crop is the whole clip. CLAP's cost
        # does not depend on it (it always sees 10 s), and settings.crop_seconds records what ran.
        shortest = min(args.vocoder_frames or [args.frames]) * self.hop / self.rate
        self.gen_cfg["crop_seconds"] = min(self.gen_cfg["crop_seconds"], shortest)
        generator, discriminator = build_gan(self.params, self.front_end.settings.n_mels, args.frames)
        self.generator, self.discriminator = generator.to(self.device).eval(), discriminator.to(self.device).eval()
        text = self.params["text"]
        self.text = random_text(args.candidates, text["sentence_dim"], text["word_dim"], self.device)
        z = torch.randn(args.candidates, self.generator.z_dim, generator=torch.Generator().manual_seed(0))
        z = z.to(self.device)
        self.generator(z[:1], random_text(1, text["sentence_dim"], text["word_dim"], self.device))  # warm-up
        wall, cpu, self.mels = timed(lambda: self.generator(z, self.text), args.repeats, self.device)
        self.generator_row = {"component": f"generator forward, {args.candidates} candidates (batch {args.candidates})",
                              "measured_at": f"{args.frames} frames", "seconds": wall, "cpu_seconds": cpu,
                              "extrapolated": False}

    def seconds(self, frames: int) -> float:
        return frames * self.hop / self.rate

    def row(self, component: str, measured_at: str, fn) -> dict:
        wall, cpu, _ = timed(fn, self.args.repeats, self.device)
        return {"component": component, "measured_at": measured_at, "seconds": wall, "cpu_seconds": cpu,
                "extrapolated": False}

    def vocoder_lengths(self, vocoder, lengths: list[int]) -> list[dict]:
        """The vocoder on k candidates at each length, repeats interleaved so load drifts hit all lengths alike."""
        k = self.args.vocoder_candidates or self.args.candidates
        best = {length: (math.inf, math.inf) for length in lengths}
        for _ in range(self.args.repeats):
            for length in lengths:
                wall, cpu, _ = timed(lambda: vocoder(self.mels[:k, 0, :, :length].float().cpu().numpy(), 0), 1,
                                     self.device)
                best[length] = min(best[length], (wall, cpu))
        return [{"frames": length, "candidates": k, "seconds": wall, "cpu_seconds": cpu,
                 "s_per_audio_s": wall / (k * self.seconds(length)),
                 "cpu_s_per_audio_s": cpu / (k * self.seconds(length))}
                for length, (wall, cpu) in best.items()]

    def measure(self, vocoder_name: str, rerank_name: str) -> dict:
        a, n, frames = self.args, self.args.candidates, self.args.frames
        gen_cfg = {**self.gen_cfg, "vocoder": vocoder_name, "rerank": rerank_name}
        vocoder = make_vocoder(gen_cfg, self.front_end, self.pretrained, self.device)
        reranker = make_reranker(gen_cfg, self.pretrained, self.device)
        full, crop_s, out_rate = f"{frames} frames", gen_cfg["crop_seconds"], gen_cfg["sample_rate"]
        rng = np.random.default_rng(0)
        rows, lengths = [dict(self.generator_row)], []
        vocoder(self.mels[:1, 0, :, :8].float().cpu().numpy(), 0)  # warm-up (Griffin-Lim builds its pseudo-inverse)
        if reranker is not None:
            lengths = self.vocoder_lengths(vocoder, sorted(set(a.vocoder_frames or [frames])))
            longest = lengths[-1]
            scale = frames * n / (longest["frames"] * longest["candidates"])
            rows.append({"component": f"{vocoder_name} vocoder, {n} candidates",
                         "measured_at": f"{longest['candidates']} candidates at "
                         + " & ".join(str(v["frames"]) for v in lengths) + " frames"
                         + (f"; x{scale:g} (linear in frames x candidates) from {longest['frames']}"
                            if scale != 1 else ""),
                         "seconds": longest["seconds"] * scale, "cpu_seconds": longest["cpu_seconds"] * scale,
                         "extrapolated": scale != 1})
            waves = np.random.default_rng(1).uniform(-0.5, 0.5, (n, frames * self.hop)).astype(np.float32)
            reranker.scores(waves[:1], CAPTION)  # warm-up
            rows.append(self.row(f"CLAP scores, {n} candidates of {self.seconds(frames):g} s (+ text)", full,
                                 lambda: reranker.scores(waves, CAPTION)))
            crops = random_crops(waves[0], self.rate, crop_s, a.crops, rng)
            rows.append(self.row(f"CLAP scores, {a.crops} crops of {crop_s:g} s (+ text)", f"{crop_s:g} s",
                                 lambda: reranker.scores(crops, CAPTION)))
            n_cut, pick_frames = a.crops, lengths[0]["frames"]
        else:
            text = self.params["text"]
            self.discriminator(self.mels[:1], random_text(1, text["sentence_dim"], text["word_dim"], self.device))
            rows.append(self.row(f"discriminator G2S scores, {n} candidates", full,
                                 lambda: discriminator_scores(self.discriminator, self.mels, self.text)))
            rows.append(self.row(f"{vocoder_name} vocoder, 1 candidate", full,
                                 lambda: vocoder(self.mels[:1, 0].float().cpu().numpy(), 0)))
            waves, n_cut, pick_frames = np.zeros((1, frames * self.hop), np.float32), 1, frames
        rows.append(self.row(f"{n_cut} random {crop_s:g} s crop(s), 48 -> 32 kHz", full,
                             lambda: to_output_rate(random_crops(waves[0], self.rate, crop_s, n_cut, rng)[0],
                                                    self.rate, out_rate, crop_s)))
        pick_s, pick_cpu, (clip, _) = timed(
            lambda: pick_clip(self.mels[..., :pick_frames], CAPTION, self.text, self.discriminator, vocoder, reranker,
                              gen_cfg, self.rate, 0, np.random.default_rng(0)), a.repeats, self.device)
        total = sum(r["seconds"] for r in rows)
        for r in rows:
            r["share"] = r["seconds"] / total
        # pick_clip ran with the vocoder at pick_frames; swap that vocoder time for the full-length one.
        vocoder_row = next(r for r in rows if "vocoder" in r["component"])
        swapped = bool(lengths) and pick_frames != frames
        rescale = (vocoder_row["seconds"] - lengths[0]["s_per_audio_s"] * n * self.seconds(pick_frames)
                   if swapped else 0.0)
        return {"vocoder": vocoder_name, "rerank": rerank_name, "components": rows, "total_s": total,
                "total_cpu_s": sum(r["cpu_seconds"] for r in rows), "vocoder_lengths": lengths,
                "clip_samples": int(len(clip)),
                "pick_clip": {"frames": pick_frames, "seconds": pick_s, "cpu_seconds": pick_cpu,
                              "per_prompt_s": rows[0]["seconds"] + pick_s + rescale, "vocoder_swapped": swapped,
                              "extrapolated": swapped and vocoder_row["extrapolated"]}}


def run_benchmark(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    paths = [(args.vocoder, args.rerank)]
    if args.offline and paths[0] != OFFLINE:
        paths.append(OFFLINE)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_generate_") as tmp, torch.no_grad():
        pretrained = Path(tmp)
        setup_start = time.perf_counter()
        if any(v == "hifigan" for v, _ in paths):
            write_hifigan(pretrained / "hifigan_48k", TINY_HIFIGAN if args.tiny else HIFIGAN_48K)
        if any(r == "clap" for _, r in paths):
            write_clap(pretrained / "clap_rerank", args.tiny)
        setup_s = time.perf_counter() - setup_start
        bench = Bench(args, pretrained)
        results = [bench.measure(v, r) for v, r in paths]
    return {"settings": {"candidates": args.candidates, "crops": args.crops, "frames": args.frames,
                         "clip_seconds": bench.seconds(args.frames), "crop_seconds": bench.gen_cfg["crop_seconds"],
                         "out_rate": bench.gen_cfg["sample_rate"],
                         "vocoder_frames": args.vocoder_frames or [args.frames],
                         "vocoder_candidates": args.vocoder_candidates or args.candidates, "device": args.device,
                         "repeats": args.repeats, "tiny": args.tiny,
                         "griffin_lim_iters": bench.gen_cfg["griffin_lim_iters"]},
            "torch_threads": torch.get_num_threads(), "torch_version": torch.__version__,
            "cpu_count": os.cpu_count(), "load_average_1min": [load_before[0], os.getloadavg()[0]],
            "setup_s": setup_s, "paths": results}


def print_table(out: dict) -> None:
    s = out["settings"]
    print(f"Generation per prompt (docs/paper.md section 5), random weights at {'TINY' if s['tiny'] else 'paper'} size; "
          f"device {s['device']}, torch {out['torch_version']}, {out['torch_threads']} torch threads, "
          f"best of {s['repeats']} timed run(s) after a warm-up.")
    load = out["load_average_1min"]
    print(f"{out['cpu_count']} CPUs; 1-min load average {load[0]:.1f} at the start, {load[1]:.1f} at the end "
          "(other jobs share the machine: CPU s / threads far below wall s means this run waited for the cores).")
    print(f"{s['candidates']} candidates of {s['frames']} frames ({s['clip_seconds']:g} s), {s['crops']} crops of "
          f"{s['crop_seconds']:g} s; Griffin-Lim {s['griffin_lim_iters']} iterations. Rows marked * are extrapolated.")
    print("\n| path | component | measured at | s per prompt | CPU s | share |\n| --- | --- | --- | --- | --- | --- |")
    for p in out["paths"]:
        name = f"{p['vocoder']} + {p['rerank']}"
        for r in p["components"]:
            print(f"| {name} | {r['component']}{' *' if r['extrapolated'] else ''} | {r['measured_at']} | "
                  f"{r['seconds']:.2f} | {r['cpu_seconds']:.2f} | {100 * r['share']:.1f} % |")
        extrapolated = any(r["extrapolated"] for r in p["components"])
        print(f"| {name} | **sum of the components**{' *' if extrapolated else ''} | | **{p['total_s']:.2f}** | "
              f"{p['total_cpu_s']:.2f} | 100 % |")
        pc = p["pick_clip"]
        print(f"| {name} | `pick_clip` as the generate stage calls it | vocoder at {pc['frames']} frames | "
              f"{pc['seconds']:.2f} | {pc['cpu_seconds']:.2f} | |")
        swap = (f", its {pc['frames']}-frame vocoder time swapped for the {s['frames']}-frame one"
                if pc["vocoder_swapped"] else "")
        print(f"| {name} | **generator + `pick_clip`**{' *' if pc['extrapolated'] else ''} | "
              f"{s['frames']} frames{swap} | "
              f"**{pc['per_prompt_s']:.2f}** | | |")
    for p in out["paths"]:
        if len(p["vocoder_lengths"]) > 1:
            first = p["vocoder_lengths"][0]
            print(f"\nLinearity of the {p['vocoder']} vocoder in frames ({first['candidates']} candidates per call; "
                  "ratios are per second of audio, relative to the shortest length, by wall and by CPU time):\n"
                  "| frames | audio s per candidate | s per call | CPU s | s per second of audio | wall ratio "
                  "| CPU ratio |\n"
                  "| --- | --- | --- | --- | --- | --- | --- |")
            for v in p["vocoder_lengths"]:
                print(f"| {v['frames']} | {v['frames'] * s['clip_seconds'] / s['frames']:g} | {v['seconds']:.2f} | "
                      f"{v['cpu_seconds']:.2f} | {v['s_per_audio_s']:.3f} | "
                      f"{v['s_per_audio_s'] / first['s_per_audio_s']:.2f} | "
                      f"{v['cpu_s_per_audio_s'] / first['cpu_s_per_audio_s']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=10)
    parser.add_argument("--crops", type=int, default=10)
    parser.add_argument("--frames", type=int, default=1024, help="mel frames per candidate (1024 = 10.24 s)")
    parser.add_argument("--vocoder-frames", type=lambda v: [int(x) for x in v.split(",")], default=None,
                        help="comma-separated lengths to run the n-candidate vocoder at (default: --frames); "
                             "below --frames the per-prompt time is extrapolated linearly from the longest")
    parser.add_argument("--vocoder-candidates", type=int, default=0,
                        help="candidates for those vocoder runs (default: --candidates); fewer are scaled linearly")
    parser.add_argument("--vocoder", default="hifigan", choices=["hifigan", "griffin_lim"])
    parser.add_argument("--rerank", default="clap", choices=["clap", "discriminator"])
    parser.add_argument("--offline", action="store_true", help="also time the offline demo path "
                                                               "(Griffin-Lim + discriminator) in the same run")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per component; the best is kept")
    parser.add_argument("--tiny", action="store_true", help="tiny models (config/tiny.yaml, tiny CLAP and HiFi-GAN)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    args = parser.parse_args()
    out = run_benchmark(args)
    if args.json:
        print(json.dumps(out))
    else:
        print_table(out)


if __name__ == "__main__":
    main()
