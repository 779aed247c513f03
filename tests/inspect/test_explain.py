"""`resnetkit explain`: the page in a real headless browser (shapes, shortcuts, images, code links,
no network, no console error, hostile names stay text), and its facts for every architecture."""

import json
import re

import pytest
import torch

import resnetkit as rk
from resnetkit.inspect.explain import explain_data
from resnetkit.models import list_models

from ..browser import launched, require_browser, watch
from ..clirun import cli
from ..imagegen import class_image, write_small_weights
from ..sweep import sweep

playwright_api = require_browser()
HOSTILE = ["</script><script>window.__pwned = 1</script>", '<img src=x onerror="window.__pwned = 2">', "&amp; ok"]


@pytest.fixture(scope="module")
def browser():
    with launched(playwright_api) as running:
        yield running


def open_page(browser, path):
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    seen = watch(page)
    page.goto(path.as_uri())
    page.wait_for_selector(".stage-out")
    return page, seen


def downsample_modules(model):
    return sum(1 for name, _ in model.named_modules() if name.endswith("downsample"))


@pytest.mark.parametrize(
    "arch, options, sizes, channels",
    [
        ("resnet18", {}, [56, 28, 14, 7], [64, 128, 256, 512]),
        ("resnet50", {}, [56, 28, 14, 7], [256, 512, 1024, 2048]),
        ("resnet50", {"replace_stride_with_dilation": [False, True, True]}, [56, 28, 28, 28], [256, 512, 1024, 2048]),
    ],
)
def test_the_page_shows_the_stages_and_shortcuts(tmp_path, browser, arch, options, sizes, channels):
    model = rk.get_model(arch, **options)
    out = tmp_path / "explain.html"
    out.write_text(rk.explain(model, input_size=224))
    page, seen = open_page(browser, out)
    shown = page.eval_on_selector_all(".stage-out", "els => els.map(e => [+e.dataset.size, +e.dataset.channels])")
    assert shown == [[s, c] for s, c in zip(sizes, channels)]
    assert [t.split("×")[-1] for t in page.locator(".stage-out").all_text_contents()] == [str(s) for s in sizes]
    assert page.locator(".shortcut.dashed").count() == downsample_modules(model)  # 3 for resnet18, 4 for resnet50
    assert "224 → 56 (4x smaller)" in page.text_content("#stem-reduction")
    assert "(224 − 7 + 2·3) / 2 + 1" in page.text_content("#stem")
    if options:
        assert "dilation" in page.text_content("#stage-layer3") and "output stride 8" in page.text_content("#facts")
    assert seen["errors"] == [] and all(u.startswith(("file:", "data:")) for u in seen["requests"])
    page.close()


def test_trained_page_images_code_links_and_hostile_names(tmp_path, browser):
    pytest.importorskip("pytorch_grad_cam")
    weights = write_small_weights(tmp_path / "w.safetensors", crop=64, classes=HOSTILE)
    image = tmp_path / '<img src=x onerror="window.__pwned=3">.png'
    class_image(1, 0, size=90).save(image)
    out = tmp_path / "page.html"
    result = cli("explain", "--weights", weights, "--image", image, "--out", out)
    assert result.returncode == 0, result.stderr
    page, seen = open_page(browser, out)
    assert page.evaluate("window.__pwned") is None and page.locator("img[src=x]").count() == 0
    assert sorted(page.locator("#top td:first-child").all_text_contents()) == sorted(HOSTILE)
    assert image.name in page.text_content("#imagename")
    # Feature maps and Grad-CAM overlays are decoded images, visible once their stage is opened.
    for stage in page.locator("details.stage").all():
        stage.evaluate("d => d.open = true")
    decoded = page.eval_on_selector_all("img.fmap, img.cam", "els => els.map(e => e.complete && e.naturalWidth > 0)")
    assert len(decoded) == 5 * 6 + 4 and all(decoded)
    assert page.locator("img.cam").first.is_visible()
    # A block shows its source; the source leads back to the blocks it builds.
    page.locator(".block").first.click()
    code = page.text_content("#code-lines")
    assert "class BasicBlock" in code and "def forward" in code
    assert re.search(r"resnetkit/models/blocks\.py:\d+", page.text_content("#code-title"))
    page.click("#code-lines")
    assert page.locator(".block.linked").count() == 8  # every BasicBlock of resnet18
    page.locator("#stem").click()
    assert "def build_stem" in page.text_content("#code-lines")
    assert seen["errors"] == [] and all(u.startswith(("file:", "data:")) for u in seen["requests"])
    page.close()


# One per code path of explain_data (basic, bottleneck, grouped, deep stem, anti-aliased, attention,
# ResNetV2, CIFAR); make test-scale explains every name.
EXPLAINED = ["resnet18", "resnet50", "resnext50_32x4d", "resnet26t", "resnetaa34d", "ecaresnetlight"]
EXPLAINED += ["seresnext26d_32x4d", "resnetv2_18d", "resnetv2_50x1_bit", "resnet20"]


@pytest.mark.parametrize("arch", sweep(list_models(), keep=EXPLAINED))
def test_every_architecture_is_explained(arch):
    model = rk.get_model(arch)  # built once: initialising the largest costs more than explaining it
    data = explain_data(model, input_size=32)
    assert [s["name"] for s in data["stages"]] == list(model.stage_names)
    assert sum(
        s["shortcut"]["kind"] == "projection" for st in data["stages"] for s in st["blocks"]
    ) == downsample_modules(model)
    assert data["totals"]["params"] == sum(p.numel() for p in model.parameters())
    assert all(st["tiles"] and st["receptive_field"] > 0 for st in data["stages"])
    json.dumps(data)


def test_backbones_and_exported_models(tmp_path):
    backbone = rk.create_model("resnet18", features_only=True, out_indices=(1, 2))
    data = explain_data(backbone, input_size=64)
    assert data["head"]["classes"] == 0 and "backbone" in data["cam_note"]
    weights = write_small_weights(tmp_path / "w.safetensors")
    assert cli("export", "--weights", weights, "--format", "onnx", "--out", tmp_path / "m.onnx").returncode == 0
    out = tmp_path / "exported.html"
    result = cli("explain", "--weights", tmp_path / "m.onnx", "--out", out)
    assert result.returncode == 0, result.stderr
    data = json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', out.read_text()).group(1))
    assert data["exported"] and "exported model" in data["note"] and not any(st["cam"] for st in data["stages"])
    assert [st["out"][-1] for st in data["stages"]] == [8, 4, 2, 1]  # 32 px, from the architecture


def test_notebook_display_and_cli_mistakes(tmp_path):
    html = rk.resnet50()._repr_html_()
    assert "25,557,032 parameters" in html and "conv5_x" in html and "<script" not in html
    assert "resnet18" in rk.explain("resnet18", input_size=32)
    for args, words in [
        (["explain", "--out", tmp_path / "a.html"], "one of the two"),
        (["explain", "resnet18", "--out", tmp_path / "a.txt"], "use a .html file name"),
        (["explain", "resnet18", "--image", tmp_path / "none.png", "--out", tmp_path / "a.html"], "none.png"),
        (["explain", "resnet999", "--out", tmp_path / "a.html"], "resnet999"),
    ]:
        result = cli(*args)
        assert result.returncode != 0 and words in result.stderr and "Traceback" not in result.stderr
    torch.manual_seed(0)
