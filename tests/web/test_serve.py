"""`scenesynth serve`: the page's back end over real HTTP (uvicorn on 127.0.0.1), its guards, and a clean stop."""

import base64
import json
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from conftest import REPO, TINY_OVERLAY, venv_env, with_overrides
from scenesynth.inference.synthesize import synthesize
from scenesynth.inference.synthesizer import Synthesizer
from scenesynth.web.serve import MAX_BODY_BYTES, build_app, make_server

CLIP_SECONDS = 0.64  # the tiny model's whole clip (the tiny config crops 0.5 s; a longer crop is refused)


@pytest.fixture(scope="module")
def params(tiny_model):
    return with_overrides(tiny_model["params"], generate={"crop_seconds": CLIP_SECONDS})


@pytest.fixture(scope="module")
def server(tiny_model, params, tmp_path_factory):
    """The app on a free port of 127.0.0.1, in a thread; stopped (and checked stopped) at the end."""
    synth = Synthesizer(tiny_model["model"], params, device="cpu", pretrained=tmp_path_factory.mktemp("none"))
    httpd, sock = make_server(build_app(synth), "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    port = sock.getsockname()[1]
    for _ in range(200):
        if httpd.started:
            break
        threading.Event().wait(0.05)
    yield f"http://127.0.0.1:{port}"
    httpd.should_exit = True
    thread.join(timeout=10)
    assert not thread.is_alive()


def request(url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes, str]:
    req = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=300) as response:
            return response.status, response.read(), response.headers.get("content-type", "")
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers.get("content-type", "")


def post(url: str, payload) -> tuple[int, dict]:
    status, body, _ = request(url + "/api/synthesize", json.dumps(payload).encode(),
                              {"Content-Type": "application/json"})
    return status, json.loads(body)


def data_uri_bytes(uri: str, kind: str) -> bytes:
    prefix = f"data:{kind};base64,"
    assert uri.startswith(prefix)
    return base64.b64decode(uri[len(prefix):])


def test_the_page_and_the_model_description(server, params):
    status, body, kind = request(server + "/")
    assert status == 200 and kind.startswith("text/html")
    page = body.decode()
    assert all(f'id="{name}"' in page for name in ("prompt", "seed", "generate", "clip", "mel"))
    status, body, _ = request(server + "/api/info")
    info = json.loads(body)
    assert status == 200 and (info["format"], info["seconds"], info["sample_rate"]) == (
        "challenge", CLIP_SECONDS, params["generate"]["sample_rate"])
    assert info["default_seed"] == params["synthesize"]["seed"] and info["vocoder"] == "griffin_lim"


def test_a_prompt_gives_the_wav_synthesize_writes_and_its_log_mel(server, params, tiny_model, tmp_path):
    prompt, seed = "a siren wailing with traffic in the background", 11
    status, answer = post(server, {"prompt": prompt, "seed": seed})
    assert status == 200, answer
    wav = data_uri_bytes(answer["wav"], "audio/wav")
    written = synthesize(params, tiny_model["model"], tmp_path, prompts=[prompt], seed=seed,
                         pretrained=tmp_path / "none")
    assert wav == written[0].read_bytes()  # the exact bytes of `scenesynth synthesize` for the same prompt and seed
    assert answer["seconds"] == CLIP_SECONDS and (answer["prompt"], answer["seed"]) == (prompt, seed)
    assert data_uri_bytes(answer["png"], "image/png").startswith(b"\x89PNG\r\n\x1a\n")
    status, again = post(server, {"prompt": prompt, "seed": seed + 1})
    assert status == 200 and again["wav"] != answer["wav"]


@pytest.mark.parametrize("payload, problem", [
    ({"prompt": ""}, "the prompt is empty"),
    ({"prompt": "z" * 5000}, "the prompt has 5000 characters"),
    ({"prompt": "bell\x07"}, "control character U+0007"),
    ({"prompt": "a dog", "seed": -3}, "seed '-3' is not an integer"),
    ({"prompt": "a dog", "seed": "1; rm -rf /"}, "is not an integer"),
    ({"seed": 1}, 'expected {"prompt": "...", "seed": 0}'),
])
def test_bad_requests_get_a_one_line_reason(server, payload, problem):
    status, answer = post(server, payload)
    assert status == 400 and problem in answer["error"] and "\n" not in answer["error"]


def test_guards_json_only_size_cap_and_this_machine_s_names_only(server):
    status, body, _ = request(server + "/api/synthesize", b"prompt=a+dog", {"Content-Type": "text/plain"})
    assert status == 415 and "application/json" in json.loads(body)["error"]
    big = json.dumps({"prompt": "a" * (MAX_BODY_BYTES + 10)}).encode()
    status, _, _ = request(server + "/api/synthesize", big, {"Content-Type": "application/json"})
    assert status == 413
    status, body, _ = request(server + "/api/info", headers={"Host": "attacker.example:8765"})
    assert status == 400  # DNS rebinding: a page of another site that resolves to 127.0.0.1 gets nothing
    status, _, _ = request(server + "/api/info", headers={"Host": "localhost"})
    assert status == 200


@pytest.mark.parametrize("body, problem", [
    (b'{"prompt": "a dog", "seed": ' + b"9" * 5001 + b"}", "not JSON this page reads"),
    (b"[" * 30_000 + b"]" * 30_000, "nested too deeply"),
    (b'{"prompt": "a dog", "seed": 1e999}', "is not an integer"),
    (b'["a dog", 1]', 'expected {"prompt": "...", "seed": 0}'),
])
def test_hostile_json_is_a_bad_request_not_a_server_error(server, body, problem):
    status, answer, _ = request(server + "/api/synthesize", body, {"Content-Type": "application/json"})
    error = json.loads(answer)["error"]
    assert status == 400 and problem in error and len(error) < 300, (status, answer[:300])


def test_ipv6_loopback_answers_the_url_it_prints(tiny_model, params, tmp_path):
    import socket

    from scenesynth.web.serve import allowed_hosts_for

    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError as err:
        pytest.skip(f"no IPv6 loopback here: {err}")
    synth = Synthesizer(tiny_model["model"], params, device="cpu", pretrained=tmp_path)
    httpd, sock = make_server(build_app(synth, allowed_hosts_for("::1")), "::1", 0)
    thread = threading.Thread(target=httpd.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if httpd.started:
                break
            threading.Event().wait(0.05)
        url = f"http://[::1]:{sock.getsockname()[1]}"
        assert request(url + "/api/info")[0] == 200
        assert request(url + "/api/info", headers={"Host": "attacker.example"})[0] == 400
    finally:
        httpd.should_exit = True
        thread.join(timeout=10)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_command_serves_on_loopback_and_stops_cleanly_on_ctrl_c_or_sigterm(tiny_model, tmp_path, signum):
    command = [sys.executable, "-m", "scenesynth.cli", "serve", "--params", str(REPO / "params.yaml"),
               "--overlay", str(TINY_OVERLAY), "--model", str(tiny_model["model"]), "--port", "0",
               "--pretrained", str(tmp_path)]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=venv_env())
    try:
        line = process.stdout.readline()
        assert line.startswith("scenesynth serve: open http://127.0.0.1:"), line + process.stderr.read()
        url = line.split()[3].rstrip("/")
        status, body, _ = request(url + "/api/info")
        assert status == 200 and json.loads(body)["model"]["path"] == str(tiny_model["model"])
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0 and "scenesynth serve: stopped" in out and "Traceback" not in err, (out, err)
