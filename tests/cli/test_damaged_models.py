"""Models that load but would compute garbage are refused in one line naming what is wrong: non-finite
weights, a file damaged after it was written, metadata that does not parse or contradicts the graph;
an exported model where weights are expected and a numpy array where a tensor is are named too."""

import json

import numpy as np
import pytest
import torch

import resnetkit as rk
from resnetkit.card import ModelCard
from resnetkit.errors import BadFile, DamagedModel, InvalidOption

from ..clirun import cli
from ..imagegen import class_image, write_small_weights
from .test_hardening import one_line_error


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "x.png"
    class_image(0, 0, size=40).save(path)
    return path


def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, image):
    state = rk.resnet18(num_classes=3).state_dict()
    state["layer2.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    state["fc.bias"][1] = float("inf")
    torch.save(state, tmp_path / "nan.pt")
    for command in (["predict", image], ["eval"]):
        line = one_line_error(cli(*command, "--weights", tmp_path / "nan.pt"))
        assert "tensor layer2.0.conv1.weight holds 1 non-finite values (NaN or Inf)" in line, line
    with pytest.raises(DamagedModel, match="non-finite"):
        rk.resnet18(num_classes=3, weights=str(tmp_path / "nan.pt"))


def test_a_weights_file_damaged_after_it_was_written(tmp_path, image):
    """Files resnetkit writes with a card (a run's model.safetensors, export, weights convert) record
    a hash of their tensors."""
    path = tmp_path / "w.safetensors"
    model = rk.resnet18(num_classes=3)
    rk.save_safetensors(model.state_dict(), path, model.card.but(classes=("a", "b", "c")))
    assert cli("predict", image, "--weights", path).returncode == 0
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one bit pattern inverted in the middle of the tensors: it still parses
    path.write_bytes(bytes(data))
    line = one_line_error(cli("predict", image, "--weights", path))
    assert "do not match the hash recorded when it was written" in line


@pytest.mark.parametrize(
    "preprocess, words",
    [
        ({"resize_size": 36, "crop_size": 32, "mean": "0.5", "std": [0.25] * 3}, "preprocess.mean must be a list"),
        ({"resize_size": 0, "crop_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3}, "preprocess.resize_size must be"),
        ({"resize_size": 36, "crop_size": 32, "mean": [0.5] * 3, "std": [0, 1, 1]}, "preprocess.std must be > 0"),
        ({"resize_size": 36, "crop_size": 32, "mean": [0.5] * 3}, "preprocess lacks std"),
        ({"resize_size": 36, "crop_size": 32, "mean": [0.5] * 3, "std": [0.2] * 3, "interpolation": "cubic"}, "cubic"),
    ],
)
def test_metadata_that_does_not_parse_is_refused_by_field(tmp_path, image, preprocess, words):
    """Never replaced by ImageNet's defaults: the model would see the wrong input and answer anyway."""
    path = tmp_path / "w.safetensors"
    state = rk.resnet18(num_classes=3).state_dict()
    rk.save_safetensors(state, path, {"arch": "resnet18", "classes": ["a", "b", "c"], "preprocess": preprocess})
    line = one_line_error(cli("predict", image, "--weights", path))
    assert words in line and "does not parse" in line and str(path) in line, line
    from resnetkit.serve import ServeConfig, load_service

    with pytest.raises(BadFile, match="does not parse"):  # serve refuses at start-up, not per request
        load_service(ServeConfig(weights=str(path)), log=lambda s: None)


def test_an_onnx_file_whose_metadata_contradicts_its_graph(tmp_path, image):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    weights = write_small_weights(tmp_path / "w.safetensors")
    assert cli("export", "--weights", weights, "--format", "onnx", "--out", tmp_path / "m.onnx").returncode == 0
    proto = onnx.load(str(tmp_path / "m.onnx"))
    for p in proto.metadata_props:
        if p.key == "preprocess":
            p.value = json.dumps(dict(json.loads(p.value), resize_size=45, crop_size=40))
    onnx.save(proto, str(tmp_path / "lying.onnx"))
    line = one_line_error(cli("predict", image, "--weights", tmp_path / "lying.onnx"))
    assert "metadata says the model takes 3x40x40 images" in line and "graph takes 3x32x32" in line, line


def test_exported_folders_as_weights_and_numpy_inputs_are_named(tmp_path):
    folder = tmp_path / "ir"
    folder.mkdir()
    (folder / "model.xml").write_text("<net/>")
    (folder / "model.bin").write_bytes(b"\0" * 8)
    with pytest.raises(BadFile, match="is an OpenVINO IR export .* not weights"):
        rk.resnet18(weights=str(folder))
    model = rk.resnet18(num_classes=3).eval()
    with pytest.raises(
        InvalidOption, match=r"takes a torch.Tensor .* got numpy.ndarray; convert it with torch.from_numpy"
    ):
        model(np.zeros((1, 3, 32, 32), dtype=np.float32))
    with pytest.raises(InvalidOption, match="got builtins.list"):
        model([[0.0]])


class NaNForOne(torch.nn.Module):
    """Finite weights that overflow on one input: the second image's row comes out NaN."""

    def __init__(self, model):
        super().__init__()
        self.model, self.card, self.in_chans = model, model.card, model.in_chans

    def forward(self, x):
        out = self.model(x)
        out[1:2] = float("nan")
        return out


def test_a_non_finite_output_row_is_that_images_error(tmp_path):
    from resnetkit.batch.predictor import Predictor
    from resnetkit.engine.evaluate import evaluate

    model = NaNForOne(rk.resnet18(num_classes=3).eval())
    predictor = Predictor(model.card, model, False, False, "pytorch", "fp32", "test")
    items = [(i, f"{i}.png", torch.zeros(32, 32, 3, dtype=torch.uint8), None) for i in range(3)]
    rows = predictor.rows(items, topk=2)
    assert [r["error"] is None for r in rows] == [True, False, True]
    assert "output is not finite" in rows[1]["error"] and "top_classes" not in rows[1]
    x = torch.randn(3, 3, 32, 32)
    result = evaluate(model, [(x, torch.tensor([0, 1, 2]))], 3, torch.device("cpu"), amp="none", channels_last=False)
    assert result.nonfinite == 1 and result.count == 3 and result.confusion.sum() == 2 and np.isfinite(result.loss)


def test_cards_are_strict_but_read_the_files_of_the_last_release():
    old = {"arch": "resnet18", "num_classes": 3, "classes": ["a", "b", "c"], "input_size": 64, "precision": "int8"}
    card = ModelCard.from_metadata(old)
    assert card.preprocess.crop_size == 64 and card.precision == "int8" and card.classes == ("a", "b", "c")
    assert ModelCard.from_metadata(card.to_dict()) == card
    with pytest.raises(BadFile, match="num_classes must be an integer"):
        ModelCard.from_metadata({"arch": "resnet18", "num_classes": "three"})
