"""Evaluation during training (training/periodic_eval.py) on the tiny config: same weights with and
without it, eval_<metric> in MLflow at the step, best.pt by train.select_by, kept across a resume."""

import json

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import with_overrides
from scenesynth.data.dev_set import build_dev_set
from scenesynth.data.manifest import read_manifest
from scenesynth.evaluation import conditioning_score
from scenesynth.evaluation.conditioning_score import generator_mels
from scenesynth.evaluation.evaluate import Scorer
from scenesynth.tracking import read_run_id
from scenesynth.training.loop import train
from scenesynth.training.periodic_eval import BEST_FILE, EVAL_FILE, EvalInputs, better

SELECT_FG = {"metric": "cond_fg_accuracy", "mode": "max", "prompts": "dev", "n_prompts": 120}


@pytest.fixture(scope="module")
def eval_inputs(tmp_path_factory, tiny_data, tiny_params):
    folder = tmp_path_factory.mktemp("eval")
    build_dev_set(tiny_params, folder / "dev", raw_manifest=tiny_data["raw"])
    return EvalInputs(folder / "dev" / "manifest.parquet", tiny_data["raw"], folder / "pretrained", folder / "cache")


def run(params, tiny_data, folder, evaluation=None, **kwargs):
    return train(params, tiny_data["mels"], tiny_data["text"], folder, folder / "train.json",
                 evaluation=evaluation, **kwargs)


def weights(path):
    saved = torch.load(path, map_location="cpu", weights_only=True)
    return {**{f"G.{k}": v for k, v in saved["generator"].items()},
            **{f"D.{k}": v for k, v in saved["discriminator"].items()}}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_model, tiny_data, eval_inputs):
    """The tiny run of conftest's tiny_model again, with an evaluation every 2 of its 4 steps."""
    params = with_overrides(tiny_model["params"], train={"eval_every": 2})
    folder = tmp_path_factory.mktemp("evaluated")
    return {"summary": run(params, tiny_data, folder, eval_inputs), "folder": folder, "params": params}


def test_a_run_with_evaluation_ends_with_the_same_weights_as_one_without(tiny_model, evaluated):
    assert [e["step"] for e in evaluated["summary"]["eval_history"]] == [2, 4]
    with_eval, without = weights(evaluated["folder"] / "model.pt"), weights(tiny_model["model"])
    assert with_eval.keys() == without.keys()
    for name in without:
        assert torch.equal(with_eval[name], without[name]), name
    last = torch.load(evaluated["folder"] / "checkpoints" / "last.pt", weights_only=True)
    straight = torch.load(tiny_model["run"] / "checkpoints" / "last.pt", weights_only=True)
    assert torch.equal(last["torch_rng"], straight["torch_rng"])  # training's stream went on untouched


def test_eval_metrics_are_logged_to_mlflow_at_their_training_step(evaluated):
    client = MlflowClient()
    run_id = read_run_id(evaluated["folder"])
    history = client.get_metric_history(run_id, "eval_fad_mean")
    recorded = {e["step"]: e["fad_mean"] for e in evaluated["summary"]["eval_history"]}
    assert {m.step: m.value for m in history} == pytest.approx(recorded)
    assert [m.step for m in client.get_metric_history(run_id, "eval_cond_fg_accuracy")] == [2, 4]
    assert client.get_metric_history(run_id, "eval_cond_diversity")


def test_best_checkpoint_follows_select_by_and_its_direction(evaluated):
    summary, folder = evaluated["summary"], evaluated["folder"]
    values = {e["step"]: e["fad_mean"] for e in summary["eval_history"]}
    assert values[2] != values[4]
    lowest = min(values, key=values.get)
    assert summary["best_step"] == lowest and summary["best_value"] == values[lowest]  # select_by fad_mean: min
    best = torch.load(folder / "checkpoints" / BEST_FILE, weights_only=True)
    assert best["best"]["step"] == lowest and best["step"] == lowest
    record = json.loads((folder / "checkpoints" / EVAL_FILE).read_text())
    assert record["best"]["step"] == lowest and [e["step"] for e in record["history"]] == [2, 4]


