"""Time per prompt of `scenesynth synthesize` (the Synthesizer), side by side at demo and paper size.

For each size a model is built at its real size with random weights (time does not depend on the
weights) and exported by the training code's own `export_model`, with the pre-trained parts it
needs written into a temporary `data/pretrained` layout (random weights, real sizes): nothing for
the demo (hash_content text encoder, Griffin-Lim, the discriminator re-ranks); at paper size a LAION-CLAP
(RoBERTa-base text tower + HTSAT-tiny, `laion/clap-htsat-unfused`'s size) as text encoder and
re-ranker, and the 48 kHz HiFi-GAN. The Synthesizer is then loaded as a user would load it and
called once per prompt (different prompts, the same seed); load time and each prompt's time are
reported, wall and CPU. Settings come from params.yaml + the size's overlay (the paper: 10
candidates vocoded and scored by CLAP, then 10 crops).

    python benchmarks/synthesize.py --json                          # demo and paper, 3 and 1 prompt(s)
    python benchmarks/synthesize.py --sizes demo --prompts 5        # the demo only
    python benchmarks/synthesize.py --sizes tiny,demo --prompts 1 --json   # smoke test (tests/)

At paper size on a CPU the HiFi-GAN on 10 x 10.24 s dominates (benchmarks/generate.py splits a
prompt into its parts); `--paper-candidates` runs fewer candidates, reported as such.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from generate import REPO, write_clap, write_hifigan
from scenesynth.config import load_params
from scenesynth.inference.hifigan import HIFIGAN_48K
from scenesynth.inference.synthesizer import Synthesizer
from scenesynth.text.cache import build_text_cache
from scenesynth.training.loop import build_state, export_model

OVERLAYS = {"tiny": "config/tiny.yaml", "demo": "config/demo.yaml", "paper": None}
PROMPTS = ("a siren wailing with traffic in the background", "birds chirping with water in the background",
           "someone knocking on a door with crowd in the background", "an idling engine with traffic in the background",
           "a ticking clock with water in the background")


def text_info(params: dict, pretrained: Path, workdir: Path) -> dict:
    """The text record a model file carries, made by the text stage's own code (CLAP: the random folder's)."""
    if params["text"]["encoder"] == "clap":
        write_clap(pretrained / "clap_rerank", tiny=False)
        (pretrained / "clap_text").symlink_to(pretrained / "clap_rerank", target_is_directory=True)
    return build_text_cache(params, [PROMPTS[0]], workdir / "text", pretrained / "clap_text")


def export_random_model(params: dict, pretrained: Path, workdir: Path) -> tuple[Path, dict]:
    """model.pt at the size of `params`, random weights, in the format `train` exports."""
    info = text_info(params, pretrained, workdir)
    state = build_state(params, info, torch.device("cpu"))
    model = workdir / "model.pt"
    export_model(state, params, info, model)
    counts = {"params_g": sum(p.numel() for p in state.generator.parameters()),
              "params_d": sum(p.numel() for p in state.discriminator.parameters())}
    return model, counts


def measure(size: str, args: argparse.Namespace) -> dict:
    overlay = OVERLAYS[size]
    params = load_params(REPO / "params.yaml", REPO / overlay if overlay else None)
    candidates = args.paper_candidates if size == "paper" and args.paper_candidates else None
    n_prompts = args.paper_prompts if size == "paper" else args.prompts
    with tempfile.TemporaryDirectory(prefix=f"bench_synth_{size}_") as tmp:
        workdir, pretrained = Path(tmp), Path(tmp) / "pretrained"
        pretrained.mkdir()
        setup = time.perf_counter()
        model, counts = export_random_model(params, pretrained, workdir)
        if params["generate"]["vocoder"] == "hifigan":
            write_hifigan(pretrained / "hifigan_48k", HIFIGAN_48K)
        setup_s = time.perf_counter() - setup
        wall, cpu = time.perf_counter(), time.process_time()
        synth = Synthesizer(model, params, device=args.device, candidates=candidates, format=args.format,
                            pretrained=pretrained)
        load = (time.perf_counter() - wall, time.process_time() - cpu)
        if args.warm_up and size != "paper":  # at paper size a warm-up would cost a whole prompt; it is ~1 % of one
            synth(PROMPTS[0][:8], seed=0)
        per_prompt = []
        for index in range(n_prompts):
            wall, cpu = time.perf_counter(), time.process_time()
            out = synth(PROMPTS[index % len(PROMPTS)], seed=0)
            per_prompt.append({"seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu})
    audio, gen = params["audio"], synth.gen_cfg
    return {"size": size, "n_mels": audio["n_mels"], "n_frames": audio["n_frames"],
            "clip_seconds": audio["n_frames"] * audio["hop_length"] / audio["sample_rate"],
            "text_encoder": params["text"]["encoder"], "vocoder": gen["vocoder"], "rerank": gen["rerank"],
            "n_candidates": gen["n_candidates"], "n_crops": gen["n_crops"], "format": synth.format,
            "griffin_lim_iters": gen["griffin_lim_iters"], "out_samples": int(out.audio.shape[1]),
            "sample_rate": out.sample_rate, **counts, "setup_s": setup_s, "load_s": load[0], "load_cpu_s": load[1],
            "per_prompt": per_prompt, "mean_s": sum(p["seconds"] for p in per_prompt) / len(per_prompt),
            "min_s": min(p["seconds"] for p in per_prompt),
            "mean_cpu_s": sum(p["cpu_seconds"] for p in per_prompt) / len(per_prompt)}


def print_table(out: dict) -> None:
    print(f"`synthesize` per prompt, random weights; device {out['device']}, torch {out['torch_version']}, "
          f"{out['torch_threads']} torch threads, {out['cpu_count']} CPUs, 1-min load average "
          f"{out['load_average_1min'][0]:.1f} at the start, {out['load_average_1min'][1]:.1f} at the end.\n")
    print("| size | mels | text encoder | vocoder | re-ranking | candidates | clip | load s | prompts | "
          "s per prompt (mean) | min | CPU s per prompt |\n" + "| --- " * 12 + "|")
    for r in out["sizes"]:
        print(f"| {r['size']} | {r['n_mels']} x {r['n_frames']} | {r['text_encoder']} | {r['vocoder']} | "
              f"{r['rerank']} | {r['n_candidates']} | {r['out_samples'] / r['sample_rate']:g} s at "
              f"{r['sample_rate']} Hz | {r['load_s']:.1f} | {len(r['per_prompt'])} | **{r['mean_s']:.2f}** | "
              f"{r['min_s']:.2f} | {r['mean_cpu_s']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="demo,paper", help="comma-separated: tiny, demo, paper")
    parser.add_argument("--prompts", type=int, default=3, help="prompts timed at tiny and demo size")
    parser.add_argument("--paper-prompts", type=int, default=1, help="prompts timed at paper size")
    parser.add_argument("--paper-candidates", type=int, default=0, help="candidates at paper size (0: params')")
    parser.add_argument("--format", default=None, choices=["challenge", "full"], help="default: synthesize.format")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--warm-up", action="store_true", help="one untimed prompt first (not at paper size)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = sorted(set(sizes) - set(OVERLAYS))
    if unknown:
        raise SystemExit(f"unknown size(s) {unknown}: use {', '.join(OVERLAYS)}")
    load_before = os.getloadavg()[0]
    with torch.no_grad():
        results = [measure(size, args) for size in sizes]
    out = {"device": args.device, "torch_version": torch.__version__, "torch_threads": torch.get_num_threads(),
           "cpu_count": os.cpu_count(), "load_average_1min": [load_before, os.getloadavg()[0]], "sizes": results}
    if args.json:
        print(json.dumps(out))
    else:
        print_table(out)


if __name__ == "__main__":
    main()
