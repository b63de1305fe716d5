"""`scenesynth synthesize`: files named and recorded, byte-identical for a seed, resumable, and bad input
refused in one line with nothing written."""

import json
import shutil
import subprocess
import sys

import pytest
import soundfile as sf

from conftest import REPO, TINY_OVERLAY, venv_env
from scenesynth.cli import main
from scenesynth.data.dcase_dev import DevSetError
from scenesynth.inference.synthesize import output_names, read_prompt_file, synthesize
from scenesynth.inference.synthesizer import PromptError

PROMPTS = ["a siren wailing with traffic in the background", "Birds chirping!", "雨"]


@pytest.fixture(scope="module")
def made(tiny_model, tmp_path_factory):
    """The same prompts synthesised twice into two folders with seed 5, and once with seed 6."""
    root = tmp_path_factory.mktemp("synth")
    runs = {}
    for name, seed in (("a", 5), ("b", 5), ("other_seed", 6)):
        runs[name] = synthesize(tiny_model["params"], tiny_model["model"], root / name, prompts=PROMPTS, seed=seed,
                                pretrained=root / "no_pretrained")
    return root, runs


def test_each_prompt_gets_a_challenge_format_wav_and_a_sidecar(made, tiny_model):
    root, runs = made
    gen = tiny_model["params"]["generate"]
    assert [p.relative_to(root / "a").as_posix() for p in runs["a"]] == [
        "seed5/001_a_siren_wailing_with_traffic_in_the_background.wav", "seed5/002_birds_chirping.wav", "seed5/003.wav"]
    for wav, prompt in zip(runs["a"], PROMPTS):
        info = sf.info(wav)
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (
            gen["sample_rate"], 1, "PCM_16", round(gen["crop_seconds"] * gen["sample_rate"]))
        sidecar = json.loads(wav.with_suffix(".json").read_text())
        request, choice = sidecar["request"], sidecar["choice"]
        assert (request["prompt"], request["seed"], request["format"]) == (prompt, 5, "challenge")
        assert len(request["model"]["sha256"]) == 64 and request["model"]["step"] == tiny_model["summary"]["steps"]
        assert len(choice["scores"]) == gen["n_candidates"] and choice["score"] == max(choice["scores"])


def test_the_same_seed_gives_the_same_bytes_and_another_seed_does_not(made):
    root, runs = made
    for a, b, other in zip(runs["a"], runs["b"], runs["other_seed"]):
        assert a.read_bytes() == b.read_bytes()
        assert a.with_suffix(".json").read_bytes() == b.with_suffix(".json").read_bytes()
        assert a.read_bytes() != other.read_bytes()


def test_a_finished_clip_is_not_made_again_but_a_changed_request_is(made, tiny_model, tmp_path, monkeypatch):
    root, runs = made
    from scenesynth.inference import synthesizer

    shutil.copytree(root / "a", tmp_path / "a")
    calls = []
    original = synthesizer.Synthesizer.render
    monkeypatch.setattr(synthesizer.Synthesizer, "render", lambda *a, **k: calls.append(a[1]) or original(*a, **k))
    copies = [tmp_path / p.relative_to(root) for p in runs["a"]]
    before = [p.stat().st_mtime_ns for p in copies]
    copies[1].with_suffix(".json").unlink()  # as if killed between the WAV and its sidecar
    again = synthesize(tiny_model["params"], tiny_model["model"], tmp_path / "a", prompts=PROMPTS, seed=5,
                       pretrained=root / "no_pretrained")
    assert again == copies and calls == [PROMPTS[1]]
    assert [p.stat().st_mtime_ns for p in again][::2] == before[::2]
    assert copies[1].read_bytes() == runs["a"][1].read_bytes()
    synthesize(tiny_model["params"], tiny_model["model"], tmp_path / "a", prompts=PROMPTS[:1], seed=5, candidates=1,
               pretrained=root / "no_pretrained")
    assert calls[-1] == PROMPTS[0]
    assert json.loads(copies[0].with_suffix(".json").read_text())["request"]["n_candidates"] == 1
    assert not list((tmp_path / "a").rglob(".*"))  # no temporary files left behind


