"""ONNX Runtime: the ONNX writer (torch.onnx), its int8 path (ONNX Runtime's static QDQ
quantization), the session and the runner. Runners are built in memory: the model goes to
``InferenceSession`` as bytes, never through a file.

Every ONNX file resnetkit writes records its model card in ``metadata_props``, with a hash of the
graph's initializers (the weights): a file damaged after export is refused when it is loaded, and so
is one whose recorded input size contradicts its graph."""

from __future__ import annotations

import hashlib
import io
import tempfile
import warnings
from pathlib import Path
from typing import List, Optional, Sequence

import torch
from torch import nn

from ...card import ModelCard
from ...errors import BadFile, DamagedModel
from ...fileio import write_bytes
from ..common import example_input, last_line, need, threads
from ..exported import ExportedModel, card_of

EXTRA = "deploy"
OPSET = 17


def _onnx():
    need(("onnx",), EXTRA, "ONNX")
    import onnx

    return onnx


def _ort():
    need(("onnxruntime",), EXTRA, "ONNX Runtime")
    import onnxruntime

    return onnxruntime


def initializer_digest(proto) -> str:
    """sha256 of the graph's initializers (names, types, shapes, values), in name order."""
    from onnx import numpy_helper

    h = hashlib.sha256()
    for init in sorted(proto.graph.initializer, key=lambda i: i.name):
        h.update(f"{init.name}|{init.data_type}|{tuple(init.dims)}|".encode())
        h.update(numpy_helper.to_array(init).tobytes())
    return h.hexdigest()


def with_card(proto, card: ModelCard) -> bytes:
    """The model's bytes with ``card`` (and the weights' hash) as its metadata_props."""
    del proto.metadata_props[:]
    for key, value in card.but(weights_sha256=initializer_digest(proto)).to_metadata().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def to_onnx(model: nn.Module, input_size: int, card: ModelCard) -> bytes:
    """``model`` as an ONNX model (opset 17, dynamic batch axis) carrying ``card``."""
    onnx = _onnx()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example_input(model, input_size),),
            buffer,  # type: ignore[arg-type]  # a file object is accepted
            dynamo=False,
            opset_version=OPSET,
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
        )
    return with_card(onnx.load_from_string(buffer.getvalue()), card)


def quantize_int8(fp32: bytes, calibration: Sequence[torch.Tensor], card: ModelCard) -> bytes:
    """Static int8 (QDQ, per-channel int8 weights, uint8 activations calibrated by min-max) with ONNX
    Runtime's quantization. Its API reads and writes files, so this one step works in a private
    temporary folder; the result comes back as bytes. The classifier stays in float: ~0.05 % of a
    ResNet-50's work, and quantizing it cost 2 points of top-1 agreement on a digits model."""
    onnx = _onnx()
    need(("onnxruntime",), EXTRA, "int8 on ONNX Runtime")
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from ...progress import bar

    images = torch.cat(list(calibration))
    shown = bar(total=len(images), desc="int8 calibration (ONNX Runtime)", unit="img", leave=False)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(images.split(16))

        def get_next(self):
            batch = next(self.batches, None)
            if batch is None:
                shown.close()
                return None
            shown.update(len(batch))
            return {"images": batch.numpy()}

    with tempfile.TemporaryDirectory(prefix="resnetkit-int8-") as tmp:
        prepared, out = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(onnx.load_from_string(fp32), str(prepared), skip_symbolic_shape=True)
        classifier = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type in ("Gemm", "MatMul")]
        quantize_static(
            str(prepared),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=classifier,
        )
        return with_card(onnx.load(str(out)), card)


def session(model: bytes):
    """An ONNX Runtime CPU session of the model's bytes, with the process's thread count."""
    ort = _ort()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads()
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