@pytest.mark.parametrize("mode,expected", [("min", [True, False, False]), ("max", [False, True, False])])
def test_better_follows_the_direction(mode, expected):
    assert [better(1.0, 2.0, mode), better(3.0, 2.0, mode), better(float("nan"), 2.0, mode)] == expected
    assert better(5.0, None, mode)


def test_best_is_kept_across_a_resume_and_export_best_writes_it_to_model_pt(tmp_path, evaluated, tiny_data,
                                                                            eval_inputs):
    params = with_overrides(evaluated["params"], train={"export": "best"})
    run(params, tiny_data, tmp_path, eval_inputs, max_steps=2)
    after_two = torch.load(tmp_path / "checkpoints" / BEST_FILE, weights_only=True)
    assert after_two["best"]["step"] == 2
    summary = run(params, tiny_data, tmp_path, eval_inputs)
    assert summary["steps_this_run"] == 2
    assert [e["step"] for e in summary["eval_history"]] == [2, 4]  # step 2's evaluation read back, not redone
    assert summary["best_step"] == evaluated["summary"]["best_step"]
    assert summary["best_value"] == pytest.approx(evaluated["summary"]["best_value"])
    model, best = weights(tmp_path / "model.pt"), weights(tmp_path / "checkpoints" / BEST_FILE)
    assert all(torch.equal(model[k], best[k]) for k in best)
    assert torch.load(tmp_path / "model.pt", weights_only=True)["step"] == summary["best_step"]


def test_settings_evaluation_cannot_honour_fail_before_training(tmp_path, tiny_model, tiny_data, eval_inputs):
    params = with_overrides(tiny_model["params"], train={"eval_every": 0, "export": "best"})
    with pytest.raises(ValueError, match="train.eval_every is 0"):
        run(params, tiny_data, tmp_path, eval_inputs)
    params = with_overrides(tiny_model["params"], train={"eval_every": 2, "export": "best"})
    with pytest.raises(ValueError, match="given no dev set to evaluate on"):  # else model.pt would be the last step
        run(params, tiny_data, tmp_path, None)
    params = with_overrides(tiny_model["params"], train={"eval_every": 2})
    missing = EvalInputs(tmp_path / "nowhere" / "manifest.parquet", None, tmp_path, tmp_path)
    with pytest.raises(FileNotFoundError, match="run the dev_set stage first"):
        run(params, tiny_data, tmp_path, missing)


def test_eval_fad_false_reads_the_generator_s_log_mels_only(tmp_path, tiny_model, tiny_data, eval_inputs):
    params = with_overrides(tiny_model["params"], train={"eval_every": 4, "eval_fad": False,
                                                         "select_by": SELECT_FG})
    summary = run(params, tiny_data, tmp_path, eval_inputs)
    (entry,) = summary["eval_history"]
    assert entry["step"] == 4 and "cond_fg_accuracy" in entry and "cond_diversity" in entry
    assert "fad_mean" not in entry and summary["best_step"] == 4
    params = with_overrides(params, train={"select_by": {**SELECT_FG, "metric": "fad_mean", "mode": "min"}})
    with pytest.raises(ValueError, match="train.eval_fad is false"):
        run(params, tiny_data, tmp_path / "again", eval_inputs)