def test_prompt_files_one_per_line_or_csv_with_ids(tmp_path, tiny_params):
    lines = tmp_path / "prompts.txt"
    lines.write_text("a dog barks\r\n\n  rain on a roof  \n")
    ids, texts, labels = read_prompt_file(lines, tiny_params)
    assert (ids, texts, labels) == ([None, None], ["a dog barks", "  rain on a roof  "],
                                    [f"{lines} line 1", f"{lines} line 3"])
    assert output_names(ids, texts) == ["001_a_dog_barks", "002_rain_on_a_roof"]
    table = tmp_path / "captions.csv"
    table.write_text('id,caption\nscene-01,"a dog barks, then rain"\nscene-02,birds\n')
    ids, texts, _ = read_prompt_file(table, tiny_params)
    assert output_names(ids, texts) == ["scene-01", "scene-02"] and texts[0] == "a dog barks, then rain"
    table.write_text("id,caption\n../escape,a dog barks\n")
    with pytest.raises(DevSetError, match="captions.csv: prompt id '../escape' is not a safe file name"):
        read_prompt_file(table, tiny_params)
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(PromptError, match="empty.txt: no prompts in it"):
        read_prompt_file(tmp_path / "empty.txt", tiny_params)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(PromptError, match="latin1.txt: not UTF-8 text"):
        read_prompt_file(tmp_path / "latin1.txt", tiny_params)


# ----------------------------------------------------------------------------- the command line
def cli_args(args: list[str]) -> list[str]:
    return ["synthesize", "--params", str(REPO / "params.yaml"), "--overlay", str(TINY_OVERLAY),
            "--pretrained", "no_pretrained", *args]


def test_the_command_line_writes_what_the_python_call_writes(made, tiny_model, tmp_path, monkeypatch, capsys):
    root, runs = made
    monkeypatch.chdir(tmp_path)
    assert main(cli_args([*PROMPTS, "--model", str(tiny_model["model"]), "--out", "out", "--seed", "5"])) == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == len(PROMPTS)
    for path, expected in zip(printed, runs["a"]):
        assert (tmp_path / path).read_bytes() == expected.read_bytes()


BAD_INPUTS = {  # case -> (arguments, what the one error line must say)
    "empty prompt": (["", "--model", "{model}"], "the prompt is empty"),
    "10 000 characters": (["y" * 10_000, "--model", "{model}"], "the prompt has 10000 characters; at most 1000"),
    "control character": (["a dog\x1b[31m barks", "--model", "{model}"], "control character U+001B at character 6"),
    "control character in a file": (["--prompts", "bell.txt", "--model", "{model}"],
                                    "bell.txt line 2 contains the control character U+0007"),
    "missing model": (["a dog barks", "--model", "absent.pt"], "absent.pt: model file not found"),
    "corrupt model": (["a dog barks", "--model", "corrupt.pt"], "corrupt.pt: not a readable model file"),
    "not a model": (["a dog barks", "--model", "bell.txt"], "bell.txt: not a readable model file"),
    "unknown device": (["a dog barks", "--model", "{model}", "--device", "tpu:0"],
                       "unknown device 'tpu:0': use auto, cpu"),
    "GPU not here": (["a dog barks", "--model", "{model}", "--device", "cuda:7"], "device 'cuda:7'"),
}


def bad_input(case: str, model, folder) -> tuple[list[str], str]:
    (folder / "corrupt.pt").write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    (folder / "bell.txt").write_text("a dog barks\nrain\x07 falls\n")
    args, message = BAD_INPUTS[case]
    return [a.replace("{model}", str(model)) for a in args] + ["--out", "out"], message


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_a_one_line_error_and_writes_nothing(case, tiny_model, tmp_path, monkeypatch, capsys):
    args, message = bad_input(case, tiny_model["model"], tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(cli_args(args)) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert err.startswith("scenesynth synthesize: error: ") and message in err and len(err) < 300, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["control character", "corrupt model"])
def test_as_a_process_bad_input_exits_non_zero_with_one_line_and_no_traceback(case, tiny_model, tmp_path):
    args, message = bad_input(case, tiny_model["model"], tmp_path)
    done = subprocess.run([sys.executable, "-m", "scenesynth.cli", *cli_args(args)], cwd=tmp_path,
                          capture_output=True, text=True, env=venv_env(), timeout=300)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()
