"""The listening report, end to end: the tiny DAG, `snakemake --report`, then the report in headless Chromium.

Chromium is Debian's package (scripts/install_chromium.sh), driven by the `playwright` Python package
through `executable_path`: Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from scenesynth.workflow.rules import prompt_labels
from test_workflow import TINY, project_copy, run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
INSTALL_SCRIPT = REPO / "scripts" / "install_chromium.sh"
CLIP_SECONDS = 4.0  # the challenge's clip length (the tiny config crops 0.5 s)

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
            error: audio.error ? audio.error.code : null};
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


def assert_plays_and_shows_mels(frame) -> None:
    """The frame's generated clip plays (its playhead moves) and its spectrogram image decoded."""
    played = frame.locator("audio#generated").evaluate(PLAY_JS)
    assert played["error"] is None and not played["paused"], played
    assert played["duration"] == pytest.approx(CLIP_SECONDS, abs=0.05), played
    assert played["now"] >= played["start"] + 0.5, f"the playhead did not advance: {played}"
    image = frame.locator("img#mel").evaluate(IMAGE_JS)
    assert image["complete"] and image["width"] > 0, image


def test_report_lists_every_prompt_and_its_clip_plays_in_chromium(tmp_path, browser):
    project = project_copy(tmp_path)
    overlay = yaml.safe_load((project / "config/tiny.yaml").read_text())
    overlay["generate"]["crop_seconds"] = CLIP_SECONDS
    (project / "config/tiny.yaml").write_text(yaml.safe_dump(overlay))
    run(["snakemake", "--cores", "2", *TINY], project, timeout=900)
    run(["snakemake", "--report", "report.html", *TINY], project)
    check_report_in_browser(browser, project)


def check_report_in_browser(browser, project: Path) -> None:
    """report.html lists each prompt; a prompt's page plays in the report's iframe and alone."""
    from playwright.sync_api import expect

    captions = json.loads((project / "outputs/report/prompts.json").read_text())
    assert len(captions) == len(list((project / "outputs/dev/seed0").glob("*.wav"))) > 0

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto((project / "report.html").as_uri())
    page.locator("ul").get_by_role("link", name="Listening").click()
    for key in captions:  # one entry per dev prompt, labelled with its caption
        row = page.locator("tr", has_text=key)
        expect(row).to_have_count(1)
        assert prompt_labels(project / "outputs/report/prompts.json", key)["caption"] in row.inner_text()

    first = sorted(captions)[0]
    page.locator("tr", has_text=first).locator("a[iconname=eye]").click()  # opens the page in the report's iframe
    frame = page.frame_locator("iframe")
    assert frame.locator("#caption").inner_text() == captions[first]
    assert_plays_and_shows_mels(frame)

    page.goto((project / "report.html").as_uri())  # back to the start page and its category menu
    page.locator("ul").get_by_role("link", name="Metrics").click()
    page.locator("tr", has_text="metrics.html").locator("a[iconname=eye]").click()
    verdict = page.frame_locator("iframe").locator("#verdict").inner_text()
    assert verdict.startswith("NOT comparable") and "logmel_stats" in verdict
    assert "42.075" in page.frame_locator("iframe").locator("#fad").inner_text()
    assert errors == []

    # The per-prompt asset also stands alone (e.g. sent on its own or opened from the project).
    alone = browser.new_page()
    alone.goto((project / "outputs/report/prompts" / f"{first}.html").as_uri())
    assert_plays_and_shows_mels(alone)
