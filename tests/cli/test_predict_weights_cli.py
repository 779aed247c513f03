"""`resnetkit predict` with catalog/file weights on a directory of good and broken images."""

import json
import os

import numpy as np
import pytest
import torch
import torchvision.models as tvm
from PIL import Image

from resnetkit.weights.catalog import get_weights

from ..clirun import cli
from ..imagegen import class_image, write_broken_files


def run(*args, env=None, monkeypatch=None):
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    return cli(*args)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    class_image(0, 0, size=64).save(d / "rgb.jpg")
    class_image(1, 0, size=64).convert("L").save(d / "gray.png")
    class_image(2, 0, size=64).convert("RGBA").save(d / "alpha.png")
    class_image(3, 0, size=64).convert("P").save(d / "palette.gif")
    class_image(0, 1, size=64).convert("CMYK").save(d / "cmyk.jpg")
    Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).save(d / "deep16.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    class_image(1, 1, size=64).save(d / "rotated.jpg", exif=exif)
    write_broken_files(d)
    return d


@pytest.fixture(scope="module")
def catalog_cache(tmp_path_factory):
    """A cache holding (random) resnet18 weights under the catalog's file name, as if downloaded."""
    home = tmp_path_factory.mktemp("home")
    torch.manual_seed(0)
    torch.save(tvm.resnet18().state_dict(), home / get_weights("resnet18.IMAGENET1K_V1").file_name)
    return home


def test_predict_catalog_weights_mixed_directory(images, catalog_cache, monkeypatch):
    env = dict(RESNETKIT_HOME=str(catalog_cache), RESNETKIT_OFFLINE="1")
    proc = run(
        "predict",
        images,
        images / "missing.jpg",
        "--weights",
        "resnet18.IMAGENET1K_V1",
        "--json",
        "--topk",
        "3",
        "--batch-size",
        "4",
        env=env,
        monkeypatch=monkeypatch,
    )
    assert proc.returncode == 1
    rows = {os.path.basename(r["path"]): r for r in map(json.loads, proc.stdout.splitlines())}
    good = ["rgb.jpg", "gray.png", "alpha.png", "palette.gif", "cmyk.jpg", "deep16.png", "rotated.jpg"]
    for name in good:
        assert len(rows[name]["top"]) == 3, rows[name]
        probs = [t["prob"] for t in rows[name]["top"]]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
    for name, why in [
        ("empty.jpg", "empty file"),
        ("notes.png", "not an image"),
        ("truncated.png", "truncated"),
        ("missing.jpg", "no such file"),
    ]:
        assert why in rows[name]["error"]
    assert "4 of 11 files could not be read" in proc.stderr


def test_predict_plain_text_output_and_local_file(images, tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "my_resnet34.pth"
    torch.save(tvm.resnet34().state_dict(), path)  # a bare torchvision checkpoint: arch is recognised
    proc = run("predict", images / "rgb.jpg", "--weights", path, "--topk", "2")
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert line.startswith(str(images / "rgb.jpg") + ": ") and line.count("%") == 2


def test_predict_bad_weights_one_line(images, tmp_path):
    proc = run("predict", images / "rgb.jpg", "--weights", "resnet50.IMAGENET1K_V9")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "resnetkit weights list" in proc.stderr
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    proc = run("predict", images / "rgb.jpg", "--weights", bad)
    assert proc.returncode == 1 and "not a weights file" in proc.stderr
