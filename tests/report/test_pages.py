"""The listening report's pages on tiny synthetic inputs: escaping, embedded media, honest labels, clear errors."""

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import REPO, TINY_OVERLAY
from scenesynth.cli import main
from scenesynth.data.manifest import write_manifest
from scenesynth.report.pages import ReportInputError, build_report_assets, metrics_page
from scenesynth.workflow.rules import prompt_labels
from scenesynth.utils.atomic import write_json

EVIL = '<script>alert("x")</script> dogs & {cats} bark'


def fad_record(**changes) -> dict:
    record = {"fad_mean": 12.5, "fad_std": 0.25, "fad_per_seed": {"0": 12.3, "1": 12.7},
              "fad_per_category": {"rain": {"mean": 20.0, "std": 1.0}, "<b>street</b>": {"mean": 9.0, "std": 0.5}},
              "embedding": "logmel_stats", "stand_in": True, "comparable_to_paper": False, "n_prompts": 2,
              "n_seeds": 2, "baseline_fad": 61.276, "paper_fad": 42.075, "skipped_references": [],
              "stand_ins": {"data.source": "demo", "evaluate.fad_embedding": "logmel_stats",
                            "generate.vocoder": "griffin_lim", "text.encoder": "hash", "overlay": "config/demo.yaml"}}
    record.update(changes)
    return record


@pytest.fixture
def inputs(tmp_path, tiny_params):
    """A manifest of two dev prompts with references, their generated clips, and metrics JSONs."""
    rng = np.random.default_rng(0)
    rows = []
    for i, caption in enumerate([EVIL, "a bird sings in the park"]):
        key = f"dev-{i:03d}"
        ref = tmp_path / "raw" / "audio" / f"{key}.wav"
        ref.parent.mkdir(parents=True, exist_ok=True)
        sf.write(ref, 0.1 * rng.standard_normal(16000).astype(np.float32), 32000)
        rows.append({"key": key, "path": str(ref), "caption": caption, "source": "demo", "duration": 0.5,
                     "sample_rate": 32000, "split": "dev", "foreground": "dog", "background": "rain"})
        for seed in tiny_params["generate"]["seeds"]:
            gen = tmp_path / "gen" / f"seed{seed}" / f"{key}.wav"
            gen.parent.mkdir(parents=True, exist_ok=True)
            sf.write(gen, 0.2 * rng.standard_normal(16000).astype(np.float32), 32000, subtype="PCM_16")
    write_manifest(pd.DataFrame(rows), tmp_path / "raw" / "manifest.parquet")
    write_json(tmp_path / "metrics" / "fad.json", fad_record())
    write_json(tmp_path / "metrics" / "conditioning.json", {"skipped": "no labels"})
    write_json(tmp_path / "metrics" / "clap_score.json", {"computed": False, "reason": "no CLAP <here>"})
    pd.DataFrame({"rank": [1, 2], "prompt_id": ["dev-001", "dev-000"], "caption": ["a bird sings in the park", EVIL],
                  "background": ["rain", "rain"], "own_reference_distance": [3.5, 1.25],
                  "reference_mean_distance": [2.0, 1.0], "clap_score": [None, None]}).to_csv(
        tmp_path / "metrics" / "per_prompt.csv", index=False)
    write_json(tmp_path / "gen" / "generation.json", {"vocoder": "griffin_lim", "rerank": "discriminator",
                                                      "text_encoder": "hash", "n_candidates": 2, "model_step": 4})
    return {"generated": tmp_path / "gen", "manifest": tmp_path / "raw" / "manifest.parquet",
            "metrics_dir": tmp_path / "metrics", "out_dir": tmp_path / "report"}


def data_uri(page: str, element_id: str) -> bytes:
    src = re.search(rf'id="{element_id}"[^>]*src="data:[^;]+;base64,([^"]+)"', page).group(1)
    return base64.b64decode(src)


def test_prompt_pages_embed_the_clip_and_mel_and_escape_captions(inputs, tiny_params):
    captions = build_report_assets(tiny_params, **inputs)
    assert captions == {"dev-000": EVIL, "dev-001": "a bird sings in the park"}
    page = (inputs["out_dir"] / "prompts" / "dev-000.html").read_text()
    assert "<script" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; dogs &amp;" in page
    first_seed = tiny_params["generate"]["seeds"][0]
    assert data_uri(page, "generated") == (inputs["generated"] / f"seed{first_seed}" / "dev-000.wav").read_bytes()
    assert data_uri(page, "mel").startswith(b"\x89PNG\r\n\x1a\n")
    assert "<th>background</th><td>rain</td>" in page
    assert json.loads((inputs["out_dir"] / "prompts.json").read_text()) == captions
    assert prompt_labels(inputs["out_dir"] / "prompts.json", "dev-000") == {
        "rank": "002", "prompt": "dev-000", "caption": '<script>alert("x")</script> dogs & (cats) bark'}
    assert "<th>rank (1 = worst)</th><td>2 of 2</td>" in page
    assert "<th>distance to its own reference</th><td>1.250 (mean over seeds)</td>" in page
    metrics = (inputs["out_dir"] / "metrics.html").read_text()
    table = metrics[metrics.index('id="per-prompt"'):]
    assert table.index("dev-001") < table.index("dev-000")  # worst first
    assert '<p id="clap-score">Not computed: no CLAP &lt;here&gt;</p>' in metrics