@pytest.mark.parametrize("eval_fad", [False, True])
def test_training_s_evaluation_reads_other_noise_vectors_than_the_evaluate_stage(tmp_path, tiny_model, tiny_data,
                                                                                eval_inputs, monkeypatch, eval_fad):
    """A step kept as the best (train.export: best) is then scored on noise it was not chosen on."""
    streams = []

    def recording(*args, **kwargs):
        streams.append(kwargs.get("stream", args[5] if len(args) > 5 else conditioning_score.NOISE_STREAM))
        return generator_mels(*args, **kwargs)

    monkeypatch.setattr(conditioning_score, "generator_mels", recording)
    params = with_overrides(tiny_model["params"], train={"eval_every": 4, "eval_fad": eval_fad,
                                                         "select_by": SELECT_FG})
    run(params, tiny_data, tmp_path, eval_inputs)
    assert streams == [conditioning_score.SELECTION_NOISE_STREAM]  # the one evaluation, at step 4
    streams.clear()
    scorer = Scorer(params, eval_inputs.manifest, eval_inputs.pretrained, eval_inputs.train_manifest,
                    eval_inputs.cache, audio_reading=False)  # the evaluate stage's
    scorer.mel_reading(tmp_path / "model.pt")
    assert streams == [conditioning_score.NOISE_STREAM]
    captions = list(scorer.dev["caption"])[:2]
    final, chosen = (generator_mels(tmp_path / "model.pt", captions, 2, params["seed"], eval_inputs.pretrained, stream)
                     for stream in (conditioning_score.NOISE_STREAM, conditioning_score.SELECTION_NOISE_STREAM))
    assert not np.allclose(final, chosen)


def test_select_by_training_prompts_never_reads_a_dev_prompt(tmp_path, tiny_model, tiny_data, eval_inputs, monkeypatch):
    """select_by.prompts train: the step is chosen on training captions, then scored on the dev prompts."""
    read = []

    def recording(model_path, captions, *args, **kwargs):
        read.append(list(captions))
        return generator_mels(model_path, captions, *args, **kwargs)

    monkeypatch.setattr(conditioning_score, "generator_mels", recording)
    params = with_overrides(tiny_model["params"], train={"eval_every": 2, "eval_fad": False, "export": "best",
                                                         "select_by": {**SELECT_FG, "prompts": "train", "n_prompts": 6}})
    summary = run(params, tiny_data, tmp_path, eval_inputs)
    dev = set(Scorer(params, eval_inputs.manifest, eval_inputs.pretrained, eval_inputs.train_manifest,
                     eval_inputs.cache, audio_reading=False).dev["caption"])
    training = set(read_manifest(eval_inputs.train_manifest).query("split == 'train'")["caption"])
    assert len(read) == 2 and read[0] == read[1]  # steps 2 and 4, the same captions
    assert set(read[0]) <= training and not set(read[0]) & dev
    assert summary["best_step"] in (2, 4)
    with pytest.raises(ValueError, match="train.select_by.prompts is 'train' but train.eval_fad is true"):
        run(with_overrides(params, train={"eval_fad": True}), tiny_data, tmp_path / "again", eval_inputs)


def test_keep_eval_models_keeps_each_evaluated_step_s_model_file_and_a_fresh_run_sets_them_aside(
        tmp_path, evaluated, tiny_data, eval_inputs):
    """train.keep_eval_models: checkpoints/eval-<step>.pt is the model file of that step (step 4's is the last
    step's model.pt); off (the evaluated fixture) none is written; another run in the folder sets them aside."""
    assert not list((evaluated["folder"] / "checkpoints").glob("eval-*.pt"))
    params = with_overrides(evaluated["params"], train={"keep_eval_models": True})
    run(params, tiny_data, tmp_path, eval_inputs)
    kept = sorted(p.name for p in (tmp_path / "checkpoints").glob("eval-*.pt"))
    assert kept == ["eval-000002.pt", "eval-000004.pt"]
    assert torch.load(tmp_path / "checkpoints" / "eval-000002.pt", weights_only=True)["step"] == 2
    last, model = weights(tmp_path / "checkpoints" / "eval-000004.pt"), weights(tmp_path / "model.pt")
    assert all(torch.equal(last[k], model[k]) for k in model)
    run(with_overrides(params, train={"lr_g": 2e-4}), tiny_data, tmp_path, eval_inputs, max_steps=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("eval-*.pt"))
    set_aside = [name for name in names if name != "eval-000002.pt"]  # the earlier run's: eval-<step>.<its fp>.pt
    assert len(names) == 3 and [name[:12] for name in set_aside] == ["eval-000002.", "eval-000004."]


