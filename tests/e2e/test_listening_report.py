"""The listening report, end to end: the tiny DAG, `snakemake --report`, then the report in headless Chromium.

Chromium is Debian's package (scripts/install_chromium.sh), driven by the `playwright` Python package
through `executable_path`: Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from browser import assert_plays_and_shows_mels, browser, chromium  # noqa: F401 (fixtures)
from scenesynth.workflow.rules import prompt_labels
from test_workflow import TINY, project_copy, run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CLIP_SECONDS = 0.64  # the tiny model's whole clip: a crop is never longer than the clip (never padded)


def test_report_lists_every_prompt_and_its_clip_plays_in_chromium(tmp_path, browser):
    project = project_copy(tmp_path)
    overlay = yaml.safe_load((project / "config/tiny.yaml").read_text())
    overlay["generate"]["crop_seconds"] = CLIP_SECONDS
    overlay["evaluate"]["clip_seconds"] = CLIP_SECONDS  # the scorer takes the clips generate makes
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
    assert_plays_and_shows_mels(frame, CLIP_SECONDS)

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
    assert_plays_and_shows_mels(alone, CLIP_SECONDS)
