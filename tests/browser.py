"""A real headless browser for page tests: Debian's chromium driven by Playwright (Playwright's own
browser download needs the internet, which CI does not have). Tests skip when either is missing."""

import contextlib
import os
import shutil

import pytest

CHROMIUM = os.environ.get("RESNETKIT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")

# Headless, and no background connections: the closed network would refuse them at every start.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_browser():
    """playwright.sync_api, or a module-level skip saying what is missing."""
    api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if not CHROMIUM:
        pytest.skip(
            "no chromium browser installed (apt-get install chromium); page test skipped", allow_module_level=True
        )
    return api


@contextlib.contextmanager
def launched(api):
    with api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def watch(page):
    """Console errors, page errors and requests a page makes, collected as it runs."""
    seen = {"errors": [], "requests": []}
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("request", lambda r: seen["requests"].append(r.url))
    return seen