def test_a_prompt_without_reference_audio_shows_the_clip_alone(inputs, tiny_params):
    table = pd.read_parquet(inputs["manifest"])
    table["path"] = ""  # the published DCASE dev set: embeddings, no audio
    table.to_parquet(inputs["manifest"])
    build_report_assets(tiny_params, **inputs)
    page = (inputs["out_dir"] / "prompts" / "dev-000.html").read_text()
    assert "No reference audio: the DCASE dev set publishes reference embeddings" in page
    assert "reference file" not in page


def test_pages_of_prompts_no_longer_in_the_dev_set_are_removed(inputs, tiny_params):
    stale = inputs["out_dir"] / "prompts" / "old-prompt.html"
    stale.parent.mkdir(parents=True)
    stale.write_text("old")
    build_report_assets(tiny_params, **inputs)
    assert sorted(p.name for p in stale.parent.iterdir()) == ["dev-000.html", "dev-001.html"]


def test_a_missing_reference_is_an_error_naming_the_file(inputs, tiny_params):
    reference = inputs["manifest"].parent / "audio" / "dev-001.wav"
    reference.unlink()
    with pytest.raises(ReportInputError, match=re.escape(str(reference)) + ".*dev-001.*not found"):
        build_report_assets(tiny_params, **inputs)


def test_a_reference_evaluate_skipped_is_noted_not_fatal(inputs, tiny_params):
    (inputs["manifest"].parent / "audio" / "dev-001.wav").write_bytes(b"")
    write_json(inputs["metrics_dir"] / "fad.json", fad_record(
        skipped_references=[{"key": "dev-001", "path": "x", "reason": "empty file (0 bytes)"}]))
    build_report_assets(tiny_params, **inputs)
    page = (inputs["out_dir"] / "prompts" / "dev-001.html").read_text()
    assert "Reference clip left out (unreadable: empty file (0 bytes))" in page
    assert "1 unreadable reference clip(s) left out of FAD: dev-001" in (inputs["out_dir"] / "metrics.html").read_text()


def test_a_missing_generated_clip_is_an_error_naming_the_file(inputs, tiny_params):
    clip = inputs["generated"] / f"seed{tiny_params['generate']['seeds'][0]}" / "dev-000.wav"
    clip.unlink()
    with pytest.raises(ReportInputError, match=re.escape(str(clip))):
        build_report_assets(tiny_params, **inputs)


def test_metrics_page_says_the_stand_in_fad_is_not_comparable():
    page = metrics_page(fad_record(), {"skipped": "no labels"}, {"rerank": "discriminator"})
    verdict = re.search(r'id="verdict">([^<]+)<', page).group(1)
    assert verdict.startswith("NOT comparable")
    assert "logmel_stats, an offline stand-in for PANNs Wavegram-Logmel" in verdict
    assert "synthetic demo data" in verdict
    assert "12.500 &plusmn; 0.250" in page and "42.075" in page and "61.276" in page
    assert "&lt;b&gt;street&lt;/b&gt;" in page and "<b>" not in page
    assert "<td>logmel_stats</td><td>yes</td>" in page and "Skipped: no labels" in page


def test_metrics_page_of_a_custom_folder_says_why_it_is_not_comparable():
    fad = fad_record(embedding="panns_wavegram_logmel", stand_in=False, comparable_to_paper=False,
                     stand_ins={"data.source": "custom"})
    verdict = re.search(r'id="verdict">([^<]+)<', metrics_page(fad, {"skipped": "no labels"}, {})).group(1)
    assert verdict.startswith("NOT comparable") and "clips of your own folder (data.source: custom)" in verdict


def test_metrics_page_of_the_papers_setup_says_comparable():
    fad = fad_record(embedding="panns_wavegram_logmel", stand_in=False, comparable_to_paper=True,
                     stand_ins={"data.source": "audiocaps_wavcaps"})
    cond = {"generated": {"fg_accuracy": 0.5, "fg_chance": 0.1, "bg_accuracy": 0.6, "bg_chance": 0.2},
            "ceiling": {"fg_accuracy": 0.9, "bg_accuracy": 0.8}, "generation_seed": 0}
    page = metrics_page(fad, cond, {})
    assert re.search(r'id="verdict">Comparable with the paper', page)
    assert "<td>panns_wavegram_logmel</td><td>no</td>" in page
    assert '<td>mel (generator)</td><td>foreground</td><td class="num">0.500</td><td class="num">0.100</td><td class="num">0.900</td>' in page


