"""LiteRT (.tflite, run here by LiteRT's own interpreter): exported, verified, run by every reader,
its card in the flatbuffer's metadata, damaged files refused before the interpreter parses them."""

import json

import pytest
import torch

import resnetkit as rk
from resnetkit.deploy import export
from resnetkit.deploy.formats import FORMATS, load_exported
from resnetkit.errors import BadFile, DamagedModel, MissingDependency

from ..clirun import cli
from ..damage import flip_middle
from ..imagegen import class_image
from ..models.helpers import randomize_norm_stats

SIZE = 32
pytest.importorskip("ai_edge_litert")
pytest.importorskip("litert_torch")


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    model = rk.create_model("test_resnet", num_classes=3).eval()
    randomize_norm_stats(model)
    return model, model.card.but(classes=("cat", "dog", "owl"))


def _metadata(path):
    """The flatbuffer's metadata entries, read as a phone app's metadata API reads them."""
    from ai_edge_litert import schema_py_generated as schema

    data = path.read_bytes()
    model = schema.Model.GetRootAs(data, 0)
    entries = (model.Metadata(i) for i in range(model.MetadataLength()))
    return {e.Name().decode(): model.Buffers(e.Buffer()).DataAsNumpy().tobytes() for e in entries}


def test_litert_runs_checks_its_hash_and_predicts(small, tmp_path):
    model, card = small
    path = tmp_path / "m.tflite"
    report = export(model, path, metadata=card, input_size=SIZE)
    assert report.format == "tflite" and report.max_abs_diff is not None
    runner = load_exported(path)
    assert runner.card.classes == ("cat", "dog", "owl") and runner.card.format == "tflite"
    x = torch.randn(5, 3, SIZE, SIZE)  # the program takes one image: a batch runs image by image
    with torch.no_grad():
        want = model(x)
        assert (runner(x) - want).abs().max() <= 1e-4 * max(1.0, float(want.abs().max()))
    # LiteRT's own interpreter, as an app holds it: NCHW float in, logits out; the card in the metadata.
    details = runner.runtime.get_input_details()[0]
    assert list(details["shape"]) == [1, 3, SIZE, SIZE]
    card_json = json.loads(_metadata(path)["resnetkit_card"])
    assert card_json["classes"] == ["cat", "dog", "owl"] and len(card_json["weights_sha256"]) == 64
    # predict and weights verify read it like any other export.
    class_image(1, 0, size=40).save(tmp_path / "x.png")
    result = cli("predict", tmp_path / "x.png", "--weights", path, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["top"][0]["class"] in ("cat", "dog", "owl")
    result = cli("weights", "verify", path)
    assert result.returncode == 0 and "its recorded hash matches" in result.stdout, result.stdout + result.stderr
    # Damaged: cut short, changed in the middle (same size), or not a flatbuffer: one line each.
    (tmp_path / "cut.tflite").write_bytes(path.read_bytes()[:4000])
    flip_middle(path, tmp_path / "flipped.tflite")
    (tmp_path / "text.tflite").write_text("not a model")
    with pytest.raises(DamagedModel, match="cut.tflite: the flatbuffer cannot be read"):
        load_exported(tmp_path / "cut.tflite")
    with pytest.raises(DamagedModel, match="flipped.tflite: the model does not match the hash"):
        load_exported(tmp_path / "flipped.tflite")
    with pytest.raises(BadFile, match="text.tflite: not a LiteRT flatbuffer"):
        load_exported(tmp_path / "text.tflite")
    result = cli("predict", tmp_path / "x.png", "--weights", tmp_path / "flipped.tflite")
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    # Someone else's .tflite (no card): refused in one line, not run on a guessed input size.
    from resnetkit.deploy.runtimes import litert

    bare = tmp_path / "theirs.tflite"
    bare.write_bytes(_without_card(path.read_bytes(), litert.CARD_KEY))
    with pytest.raises(BadFile, match="without resnetkit's model card"):
        load_exported(bare)


def _without_card(data: bytes, key: bytes) -> bytes:
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    model.metadata = [m for m in model.metadata if m.name not in (key, key.decode())]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def test_a_missing_litert_is_named_with_its_extra(small, tmp_path, monkeypatch):
    model, card = small
    from resnetkit.deploy import common

    monkeypatch.setattr(common, "importable", lambda name: False)
    out = tmp_path / f"m{FORMATS['tflite'].suffix}"
    with pytest.raises(MissingDependency, match=r"resnetkit\[litert\]"):
        export(model, out, metadata=card, input_size=SIZE)
    assert not out.exists()
