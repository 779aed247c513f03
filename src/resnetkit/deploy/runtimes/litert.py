"""LiteRT (formerly TensorFlow Lite): the .tflite flatbuffer that Android, iOS and microcontroller apps
run, converted from PyTorch by Google's ``litert-torch``; its int8 path (PT2E quantization with
litert-torch's quantizer: int8 weights per channel, int8 activations calibrated on the calibration
images; the classifier in float) and the runner of LiteRT's own interpreter (``ai-edge-litert``,
XNNPACK kernels, the phone's CPU path).

The model card travels in the flatbuffer's metadata table, under ``resnetkit_card`` (raw JSON bytes in
a buffer; a phone app reads it with the model's metadata API). A .tflite has no checksum of its own,
so the card records the file's own hash (deploy/sealed.py) and a file damaged after export is refused
before the interpreter parses it.

The program takes one image (batch 1, NCHW float, as phones run it: litert-torch cannot lower a
dynamic batch through the classifier's flatten); larger batches run image by image. An int8 program
takes and returns int8 tensors (the converter folds the first and last quantize steps into the
interface); the runner quantizes with the scale and zero point the file records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn

from ...card import ModelCard
from ...errors import BadFile, DamagedModel
from ...fileio import write_bytes
from ...quiet import no_warnings, third_party_output
from ..common import last_line, need, threads
from ..exported import ExportedModel, card_of, runner_card
from ..sealed import intact, placeholder, seal

EXTRA = "litert"
CARD_KEY = b"resnetkit_card"
IDENTIFIER = b"TFL3"  # the flatbuffer's file identifier (bytes 4-8)


def _example(model: nn.Module, input_size: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(1, int(getattr(model, "in_chans", 3)), input_size, input_size, generator=gen)


def _quantizer():
    with third_party_output(), no_warnings():
        from litert_torch.quantize import pt2e_quantizer as pq

    quantizer = pq.PT2EQuantizer().set_global(pq.get_symmetric_quantization_config(is_per_channel=True))
    # The classifier stays in float, as on ONNX Runtime and ExecuTorch: ~0.05 % of a ResNet-50's work.
    # This quantizer matches the module types an exported graph records, which are their names.
    return quantizer.set_module_type(f"{nn.Linear.__module__}.{nn.Linear.__qualname__}", None)


def _quantized(model: nn.Module, input_size: int, calibration: Sequence[torch.Tensor], quantizer) -> nn.Module:
    need(("torchao",), EXTRA, "int8 on LiteRT")
    with third_party_output(), no_warnings():
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from ...progress import bar

    example = _example(model, input_size)
    with no_warnings():
        graph = torch.export.export(model, (example,)).module()
        prepared = prepare_pt2e(graph, quantizer)  # type: ignore[arg-type]
    images = torch.cat(list(calibration))
    shown = bar(total=len(images), desc="int8 calibration (LiteRT)", unit="img", leave=False)
    with torch.no_grad():
        for image in images.split(1):  # the program's batch: observers see what the phone will run
            prepared(image)
            shown.update(1)
    shown.close()
    with no_warnings():
        return convert_pt2e(prepared, fold_quantize=False)


def _with_card(data: bytes, embedded: bytes) -> bytes:
    """The flatbuffer with a metadata entry ``resnetkit_card`` whose buffer holds ``embedded``."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(embedded, dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = CARD_KEY.decode()
    entry.buffer = len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def to_flatbuffer(model: nn.Module, input_size: int, card: ModelCard, calibration=None) -> bytes:
    """The .tflite bytes of ``model`` (fp32, or int8 when the card says so), carrying ``card`` and the
    file's own hash."""
    need(("litert_torch", "ai_edge_litert"), EXTRA, "LiteRT export")
    with third_party_output(), no_warnings():
        import litert_torch
        from litert_torch.quantize.quant_config import QuantConfig

        source, config = model, None
        if card.precision == "int8":
            quantizer = _quantizer()
            source = _quantized(model, input_size, calibration or [], quantizer)
            config = QuantConfig(pt2e_quantizer=quantizer)
        converted = litert_torch.convert(source, (_example(model, input_size),), quant_config=config)
        embedded = placeholder(card.to_dict())
        data = _with_card(bytes(converted.model_content()), embedded)
    return seal(data, embedded)


