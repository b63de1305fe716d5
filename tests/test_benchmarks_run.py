"""The benchmark scripts run (their numbers live in docs/benchmarks.md, not in tests)."""

import json
import subprocess
import sys

import numpy as np

from conftest import REPO, venv_env


def test_train_step_benchmark_compares_implementations_on_a_tiny_model():
    done = subprocess.run([sys.executable, str(REPO / "benchmarks/train_step.py"), "--overlay",
                           str(REPO / "config/tiny.yaml"), "--steps", "1", "--attention", "tfsca,full", "--json"],
                          capture_output=True, text=True, env=venv_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(done.stdout)
    assert [r["attention"] for r in rows] == ["tfsca", "full"]
    assert all(r["s_per_step"] > 0 and r["peak_bytes"] > 0 and r["params_g"] > 0 for r in rows)
    assert (rows[0]["n_mels"], rows[0]["n_frames"]) == (32, 64)


def test_data_stage_benchmark_times_project_peer_and_loader_on_tiny_clips():
    from scenesynth.config import load_params

    done = subprocess.run([sys.executable, str(REPO / "benchmarks/data_stage.py"), "--clips", "3", "--seconds", "1",
                           "--repeats", "1", "--qualities", "VHQ", "--shard-size", "2", "--loader-workers", "0",
                           "--loader-batches", "1", "--shuffle-buffer", "4", "--json"],
                          capture_output=True, text=True, env=venv_env(), timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert set(result["paths"]) == {"project stages VHQ flac", "project stages VHQ wav", "project fused VHQ",
                                    "peer librosa"}
    assert result["resample_format"] == "wav"  # params.yaml's: the headline is the pipeline as configured
    assert result["clips_per_s_per_core"] == result["paths"]["project stages VHQ wav"]["clips_per_s"] > 0
    assert result["peer_clips_per_s_per_core"] == result["paths"]["peer librosa"]["clips_per_s"] > 0
    assert result["ratio_to_peer"] == result["clips_per_s_per_core"] / result["peer_clips_per_s_per_core"]
    assert result["loader_samples_per_s"]["0"] > 0
    assert all(ms > 0 for ms in result["ms_per_clip"].values())
    train = load_params(REPO / "params.yaml")["train"]
    assert result["samples_per_step"] == train["batch_size"] * train["d_steps"]
    assert result["required_samples_per_s"]["0.5"] == result["samples_per_step"] / 0.5


def test_generate_benchmark_times_both_paths_per_prompt_on_tiny_models():
    done = subprocess.run([sys.executable, str(REPO / "benchmarks/generate.py"), "--tiny", "--frames", "16",
                           "--candidates", "2", "--crops", "2", "--vocoder-frames", "8,16", "--offline", "--json"],
                          capture_output=True, text=True, env=venv_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    settings = result["settings"]
    assert (settings["candidates"], settings["crops"], settings["frames"], settings["tiny"]) == (2, 2, 16, True)
    assert result["torch_threads"] >= 1
    assert [(p["vocoder"], p["rerank"]) for p in result["paths"]] == [("hifigan", "clap"),
                                                                      ("griffin_lim", "discriminator")]
    clap, offline = result["paths"]
    for path in result["paths"]:
        assert all(r["seconds"] > 0 and r["cpu_seconds"] >= 0 for r in path["components"])
        assert abs(sum(r["share"] for r in path["components"]) - 1) < 1e-9
        assert path["total_s"] == sum(r["seconds"] for r in path["components"])
        assert path["pick_clip"]["seconds"] > 0 and path["pick_clip"]["per_prompt_s"] > 0
        assert path["clip_samples"] == round(settings["crop_seconds"] * settings["out_rate"])
    assert any("CLAP" in r["component"] for r in clap["components"])
    assert any("discriminator" in r["component"] for r in offline["components"])
    # Both lengths measured, the longest is the full one: nothing is extrapolated, pick_clip ran at 8 frames.
    assert [v["frames"] for v in clap["vocoder_lengths"]] == [8, 16]
    assert not any(r["extrapolated"] for r in clap["components"])
    assert clap["pick_clip"]["frames"] == 8 and clap["pick_clip"]["vocoder_swapped"]
    assert offline["vocoder_lengths"] == [] and offline["pick_clip"]["frames"] == 16


def test_resampler_benchmark_compares_soxr_with_the_organisers_kaiser_sinc():
    done = subprocess.run([sys.executable, str(REPO / "benchmarks/resampler_fad.py"), "--clips", "4", "--seconds", "1",
                           "--rates", "48000", "--width-divisor", "16", "--json"],
                          capture_output=True, text=True, env=venv_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    row = json.loads(done.stdout)["rows"][0]
    assert row["lengths"] == [[32_000, 32_000]] and row["snr_db_median"] > 40
    assert row["fad_soxr_vs_kaiser_same_clips"] < row["fad_half_vs_half_same_resampler"]


def test_the_numpy_kaiser_sinc_keeps_a_tone_and_the_length_rule():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from resampler_fad import kaiser_resample

    t = np.arange(48_000) / 48_000
    out = kaiser_resample(np.sin(2 * np.pi * 1000 * t).astype(np.float32), 48_000, 32_000)
    expected = np.sin(2 * np.pi * 1000 * np.arange(32_000) / 32_000)
    assert out.shape == (32_000,) and np.max(np.abs(out[500:-500] - expected[500:-500])) < 1e-3
    assert kaiser_resample(np.zeros(1001, np.float32), 44_100, 32_000).shape == (727,)  # ceil(1001 * 320 / 441)
    high = np.sin(2 * np.pi * 15_800 * t).astype(np.float32)  # above the cutoff, 0.9476 x 16 kHz
    assert np.max(np.abs(kaiser_resample(high, 48_000, 32_000)[500:-500])) < 0.05


def test_synthesize_benchmark_times_each_size_per_prompt_side_by_side():
    done = subprocess.run([sys.executable, str(REPO / "benchmarks/synthesize.py"), "--sizes", "tiny,demo",
                           "--prompts", "1", "--json"], capture_output=True, text=True, env=venv_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    tiny, demo = result["sizes"]
    assert (tiny["size"], tiny["n_mels"], demo["size"], demo["n_mels"], demo["n_frames"]) == ("tiny", 32, "demo", 16,
                                                                                               64)
    for size, encoder in ((tiny, "hash"), (demo, "hash_content")):  # each overlay's offline text stand-in
        assert (size["text_encoder"], size["vocoder"], size["rerank"]) == (encoder, "griffin_lim", "discriminator")
        assert len(size["per_prompt"]) == 1 and size["per_prompt"][0]["seconds"] > 0
        assert size["mean_s"] == size["min_s"] == size["per_prompt"][0]["seconds"] and size["load_s"] > 0
        assert size["params_g"] > 0 and size["out_samples"] == round(2.56 * 32000 if size is demo else 0.5 * 32000)
    assert demo["params_g"] > tiny["params_g"]


def test_conditioning_benchmark_trains_each_variant_and_prints_the_rows():
    done = subprocess.run([sys.executable, str(REPO / "benchmarks/conditioning.py"), "--overlay",
                           str(REPO / "config/tiny.yaml"), "--variants",
                           "full,no_attention,noise_blocks,mode_seeking,mbstd", "--seeds", "1234", "--steps", "2",
                           "--json"],
                          capture_output=True, text=True, env=venv_env(), timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(done.stdout)
    assert [r["variant"] for r in rows] == ["full", "no_attention", "noise_blocks", "mode_seeking", "mbstd"]
    for row in rows:
        assert {"variant", "seed", "fg_accuracy", "bg_accuracy", "fad"} <= set(row) and row["seed"] == 1234
        assert 0 <= row["fg_accuracy"] <= 1 and 0 <= row["bg_accuracy"] <= 1 and row["fad"] > 0
        assert row["steps"] == 2 and row["fg_ceiling"] >= row["fg_chance"]
        assert row["diversity"] >= 0 and row["fad_over_floor"] > 0 and row["fg_worst_kind"] in row["fg_per_kind"]
        assert np.isfinite(row["peak_excess"])
    fads = [r["fad"] for r in rows]
    assert len(set(fads)) == len(fads)  # each variant is another model (or another objective)


def test_conditioning_benchmark_audio_reading_adds_the_vocoded_score_beside_its_ceiling():
    done = subprocess.run([sys.executable, str(REPO / "benchmarks/conditioning.py"), "--overlay",
                           str(REPO / "config/tiny.yaml"), "--variants", "mode_seeking_capped", "--seeds", "1",
                           "--steps", "2", "--audio-reading", "--json"],
                          capture_output=True, text=True, env=venv_env(), timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    (row,) = json.loads(done.stdout)
    assert 0 <= row["audio_fg_accuracy"] <= 1 and 0 <= row["audio_bg_accuracy"] <= 1
    assert row["audio_fg_ceiling"] >= row["fg_chance"] and set(row["audio_fg_per_kind"]) == set(row["fg_per_kind"])
    assert 0 <= row["fg_accuracy"] <= 1 and row["diversity"] >= 0  # the mel reading, taken from evaluate's


def test_conditioning_benchmark_heard_as_reads_every_evaluated_step_and_prints_what_each_kind_became(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks/conditioning.py"), "--overlay",
                           str(REPO / "config/tiny.yaml"), "--variants", "full", "--seeds", "1", "--steps", "2",
                           "--heard-as", "--json"],
                          capture_output=True, text=True, env=venv_env(), timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    (row,) = json.loads(done.stdout)
    (step,) = row["heard_as"]  # tiny.yaml evaluates every 2 steps: one evaluation in 2 steps
    assert int(step) == 2 and set(row["heard_as"][step]) == set(row["fg_per_kind"])
    for kind, heard in row["heard_as"][step].items():  # every dev clip of the kind is heard as something
        assert sum(heard.values()) > 0 and set(heard) <= set(row["fg_per_kind"])
    (tmp_path / "run.json").write_text(done.stdout)
    merged = subprocess.run([sys.executable, str(REPO / "benchmarks/conditioning.py"), "--from-json",
                             str(tmp_path / "run.json")], capture_output=True, text=True, env=venv_env(), timeout=900)
    assert merged.returncode == 0 and "full seed 1: what each foreground kind is heard as" in merged.stdout


def test_gpu_benchmark_smoke_runs_every_row_on_cpu_and_prints_json_rows(tmp_path):
    """`benchmarks/gpu.py --smoke`: the script prepared for a lent GPU runs every row at tiny sizes on CPU."""
    rows_file = tmp_path / "rows.jsonl"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks/gpu.py"), "--smoke", "--json",
                           "--rows-file", str(rows_file)], capture_output=True, text=True, env=venv_env(), timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line for line in rows_file.read_text().splitlines()]  # written as each row finished
    assert [(r["row"], r.get("precision"), r.get("compile")) for r in rows] == [
        ("train", "fp32", False), ("train", "bf16", False), ("generate", "fp32", False),
        ("train", "bf16", True), ("train", "fp32", True), ("ddp", "bf16", False)]
    for r in rows:
        assert "error" not in r and "skipped" not in r, r
        assert r["samples_per_s"] > 0 and r["peak_memory_bytes"] > 0
    train = [r for r in rows if r["row"] == "train"]
    assert all(r["flops_per_step"] > 0 and r["size"] == "32 x 64" for r in train)
    compiled = [r for r in train if r["compile"]]
    assert all(r["loss_rel_diff_vs_eager"] < 1e-3 for r in compiled)  # compiling does not change the losses
    assert rows[-1]["processes"] == 2


def test_conditioning_benchmark_merges_saved_runs_and_compares_each_variant_with_the_reference(tmp_path):
    """--from-json: no training; the table gives the worst seed and variant - reference +- its standard error."""
    def run(variant, seed, fg, steps=10):
        return {"variant": variant, "seed": seed, "fg_accuracy": fg, "bg_accuracy": 0.9, "diversity": 0.3, "fad": 1.0,
                "fad_over_floor": 2.0, "seconds": 1.0, "fg_per_kind": {"a": fg, "b": 1.0}, "fg_chance": 0.5,
                "bg_chance": 0.5, "fg_ceiling": 1.0, "bg_ceiling": 1.0, "steps": steps}
    (tmp_path / "a.json").write_text(json.dumps([{**run("full", 1, 0.6), "peak_excess": 0.5},
                                                 {**run("full", 2, 0.8), "peak_excess": 1.5}]))
    (tmp_path / "b.json").write_text(json.dumps([run("hinge_only", 1, 0.7, 20), run("hinge_only", 2, 0.9, 20),
                                                 run("hinge_only", 3, 0.8, 20)]))
    done = subprocess.run([sys.executable, str(REPO / "benchmarks/conditioning.py"), "--from-json",
                           str(tmp_path / "a.json"), str(tmp_path / "b.json")],
                          capture_output=True, text=True, env=venv_env(), timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert "| full | 2 | 0.700 +- 0.141 | 0.600 |" in done.stdout  # mean +- std, then the worst seed
    full_row = next(line for line in lines if line.startswith("| full | 2 |"))
    hinge_row = next(line for line in lines if line.startswith("| hinge_only | 3 |"))
    assert "| 1.000 +- 0.707 |" in full_row and "| 0.300 +- 0.000 | - |" in hinge_row  # peak excess; none saved: -
    # (0.8 - 0.7) +- sqrt(0.01 / 3 + 0.02 / 2): the difference, its standard error, and their ratio; then seed by
    # seed over the two seeds both ran: 0.1 on each, no spread
    assert "| hinge_only | 3 / 2 | +0.100 +- 0.115 | 0.9 | +0.000 +- 0.000 | +0.000 +- 0.000 | +0.100 +- 0.000 (2) |" in lines
    assert lines[-1].endswith("steps per run: full 10, hinge_only 20")  # variants that train their own step count
    again = subprocess.run([sys.executable, str(REPO / "benchmarks/conditioning.py"), "--from-json",
                            str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--reference", "hinge_only"],
                           capture_output=True, text=True, env=venv_env(), timeout=120)
    assert "| full | 2 / 3 | -0.100 +- 0.115 | 0.9 |" in again.stdout


def test_the_variants_measured_on_the_earlier_demo_still_run_on_it_and_full_is_the_demo_as_it_is():
    """docs/benchmarks.md's rows must repeat: a variant measured before the demo took up mode seeking, D's onset
    channel and the caption check runs on the demo of then (its own changes on top), one measured before G's ceiling
    on the demo without it, `full` on today's."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from conditioning import with_variant

    from scenesynth.config import load_params

    demo = load_params(REPO / "params.yaml", REPO / "config/demo.yaml")

    def settings(p: dict) -> tuple:
        return (p["train"]["steps"], p["model"]["d_time_delta"], p["loss"]["mode_seeking"],
                p["loss"]["mode_seeking_rows"], p["loss"]["mismatch"], p["model"]["g_peak_cap"])

    assert settings(with_variant(demo, "full", 1, None)) == settings(demo) == (1000, True, 0.25, 4, 1.0, True)
    for variant in ("plain_hinge", "hinge_only", "export_best_train_mean"):
        assert settings(with_variant(demo, variant, 1, None)) == (1200, False, 0.0, 8, 0.0, False), variant
    # a variant's own changes win over the earlier demo's
    assert settings(with_variant(demo, "mode_seeking_0.2_rows_4_d_time_delta_1000", 1, None)) == (1000, True, 0.2, 4, 0.0,
                                                                                                 False)
    # the demo before G's ceiling, and what was measured on it, run without it; the cap on it is today's demo
    for variant in ("demo_uncapped", "d_peak", "demo_contrastive"):
        assert settings(with_variant(demo, variant, 1, None)) == (1000, True, 0.25, 4, 1.0, False), variant
    assert with_variant(demo, "g_peak_norm", 1, None)["model"]["g_peak_cap"] is False
    assert with_variant(demo, "g_peak_cap", 1, None) == with_variant(demo, "full", 1, None)
    # the paper's claim on each demo: its four contrastive losses on, the ceiling as that demo had it
    for variant, capped in (("contrastive_capped", True), ("demo_contrastive", False)):
        params = with_variant(demo, variant, 1, None)
        assert [params["loss"][name] for name in ("sc", "f2r", "g2s", "l2w")] == [1.0] * 4, variant
        assert settings(params) == (1000, True, 0.25, 4, 1.0, capped), variant
    assert with_variant(demo, "steps_1500", 1, None)["train"]["steps"] == 1500
    assert with_variant(demo, "plain_hinge", 1, 7)["train"]["steps"] == 7  # --steps still overrides


def test_every_conditioning_variant_of_the_demo_is_valid_params_and_builds_its_models():
    """A variant that the schema refuses or whose G / D cannot be built would cost a whole benchmark run to find."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from conditioning import VARIANTS, with_variant

    from scenesynth.config import load_params, validate_params
    from scenesynth.models import build_models

    demo = load_params(REPO / "params.yaml", REPO / "config/demo.yaml")
    for variant in VARIANTS:
        params = with_variant(demo, variant, seed=1, steps=10)
        validate_params(params, variant)
        audio = params["audio"]
        generator, discriminator = build_models(params["model"], audio["n_mels"], audio["n_frames"], 32, 32)
        assert generator.levels == discriminator.levels >= 1, variant


DAG_LOG = """Building DAG of jobs...
[Tue Dec  8 01:53:37 2026]
localrule acquire:
    output: data/raw/manifest.parquet
[Tue Dec  8 01:53:46 2026]
Finished jobid: 6 (Rule: acquire)
[Tue Dec  8 01:53:53 2026]
localrule train:
[Tue Dec  8 01:53:53 2026]
localrule resynth_reference:
[Tue Dec  8 01:54:19 2026]
Finished jobid: 11 (Rule: resynth_reference)
[Tue Dec  8 01:57:36 2026]
Finished jobid: 3 (Rule: train)
[Tue Dec  8 01:57:36 2026]
localrule all:
[Tue Dec  8 01:57:36 2026]
Finished jobid: 0 (Rule: all)
"""


def test_demo_dag_benchmark_reads_each_rules_span_from_snakemakes_log(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    from demo_dag import rule_spans

    spans = rule_spans(DAG_LOG)
    assert spans == {"dag_s": 239.0, "rules": {"acquire": 9.0, "train": 223.0, "resynth_reference": 26.0}}
    (tmp_path / "old.log").write_text(DAG_LOG)
    (tmp_path / "bad.log").write_text("no jobs here\n")
    out = subprocess.run([sys.executable, str(REPO / "benchmarks/demo_dag.py"), str(tmp_path / "old.log"),
                          str(tmp_path / "old.log")], capture_output=True, text=True, check=True).stdout
    assert "| **DAG** | 239 | 239 | 1.00 |" in out and "old#2" in out and "| train | 223 | 223 | 1.00 |" in out
    bad = subprocess.run([sys.executable, str(REPO / "benchmarks/demo_dag.py"), str(tmp_path / "bad.log")],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "bad.log: no Snakemake job" in bad.stderr
