"""Screenshot of the metrics page's "During training" section with headless Chromium (scripts/install_chromium.sh):

    python scripts/metrics_screenshot.py outputs/report/metrics.html docs/figures/eval_curves_demo.png
"""
import sys
from pathlib import Path
from playwright.sync_api import sync_playwright

page_path, out = Path(sys.argv[1]).resolve(), sys.argv[2]
with sync_playwright() as pw:
    browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.goto(page_path.as_uri())
    section = page.locator("h2", has_text="During training")
    section.scroll_into_view_if_needed()
    box_h2, box_best = section.bounding_box(), page.locator("#best").bounding_box()
    page.screenshot(path=out, full_page=True, clip={"x": 0, "y": box_h2["y"] - 10, "width": 1000,
                                                    "height": box_best["y"] + box_best["height"] - box_h2["y"] + 20})
    browser.close()
