"""`scenesynth synthesize`: files named and recorded, byte-identical for a seed, resumable, and bad input
refused in one line with nothing written."""

import hashlib
import json
import re
import shlex
import shutil
import subprocess
import sys

import pytest
import soundfile as sf

from conftest import REPO, TINY_OVERLAY, venv_env
from scenesynth.cli import main
from scenesynth.data.dcase_dev import DevSetError
from scenesynth.inference.synthesize import output_names, prompt_name, read_prompt_file, synthesize
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
    names = [p.relative_to(root / "a").as_posix() for p in runs["a"]]
    assert re.fullmatch(r"seed5/a_siren_wailing_with_traffic_in_the_background_[0-9a-f]{10}\.wav", names[0])
    assert re.fullmatch(r"seed5/birds_chirping_[0-9a-f]{10}\.wav", names[1])
    assert re.fullmatch(r"seed5/[0-9a-f]{10}\.wav", names[2])  # no ASCII words: the hash alone
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


def test_a_finished_clip_is_not_made_again_and_a_changed_request_is_refused(made, tiny_model, tmp_path, monkeypatch):
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
    before = {p: p.read_bytes() for p in (tmp_path / "a").rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match=r"made earlier with other settings \(n_candidates 2 -> 1\).*another --out"):
        synthesize(tiny_model["params"], tiny_model["model"], tmp_path / "a", prompts=PROMPTS, seed=5, candidates=1,
                   pretrained=root / "no_pretrained")
    assert calls == [PROMPTS[1]] and {p: p.read_bytes() for p in (tmp_path / "a").rglob("*") if p.is_file()} == before
    assert not list((tmp_path / "a").rglob(".*"))  # no temporary files left behind


def test_prompt_files_one_per_line_or_csv_with_ids(tmp_path, tiny_params):
    lines = tmp_path / "prompts.txt"
    lines.write_text("a dog barks\r\n\n  rain on a roof  \n")
    ids, texts, labels = read_prompt_file(lines, tiny_params)
    assert (ids, texts, labels) == ([None, None], ["a dog barks", "  rain on a roof  "],
                                    [f"{lines} line 1", f"{lines} line 3"])
    assert output_names(ids, texts) == [prompt_name("a dog barks"), prompt_name("  rain on a roof  ")]
    assert prompt_name("a dog barks").startswith("a_dog_barks_")
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


# ---------------------------------------------------- issue 22: one name, one request; checks first; identity
def test_prompts_that_differ_anyhow_get_different_names_and_one_prompt_one_name():
    long = "a crowd murmurs in a large hall while someone far away is tuning a"
    variants = ["Dog barks", "dog barks", "dog barks!", "dog  barks", long + " violin", long + " cello"]
    names = output_names([None] * len(variants), variants)
    assert len({n.lower() for n in names}) == len(variants)
    assert output_names([None, None], ["rain", "dog barks"])[1] == output_names([None], ["dog barks"])[0]


def test_ids_that_a_file_system_would_merge_are_refused(tiny_params, tmp_path):
    table = tmp_path / "captions.csv"
    table.write_text("id,caption\nScene,a dog barks\nscene,rain\n")
    with pytest.raises(PromptError, match="row 3 .* and .*row 2 .*share the file name 'Scene' .*differ only in case"):
        output_names(*read_prompt_file(table, tiny_params))


def test_an_id_reused_with_another_caption_is_refused_and_the_old_clip_kept(tiny_model, tmp_path):
    table = tmp_path / "captions.csv"
    table.write_text("id,caption\nscene-01,a dog barks\n")
    first = synthesize(tiny_model["params"], tiny_model["model"], tmp_path / "out", prompts_file=table, seed=1,
                       pretrained=tmp_path)
    kept = first[0].read_bytes()
    table.write_text("id,caption\nscene-01,rain on a roof\n")
    with pytest.raises(PromptError, match=r"scene-01.wav: made earlier for another prompt under the same name"):
        synthesize(tiny_model["params"], tiny_model["model"], tmp_path / "out", prompts_file=table, seed=1,
                   pretrained=tmp_path)
    assert first[0].read_bytes() == kept


