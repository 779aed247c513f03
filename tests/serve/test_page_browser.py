"""The web page at / in a real headless browser (Debian's chromium, driven by Playwright): pick an image,
see the top classes with bars and the Grad-CAM heat map; a broken file shows the server's error."""

import pytest

from ..imagegen import class_image, write_small_weights

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
from ..browser import launched, require_browser  # noqa: E402

playwright_api = require_browser()

from resnetkit.serve import ServeConfig, create_app, load_service  # noqa: E402

from .server import serving  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    weights = str(write_small_weights(tmp_path_factory.mktemp("w") / "w.safetensors"))
    cfg = ServeConfig(weights=weights, max_batch=4)
    app = create_app(load_service(cfg, log=lambda s: None), cfg, log=lambda s: None)
    with serving(app) as (host, port):
        yield f"http://{host}:{port}"


@pytest.fixture(scope="module")
def browser():
    with launched(playwright_api) as running:
        yield running


@pytest.fixture(scope="module")
def page(server, browser):
    # bypass_csp: Playwright evaluates wait_for_function strings, which the page's CSP forbids (the
    # hostile-names test keeps the policy on).
    return browser.new_context(viewport={"width": 900, "height": 700}, bypass_csp=True).new_page()


def test_page_shows_top_classes_and_heat_map(page, server, tmp_path):
    image = tmp_path / "digit.png"
    class_image(1, 0, size=64).save(image)
    page.goto(server)
    assert "resnet18" in page.text_content("#about") and "3 classes" in page.text_content("#about")
    assert page.is_hidden("#result")
    page.set_input_files("#file", str(image))
    page.wait_for_selector("#result", state="visible")
    names = page.locator("#bars .name").all_text_contents()
    percents = [float(t.rstrip("%")) for t in page.locator("#bars .pct").all_text_contents()]
    assert sorted(names) == ["a", "b", "c"]  # top-5 of a 3-class model: all three, best first
    assert percents == sorted(percents, reverse=True) and abs(sum(percents) - 100) < 0.5
    widths = page.eval_on_selector_all("#bars .fill", "els => els.map(e => e.getBoundingClientRect().width)")
    assert widths == sorted(widths, reverse=True) and widths[0] > 0
    # The heat map is a decoded image on screen (not a broken-image icon), and so is the preview.
    for selector in ("#cam", "#preview"):
        page.wait_for_function(f"document.querySelector('{selector}').complete")
        size = page.eval_on_selector(selector, "img => [img.naturalWidth, img.naturalHeight]")
        assert size[0] > 0 and size[1] > 0, selector
        assert page.is_visible(selector), selector
    assert page.get_attribute("#cam", "src").startswith("data:image/png;base64,")
    assert page.text_content("#error") == ""
    shot = page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"


def test_page_shows_the_error_for_a_broken_file(page, server, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    page.goto(server)
    page.set_input_files("#file", str(broken))
    page.wait_for_function("document.querySelector('#error').textContent.length > 0")
    message = page.text_content("#error")
    assert "broken.png" in message or "image" in message.lower(), message
    assert "Traceback" not in message and page.is_hidden("#result")


def test_page_accepts_a_dropped_file(page, server, tmp_path):
    """Drag and drop: a drop event carrying a PNG file gives the same result as picking it."""
    image = tmp_path / "dropped.png"
    class_image(2, 0, size=48).save(image)
    page.goto(server)
    data = list(image.read_bytes())
    transfer = page.evaluate_handle(
        """bytes => {
            const t = new DataTransfer();
            t.items.add(new File([new Uint8Array(bytes)], "dropped.png", {type: "image/png"}));
            return t;
        }""",
        data,
    )
    page.dispatch_event("#drop", "dragover", {"dataTransfer": transfer})
    assert "over" in page.get_attribute("#drop", "class")
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
    page.wait_for_selector("#result", state="visible")
    assert sorted(page.locator("#bars .name").all_text_contents()) == ["a", "b", "c"]
    assert "over" not in (page.get_attribute("#drop", "class") or "")


HOSTILE = [
    "</script><script>window.__pwned = 1</script>",
    '<img src=x onerror="window.__pwned = 2">',
    "&lt;b&gt; \u2028 & \"quoted\" 'single'",
]


def test_hostile_class_and_file_names_stay_text(tmp_path, browser):
    """Class names from a model file and file names from a client reach the page as text: none runs
    script or becomes markup, whatever it contains; the page logs no console error."""
    weights = str(write_small_weights(tmp_path / "hostile.safetensors", classes=HOSTILE))
    cfg = ServeConfig(weights=weights, max_batch=2)
    app = create_app(load_service(cfg, log=lambda s: None), cfg, log=lambda s: None)
    image = tmp_path / '<img src=x onerror="window.__pwned=3">.png'
    class_image(0, 0, size=48).save(image)
    with serving(app) as (host, port):
        page = browser.new_page()
        problems = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        response = page.goto(f"http://{host}:{port}/")
        assert "script-src 'nonce-" in response.headers["content-security-policy"]
        assert "3 classes" in page.text_content("#about")
        page.set_input_files("#file", str(image))
        page.wait_for_selector("#result", state="visible")
        assert sorted(page.locator("#bars .name").all_text_contents()) == sorted(HOSTILE)
        assert page.evaluate("window.__pwned") is None
        assert page.locator("#bars img").count() == 0 and page.locator("body script").count() == 2
        # The page links to the served model's explain page, which shows the same names as text.
        page.click("#explain-link")
        page.wait_for_selector("#top")
        assert page.url.endswith("/explain")
        assert sorted(page.locator("#top td:first-child").all_text_contents()) == sorted(HOSTILE)
        assert page.locator(".stage-out").count() == 4 and page.evaluate("window.__pwned") is None
        page.close()
    assert problems == []
