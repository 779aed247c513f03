"""The screenshot of the explain page in README.md and docs/explain.md: `resnetkit explain` on a real
photo (scikit-learn's flower.jpg by default), opened in headless chromium, a block of layer2 clicked so
its source shows beside the diagram.

    .venv/bin/python scripts/explain_screenshot.py [--arch resnet50 | --weights SRC] [--image JPG] [--out docs/explain-page.png]

Needs Debian's chromium (apt-get install chromium) and playwright (installed by the Makefile).
"""

import argparse
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from resnetkit.cli import main as resnetkit

ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--image", default=None)
    parser.add_argument("--out", default="docs/explain-page.png")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        page_file = Path(tmp) / "explain.html"
        source = ["--weights", args.weights] if args.weights else [args.arch]
        image = ["--image", args.image] if args.image else []
        if resnetkit(["explain", *source, *image, "--out", str(page_file)]) != 0:
            return 1
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(page_file.as_uri())
            page.wait_for_selector(".stage-out")
            page.eval_on_selector("#stage-layer2", "d => d.open = true")
            page.locator("#stage-layer2 .block").first.click()
            page.locator("#stage-layer2").scroll_into_view_if_needed()
            page.screenshot(path=args.out)
            print(f"{args.out}: {page.text_content('#title')}, code {page.text_content('#code-title')}")
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