def test_a_bom_is_not_part_of_the_first_prompt(tiny_params, tmp_path):
    plain, marked = tmp_path / "plain.txt", tmp_path / "marked.txt"
    plain.write_text("a dog barks\nrain\n", encoding="utf-8")
    marked.write_text("a dog barks\nrain\n", encoding="utf-8-sig")
    assert read_prompt_file(marked, tiny_params)[1] == read_prompt_file(plain, tiny_params)[1] == ["a dog barks", "rain"]
    table = tmp_path / "captions.csv"
    table.write_text("id,caption\nscene-01,a dog barks\n", encoding="utf-8-sig")
    assert read_prompt_file(table, tiny_params)[:2] == (["scene-01"], ["a dog barks"])


def test_resume_is_keyed_on_the_model_s_hash_and_each_clip_s_hash(made, tiny_model, tmp_path, monkeypatch):
    root, runs = made
    from scenesynth.inference import synthesizer

    shutil.copytree(root / "a", tmp_path / "a")
    moved = tmp_path / "elsewhere" / "same_model.pt"
    moved.parent.mkdir()
    shutil.copy(tiny_model["model"], moved)
    calls = []
    original = synthesizer.Synthesizer.render
    monkeypatch.setattr(synthesizer.Synthesizer, "render", lambda *a, **k: calls.append(a[1]) or original(*a, **k))
    again = synthesize(tiny_model["params"], moved, tmp_path / "a", prompts=PROMPTS, seed=5,
                       pretrained=root / "no_pretrained")
    assert calls == []  # the same model elsewhere: nothing made again
    sidecar = json.loads(again[0].with_suffix(".json").read_text())
    assert sidecar["wav_sha256"] == hashlib.sha256(again[0].read_bytes()).hexdigest()
    damaged = again[2].read_bytes()
    again[2].write_bytes(damaged[:-100] + bytes(100))  # a damaged WAV beside its sidecar
    synthesize(tiny_model["params"], moved, tmp_path / "a", prompts=PROMPTS, seed=5, pretrained=root / "no_pretrained")
    assert calls == [PROMPTS[2]] and again[2].read_bytes() == damaged


def test_a_300_character_id_stops_before_the_model_loads_and_writes_nothing(tiny_model, tmp_path, monkeypatch, capsys):
    from scenesynth.inference import synthesizer

    monkeypatch.setattr(synthesizer, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    monkeypatch.chdir(tmp_path)
    long_id = "x" * 300
    (tmp_path / "captions.csv").write_text(f"id,caption\nfine,a dog barks\n{long_id},rain\n")
    assert main(cli_args(["--prompts", "captions.csv", "--model", str(tiny_model["model"]), "--out", "out"])) == 1
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "captions.csv row 3" in err and "300 characters; at most 100" in err, err
    assert long_id not in err and not (tmp_path / "out").exists()


def test_a_failing_command_sweeps_nothing(tiny_model, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    stray = tmp_path / "out" / "seed0" / ".x.wav.partial-abc"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"part")
    assert main(cli_args(["", "--model", str(tiny_model["model"]), "--out", "out"])) == 1
    assert "the prompt is empty" in capsys.readouterr().err and stray.read_bytes() == b"part"


@pytest.mark.slow
def test_the_readme_commands_run_as_printed_on_a_cpu(tiny_model, tmp_path):
    """README "Generate your own sounds": the shell block, with the tiny model and overlay in place of the
    demo's, run by bash from a project folder (params.yaml there, no pre-trained models, no GPU asked)."""
    section = (REPO / "README.md").read_text().split("## Generate your own sounds", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    assert "--device cpu" in block and "--device cuda \\" not in block
    script = (block.replace(". .venv/bin/activate\n", "")
              .replace("runs/train/model.pt", shlex.quote(str(tiny_model["model"])))
              .replace("config/demo.yaml", shlex.quote(str(TINY_OVERLAY))))
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env=venv_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    made = sorted(p.relative_to(tmp_path / "outputs/synth").as_posix() for p in (tmp_path / "outputs/synth").rglob("*.wav"))
    assert len(made) == 4 and "seed0/siren-01.wav" in made, made
    assert "was trained with overlay" in done.stderr  # the command without --overlay says what it uses
