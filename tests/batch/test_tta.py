"""Test-time augmentation (--tta flip): the logits are the mean of the image's and its mirror image's,
for PyTorch weights and for an exported file, in predict's tables and in eval."""

import json

import pytest
from PIL import ImageOps

from ..clirun import cli
from ..imagegen import class_image


def _logits(table):
    rows = [json.loads(line) for line in table.read_text().splitlines()]
    return {r["path"].rsplit("/", 1)[-1]: r["logits"] for r in rows}


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """Three 16 px images (the digits run's input size: no resampling) and their mirror images."""
    root = tmp_path_factory.mktemp("tta")
    (root / "plain").mkdir()
    (root / "mirrored").mkdir()
    for i in range(3):
        image = class_image(i, i, size=16)
        image.save(root / "plain" / f"{i}.png")
        ImageOps.mirror(image).save(root / "mirrored" / f"{i}.png")
    return root


@pytest.mark.parametrize("export", [False, True], ids=["weights", "onnx"])
def test_flip_averages_the_logits_of_the_image_and_its_mirror(digits_run, pictures, tmp_path, export):
    weights = digits_run
    if export:
        weights = tmp_path / "m.onnx"
        assert cli("export", "--weights", digits_run, "--format", "onnx", "--out", weights).returncode == 0
    tables = {}
    for name, folder, tta in (("plain", "plain", "none"), ("mirrored", "mirrored", "none"), ("flip", "plain", "flip")):
        tables[name] = tmp_path / f"{name}.jsonl"
        result = cli(
            "predict", pictures / folder, "--weights", weights, "--logits", "--tta", tta, "--out", tables[name]
        )
        assert result.returncode == 0, result.stderr
    plain, mirrored, flip = (_logits(tables[n]) for n in ("plain", "mirrored", "flip"))
    for key in plain:
        mean = [(a + b) / 2 for a, b in zip(plain[key], mirrored[key])]
        assert max(abs(a - b) for a, b in zip(flip[key], mean)) < 1e-4, key
        assert max(abs(a - b) for a, b in zip(flip[key], plain[key])) > 1e-3  # the digits are not symmetric
    # A table is one job: resuming it with another --tta would mix two kinds of rows.
    again = cli("predict", pictures / "plain", "--weights", weights, "--logits", "--out", tables["flip"], "--resume")
    assert again.returncode == 1 and "tta" in again.stderr and len(again.stderr.strip().splitlines()) == 1


def test_eval_says_it_ran_with_tta(digits_run, tmp_path):
    plain = json.loads(cli("eval", "--weights", digits_run, "--json", "--out", tmp_path / "a").stdout)
    flip = json.loads(cli("eval", "--weights", digits_run, "--json", "--tta", "flip", "--out", tmp_path / "b").stdout)
    assert plain["tta"] == "none" and flip["tta"] == "flip" and "tta flip" in flip["ran_on"]
    assert flip["loss"] != plain["loss"]
    result = cli("eval", "--weights", digits_run, "--tta", "rotate")
    assert result.returncode == 2 and "--tta" in result.stderr