def test_a_resumed_run_drops_the_kept_models_of_steps_after_its_checkpoint(tmp_path):
    """keep_eval_models: evaluations made after the checkpoint a run resumes from (then killed) are made again;
    their old files go, so a later reading never sees a step the resumed run has not reached."""
    from scenesynth.training.periodic_eval import EVAL_FILE, PeriodicEval

    select_by = {"metric": "cond_fg_accuracy", "mode": "max", "prompts": "dev", "n_prompts": 1}
    params = {"train": {"eval_every": 2, "select_by": select_by}}
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    history = [{"step": 2, "cond_fg_accuracy": 0.5}, {"step": 4, "cond_fg_accuracy": 0.6}]
    (folder / EVAL_FILE).write_text(json.dumps({"fingerprint": "fp", "select_by": select_by, "history": history,
                                                "best": {"step": 4}}))
    for name in ("eval-000002.pt", "eval-000004.pt", "eval-000004.oldfp.pt"):
        (folder / name).write_bytes(b"model")
    evaluation = PeriodicEval(params, tmp_path, None, "fp", lambda path: None)
    evaluation.restore(2, resumed=True)
    assert sorted(p.name for p in folder.glob("eval-*.pt")) == ["eval-000002.pt", "eval-000004.oldfp.pt"]
    assert [entry["step"] for entry in evaluation.history] == [2]


def test_a_stop_at_max_steps_between_evaluations_adds_none_and_resumes_as_if_uninterrupted(tmp_path, evaluated,
                                                                                         tiny_data, eval_inputs):
    """--max-steps short of train.steps is an interruption: no evaluation at step 3 (off train.eval_every), so
    the resumed run's history and best step are those of the run that never stopped."""
    params = evaluated["params"]
    stopped = run(params, tiny_data, tmp_path, eval_inputs, max_steps=3)
    assert [e["step"] for e in stopped["eval_history"]] == [2]
    summary = run(params, tiny_data, tmp_path, eval_inputs)
    assert [e["step"] for e in summary["eval_history"]] == [2, 4]
    assert summary["best_step"] == evaluated["summary"]["best_step"]
    record = json.loads((tmp_path / "checkpoints" / EVAL_FILE).read_text())
    assert [e["step"] for e in record["history"]] == [2, 4]


def test_evaluations_in_a_worker_process_give_the_history_best_and_model_of_those_in_line(tmp_path, evaluated,
                                                                                        tiny_data, eval_inputs):
    """train.eval_background: the same numbers in eval.json, the same best.pt and model.pt, stopped and
    resumed on the way (the end of each run waits for its evaluations)."""
    inline = with_overrides(evaluated["params"], train={"export": "best"})
    expected = run(inline, tiny_data, tmp_path / "inline", eval_inputs)
    background = with_overrides(inline, train={"eval_background": True})
    stopped = run(background, tiny_data, tmp_path / "background", eval_inputs, max_steps=2)
    assert [e["step"] for e in stopped["eval_history"]] == [2]
    summary = run(background, tiny_data, tmp_path / "background", eval_inputs)
    assert summary["eval_history"] == expected["eval_history"] and summary["best_step"] == expected["best_step"]
    for name in (f"checkpoints/{EVAL_FILE}", "train.json"):
        assert (tmp_path / "background" / name).read_text() == (tmp_path / "inline" / name).read_text()
    for name in ("model.pt", f"checkpoints/{BEST_FILE}"):
        mine, theirs = weights(tmp_path / "background" / name), weights(tmp_path / "inline" / name)
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in theirs), name
    assert not list((tmp_path / "background" / "checkpoints").glob(".eval.partial-*"))  # no model file left behind