def test_cli_reports_a_missing_metrics_file_by_name(inputs, capsys):
    (inputs["metrics_dir"] / "fad.json").unlink()
    code = main(["report-assets", "--params", str(REPO / "params.yaml"), "--overlay", str(TINY_OVERLAY),
                 "--generated", str(inputs["generated"]),
                 "--manifest", str(inputs["manifest"]), "--metrics", str(inputs["metrics_dir"]),
                 "--out", str(inputs["out_dir"])])
    assert code == 1
    assert f"{inputs['metrics_dir'] / 'fad.json'}: not found" in capsys.readouterr().err


def test_metrics_page_draws_the_curves_of_training_and_the_fad_interval():
    history = [{"step": s, "fad_mean": v, "fad_ci_low": v - 1, "fad_ci_high": v + 1, "cond_fg_accuracy": a}
               for s, v, a in ((100, 30.0, 0.2), (200, 20.0, 0.5), (300, 25.0, 0.4))]
    train = {"eval_history": history, "best_step": 200, "best_value": 20.0, "eval_every": 100, "exported": "last",
             "select_by": {"metric": "fad_mean", "mode": "min"}}
    boot = {"std": 1.5, "interval": [9.56, 15.44], "confidence": 0.95, "n_resamples": 1000, "replicate_shift": 3.0}
    page = metrics_page(fad_record(fad_bootstrap=boot), {"skipped": "no labels"}, {}, train=train)
    png = base64.b64decode(re.search(r'id="curves"[^>]*src="data:image/png;base64,([^"]+)"', page).group(1))
    assert png.startswith(b"\x89PNG")
    best = re.search(r'id="best">([^<]+)<', page).group(1)
    assert "fad_mean (min): 200 (20)" in best and "last evaluated step 300 (25)" in best
    assert "9.560 to 15.440" in re.search(r'id="fad-interval">([^<]+)<', page).group(1)
    assert "No evaluation during training" in metrics_page(fad_record(), {"skipped": "no labels"}, {})
    assert "training captions" not in best
    on_train = {**train, "select_by": {"metric": "cond_fg_accuracy", "mode": "max", "prompts": "train", "n_prompts": 120}}
    best = re.search(r'id="best">([^<]+)<', metrics_page(fad_record(), {"skipped": "no labels"}, {}, train=on_train))
    assert "read 120 training captions, not the dev prompts" in best.group(1)
def test_metrics_page_gives_each_kind_s_accuracy_in_both_readings_the_peak_excess_and_the_fad_floor():
    fad = fad_record(real_floor={"fd_mean": 100.0, "fd_std": 5.0, "n_clips": 60, "draws": 8}, fad_over_floor=3.5)
    reading = {"fg_accuracy": 0.5, "fg_chance": 0.5, "bg_accuracy": 1.0, "bg_chance": 0.5,
               "fg_per_kind": {"clock": 0.0, "engine": 1.0}, "fg_worst_kind": "clock",
               "fg_confusion": {"clock": {"chirps": 3, "clock": 1}, "engine": {"engine": 4}}}
    cond = {"generated": reading, "ceiling": {"fg_accuracy": 1.0, "fg_per_kind": {"clock": 1.0, "engine": 1.0}},
            "audio": {"generated": {**reading, "fg_per_kind": {"clock": 0.25, "engine": 0.75}}, "ceiling": {}},
            "peaks": {"excess": 1.234}}
    page = metrics_page(fad, cond, {})
    assert "(peak excess, nats; 0 is real-like): 1.234" in page
    assert "(peak excess, nats; 0 is real-like): n/a" in metrics_page(fad, {**cond, "peaks": {}}, {})
    kinds = re.search(r'<table id="conditioning-fg-kinds">(.*?)</table>', page, re.S).group(1)
    assert ('<tr><td>clock</td><td class="num">0.000 (worst)</td><td class="num">1.000</td>'
            '<td class="num">0.250 (worst)</td><td class="num">n/a</td><td>chirps (3 of 4)</td></tr>') in kinds
    assert "<td>engine</td>" in kinds and kinds.endswith("<td>-</td></tr>\n")
    assert "conditioning-bg-kinds" not in page  # no per-kind result for the background: no empty table
    floor = re.search(r'id="fd-floor">([^<]+)<', page).group(1)
    assert "100.000 &plusmn; 5.000" in floor and "this run is 3.50 x its floor" in floor