class SessionRunner(nn.Module):
    """An ONNX Runtime session behind a module interface: tensors in (whatever the graph takes), the
    first output out. ``runtime`` is the session, for inspection."""

    def __init__(self, sess, model: Optional[bytes] = None) -> None:
        super().__init__()
        self.runtime = sess
        self.model_bytes = model  # what the session was made from (the cache of optimized models saves it)
        self.input_name = sess.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.runtime.run(None, {self.input_name: x.detach().cpu().contiguous().numpy()})[0])


def runner(model: bytes, where: Path) -> SessionRunner:
    try:
        return SessionRunner(session(model), model)
    except ImportError:
        raise
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
        raise BadFile(f"{where}: not a valid ONNX model ({last_line(exc)}); export it again") from None


def _model_card(model: nn.Module, precision: str) -> ModelCard:
    card = getattr(model, "card", None)
    base = card if isinstance(card, ModelCard) else ModelCard(arch=None, num_classes=0)
    return base.but(format="onnx", precision=precision)


def build(
    folded: nn.Module, precision: str, input_size: int, calibration: Optional[Sequence[torch.Tensor]]
) -> SessionRunner:
    """The ONNX Runtime runner of an already BatchNorm-folded model (fp32 or int8), built in memory."""
    card = _model_card(folded, precision)
    data = to_onnx(folded, input_size, card)
    if precision == "int8":
        data = quantize_int8(data, calibration or [], card)
    return runner(data, Path("<memory>"))


def save_runner(run: nn.Module, folder: Path) -> List[str]:
    """The runner's ONNX model in ``folder`` (for the cache of optimized models); the files written."""
    (folder / "model.onnx").write_bytes(run.model_bytes)  # type: ignore[arg-type]
    return ["model.onnx"]


def load_runner(folder: Path, precision: str, blob_cache: Optional[Path] = None) -> nn.Module:
    """A runner of the model ``save_runner`` wrote."""
    path = folder / "model.onnx"
    return runner(path.read_bytes(), path)


# ---- files ------------------------------------------------------------------------------------------


def write(model: nn.Module, path: Path, card: ModelCard, input_size: int, calibration=None) -> None:
    data = to_onnx(model, input_size, card.but(precision="fp32") if card.precision == "int8" else card)
    if card.precision == "int8":
        data = quantize_int8(data, calibration or [], card)
    write_bytes(path, data, "ONNX file")


def _graph_input(proto) -> List[Optional[int]]:
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else None for d in dims]


def check_against_graph(proto, card: ModelCard, path: Path) -> None:
    """The recorded input size and channels must be what the graph takes."""
    shape = _graph_input(proto)
    if len(shape) != 4:
        return
    _, chans, height, width = shape
    size = card.input_size
    if (chans not in (None, card.in_chans)) or (height not in (None, size)) or (width not in (None, size)):
        graph = "x".join("?" if v is None else str(v) for v in shape[1:])
        raise DamagedModel(
            f"{path}: its metadata says the model takes {card.in_chans}x{size}x{size} images (in_chans, "
            f"preprocess.crop_size) but its graph takes {graph}; fix the metadata or export it again"
        )


def load(path: Path) -> ExportedModel:
    """An .onnx file on ONNX Runtime, its weights checked against the hash recorded at export."""
    onnx = _onnx()
    _ort()
    data = path.read_bytes()
    try:
        proto = onnx.load_from_string(data)
    except Exception as exc:  # protobuf's DecodeError and onnx's own
        raise BadFile(f"{path}: not a valid ONNX model ({last_line(exc)}: truncated?); export it again") from None
    meta = ModelCard.decode_metadata({p.key: p.value for p in proto.metadata_props})
    recorded = meta.get("weights_sha256")
    if isinstance(recorded, str) and recorded != initializer_digest(proto):
        raise DamagedModel(
            f"{path}: its weights do not match the hash recorded at export (the file was damaged after it was "
            "written); export it again"
        )
    run = runner(data, path)
    card = card_of(meta, path, "onnx", run)
    check_against_graph(proto, card, path)
    return ExportedModel(run, card, path, runtime=run.runtime)
