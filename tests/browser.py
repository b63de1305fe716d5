"""Headless Chromium for the tests that open pages (the listening report, `scenesynth serve`).

Chromium is Debian's package (scripts/install_chromium.sh), driven by the `playwright` Python package
through `executable_path`: Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import REPO

INSTALL_SCRIPT = REPO / "scripts" / "install_chromium.sh"

# Plays an <audio> element and reports what the browser did: metadata, then play(), then
# wait until the playhead has clearly moved (or 10 s pass).
PLAY_JS = """async (audio) => {
    if (audio.readyState < 1) {
        await new Promise((ok, fail) => {
            audio.addEventListener('loadedmetadata', ok, {once: true});
            audio.addEventListener('error', () => fail(new Error('audio error ' + audio.error.code)), {once: true});
        });
    }
    const start = audio.currentTime;
    await audio.play();
    const until = Date.now() + 10000;
    while (audio.currentTime < start + 0.5 && !audio.ended && Date.now() < until) {
        await new Promise(ok => setTimeout(ok, 50));
    }
    return {duration: audio.duration, start: start, now: audio.currentTime, paused: audio.paused,
            ended: audio.ended, error: audio.error ? audio.error.code : null};
}"""
IMAGE_JS = """async (img) => { await img.decode(); return {complete: img.complete, width: img.naturalWidth}; }"""


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium (installed if missing); skips only where it cannot be installed."""
    done = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=1200)
    if done.returncode == 2:
        pytest.skip(f"Chromium cannot be installed here: {done.stderr.strip()}")
    assert done.returncode == 0, f"{INSTALL_SCRIPT} failed:\n{done.stderr[-3000:]}"
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def browser(chromium):
    pytest.importorskip("playwright.sync_api", reason="needs the playwright package (pip install playwright==1.65.2)")
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                     args=["--autoplay-policy=no-user-gesture-required", "--mute-audio"])
        yield browser
        browser.close()


def assert_plays_and_shows_mels(frame, seconds: float = 4.0, audio: str = "audio#generated",
                                image: str = "img#mel") -> None:
    """The frame's clip plays for `seconds` (its playhead moves) and its spectrogram image decoded."""
    played = frame.locator(audio).evaluate(PLAY_JS)
    assert played["error"] is None and (not played["paused"] or played["ended"]), played  # a short clip may end
    assert played["duration"] == pytest.approx(seconds, abs=0.05), played
    assert played["now"] >= played["start"] + min(0.5, 0.9 * seconds), f"the playhead did not advance: {played}"
    decoded = frame.locator(image).evaluate(IMAGE_JS)
    assert decoded["complete"] and decoded["width"] > 0, decoded
