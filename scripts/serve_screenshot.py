"""The screenshot of the serve page in docs/: a real `resnetkit serve` of the digits run (`make run`
first), an image picked in headless chromium, the page captured once the top-5 and the heat map are on it.

    .venv/bin/python scripts/serve_screenshot.py [--weights runs/digits] [--image PNG] [--out docs/serve-page.png]

Needs Debian's chromium (apt-get install chromium) and playwright (installed by the Makefile).
"""

import argparse
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="runs/digits")
    parser.add_argument("--image", default=None, help="default: the first sample of the run")
    parser.add_argument("--out", default="docs/serve-page.png")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    image = Path(args.image or sorted(Path(args.weights, "samples").glob("*.png"))[0])
    cmd = [sys.executable, "-m", "resnetkit", "serve", "--weights", args.weights, "--port", str(args.port)]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        for line in server.stdout:  # the server prints "ready: ..." once it listens
            if line.startswith("ready: "):
                break
        else:
            raise SystemExit(f"the server exited ({server.wait()}) before it was ready")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 900, "height": 520})
            page.goto(f"http://127.0.0.1:{args.port}/")
            page.set_input_files("#file", str(image))
            page.wait_for_selector("#result", state="visible")
            page.wait_for_function("document.querySelector('#cam').complete")
            page.screenshot(path=args.out, full_page=True)
            print(f"{args.out}: {image.name} -> {page.text_content('#bars .name')}")
            browser.close()
    finally:
        server.terminate()
        server.wait(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
