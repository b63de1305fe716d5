"""`scenesynth serve` in headless Chromium: a prompt typed in, a playable 4 s clip and its log-mel out.

A page test rather than a DAG test, but end to end like the listening report's: the real page,
its script, the real server and model, a real browser (Debian's chromium, tests/browser.py).
"""

from __future__ import annotations

import threading

import pytest

from browser import assert_plays_and_shows_mels, browser, chromium  # noqa: F401 (fixtures)
from conftest import with_overrides
from scenesynth.inference.synthesizer import Synthesizer
from scenesynth.web.serve import build_app, make_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CLIP_SECONDS = 0.64  # the tiny model's whole clip: a longer crop is capped to it, never padded
PROMPT = "a siren wailing with traffic in the background"


@pytest.fixture(scope="module")
def page_url(tiny_model, tmp_path_factory):
    params = with_overrides(tiny_model["params"], generate={"crop_seconds": CLIP_SECONDS})
    synth = Synthesizer(tiny_model["model"], params, device="cpu", pretrained=tmp_path_factory.mktemp("none"))
    server, sock = make_server(build_app(synth), "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    server.should_exit = True
    thread.join(timeout=10)


def test_a_typed_prompt_plays_as_a_4_s_clip_with_its_log_mel(browser, page_url):
    from playwright.sync_api import expect

    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(page_url)
    expect(page.locator("#model")).to_contain_text("griffin_lim vocoder")
    page.fill("#prompt", PROMPT)
    page.fill("#seed", "7")
    page.click("#generate")
    expect(page.locator("#status")).to_have_text("Done: seed 7.", timeout=120_000)
    assert_plays_and_shows_mels(page, CLIP_SECONDS, audio="audio#clip", image="img#mel")
    expect(page.locator("#choice")).to_contain_text(PROMPT)
    first = page.locator("audio#clip").get_attribute("src")

    page.fill("#prompt", "")
    page.fill("#prompt", "   ")
    page.click("#generate")  # the browser's own `required` check lets white space through: the server refuses it
    expect(page.locator("#status")).to_have_text("the prompt is empty", timeout=60_000)
    assert page.locator("audio#clip").get_attribute("src") == first  # the last good clip stays
    assert errors == []