# ---- reading ----------------------------------------------------------------------------------------


def read_card(data: bytes, path: Path) -> bytes:
    """The card's JSON bytes from the flatbuffer's metadata (b"" when it has none); DamagedModel when
    the file is not a readable flatbuffer. Pure Python: nothing native parses a file not yet checked."""
    if len(data) < 8 or data[4:8] != IDENTIFIER:
        raise BadFile(
            f"{path}: not a LiteRT flatbuffer (no TFL3 identifier: truncated, or not a .tflite); export it again"
        )
    from ai_edge_litert import schema_py_generated as schema

    try:
        model = schema.Model.GetRootAs(data, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() == CARD_KEY:
                return model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    except Exception as exc:  # flatbuffers raises whatever a bad offset leads to
        raise DamagedModel(
            f"{path}: the flatbuffer cannot be read ({type(exc).__name__}: cut short or damaged); export it again"
        ) from None
    return b""


class InterpreterRunner(nn.Module):
    """LiteRT's interpreter behind a module interface: float NCHW in, float logits out, one image per
    invocation; int8 interfaces quantized and dequantized with the file's own parameters."""

    def __init__(self, data: bytes, where: Path) -> None:
        super().__init__()
        need(("ai_edge_litert",), EXTRA, "LiteRT")
        self.program_bytes = data
        try:
            with third_party_output(), no_warnings():
                from ai_edge_litert.interpreter import Interpreter

                self.interpreter = Interpreter(model_content=data, num_threads=threads())
                self.interpreter.allocate_tensors()
        except Exception as exc:
            raise BadFile(f"{where}: LiteRT cannot load it ({last_line(exc)}); export it again") from None
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    def _one(self, image):
        import numpy as np

        value = image
        scale, zero = self.input["quantization"]
        if self.input["dtype"] != np.float32:
            value = np.clip(np.round(image / scale) + zero, -128, 127)
        self.interpreter.set_tensor(self.input["index"], value.astype(self.input["dtype"]))
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.output["index"])
        scale, zero = self.output["quantization"]
        return out.astype(np.float32) if self.output["dtype"] == np.float32 else (out.astype(np.float32) - zero) * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = x.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.cat([torch.from_numpy(self._one(images[i : i + 1]).copy()) for i in range(len(images))])


def build(
    folded: nn.Module, precision: str, input_size: int, calibration: Optional[Sequence[torch.Tensor]]
) -> InterpreterRunner:
    """A LiteRT runner of a BatchNorm-folded model, built in memory (fp32 or int8)."""
    card = runner_card(folded, "tflite", precision)
    return InterpreterRunner(to_flatbuffer(folded, input_size, card, calibration), Path("<memory>"))


# ---- files ------------------------------------------------------------------------------------------


def write(model: nn.Module, path: Path, card: ModelCard, input_size: int, calibration=None) -> None:
    write_bytes(path, to_flatbuffer(model, input_size, card, calibration), "LiteRT model")


def load(path: Path) -> ExportedModel:
    """A .tflite file on LiteRT's interpreter, checked against the hash its card records first."""
    need(("ai_edge_litert",), EXTRA, "LiteRT")
    data = path.read_bytes()
    raw = read_card(data, path)
    if not raw:  # someone else's .tflite: nothing says the preprocessing or the classes
        raise BadFile(
            f"{path}: a LiteRT model without resnetkit's model card (input size, preprocessing, classes); "
            "export it with resnetkit export --format tflite"
        )
    if not intact(data, raw):
        raise DamagedModel(
            f"{path}: the model does not match the hash recorded at export (the file was damaged after it "
            "was written); export it again"
        )
    run = InterpreterRunner(data, path)
    card = card_of(json.loads(raw.decode()), path, "tflite", run)
    return ExportedModel(run, card, path, runtime=run.interpreter)
