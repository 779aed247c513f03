"""Running exported artifacts: an ONNX file (ONNX Runtime), an OpenVINO IR folder (OpenVINO), a
``torch.export`` program (.pt2) or a TorchScript file, each behind one module interface that
carries the metadata written at export (arch, classes, preprocessing) as ``pretrained_cfg``.

``resnetkit predict|eval --weights model.onnx`` (or ``model.pt2``, ``model_openvino/``) detect the
format and run it on its runtime; the runtimes are optional extras, and a missing one is named.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import torch
from torch import nn

from ..errors import BadFile, MissingDependency

EXTRAS = {"onnx": "deploy", "openvino": "openvino"}


def exported_format(path: Path) -> Optional[str]:
    """'onnx', 'openvino', 'pt2' or 'torchscript' for an exported artifact; None for anything else."""
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir():
        # An IR folder even when its .bin is missing: the loader names what is missing, rather than
        # the folder being taken for a training run without weights.
        return "openvino" if any(path.glob("*.xml")) else None
    if not path.is_file():
        return None
    if suffix == ".onnx":
        return "onnx"
    if suffix == ".xml":
        return "openvino"
    if suffix == ".pt2":
        return "pt2"
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    if any("/code/" in n for n in names):
        return "torchscript"
    if any(n.endswith(("serialized_exported_program.json", "models/model.json")) for n in names):
        return "pt2"
    return None


def _missing(fmt: str, package: str) -> MissingDependency:
    return MissingDependency(f"running a {fmt} model needs {package}: pip install 'resnetkit[{EXTRAS.get(fmt, fmt)}]'")


class ExportedModel(nn.Module):
    """An exported model run by its own runtime, with a PyTorch-module interface (CPU float
    tensors in, logits out) and the export's metadata as ``pretrained_cfg``."""

    def __init__(
        self,
        run: Callable[[torch.Tensor], torch.Tensor],
        meta: Dict[str, Any],
        fmt: str,
        path: Path,
        runtime: Any = None,
    ):
        super().__init__()
        self._run = run
        self.runtime = runtime  # the runtime's own object (an ONNX Runtime session, ...), for inspection
        self.format, self.path = fmt, Path(path)
        self.arch = meta.get("arch")
        self.in_chans = int(meta.get("in_chans") or 3)
        size = int(meta.get("input_size") or 224)
        preprocess = meta.get("preprocess") or {
            "resize_size": size * 8 // 7,
            "crop_size": size,
            "interpolation": "bilinear",
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
        }
        num_classes = meta.get("num_classes")
        if not num_classes:  # an export without our metadata: ask the model
            size = int(preprocess["crop_size"])
            with torch.no_grad():
                num_classes = self(torch.zeros(1, self.in_chans, size, size)).shape[1]
        self.num_classes = int(num_classes)
        classes = meta.get("classes")
        self.pretrained_cfg = {
            "architecture": self.arch,
            "source": str(path),
            "format": fmt,
            "num_classes": self.num_classes,
            "classes": list(classes) if classes and len(classes) == self.num_classes else None,
            "in_chans": self.in_chans,
            "preprocess": dict(preprocess),
            "precision": meta.get("precision", "fp32"),
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x.detach().to("cpu", torch.float32).contiguous())

    def extra_repr(self) -> str:
        return f"format={self.format!r}, path={str(self.path)!r}"


def _last_line(exc: Exception) -> str:
    """The informative part of a runtime's exception: OpenVINO's first lines name its own source file."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _onnx(path: Path) -> ExportedModel:
    from .export import onnx_session

    try:
        session = onnx_session(path)
    except MissingDependency:
        raise
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
        raise BadFile(f"{path}: not a valid ONNX model ({_last_line(exc)}); export it again") from None
    raw = session.get_modelmeta().custom_metadata_map
    meta = {}
    for key, value in raw.items():
        try:
            meta[key] = json.loads(value)
        except ValueError:
            meta[key] = value
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {name: x.numpy()})[0])

    return ExportedModel(run, meta, "onnx", path, runtime=session)


def _openvino(path: Path) -> ExportedModel:
    try:
        import openvino as ov
    except ImportError:
        raise _missing("openvino", "openvino") from None
    xml = path if path.suffix.lower() == ".xml" else next(iter(sorted(path.glob("*.xml"))))
    weights = xml.with_suffix(".bin")
    if not weights.is_file():
        raise BadFile(
            f"{xml}: OpenVINO IR without its weights file {weights.name}: put it beside the .xml, or export again"
        )
    core = ov.Core()
    try:
        model = core.read_model(str(xml))
    except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
        raise BadFile(f"{xml}: not a valid OpenVINO IR model ({_last_line(exc)}); export it again") from None
    meta: Dict[str, Any] = {}
    if model.has_rt_info(["resnetkit", "meta"]):
        meta = json.loads(model.get_rt_info(["resnetkit", "meta"]).astype(str))
    from .backends import OpenVINORunner

    runner = OpenVINORunner(model, str(meta.get("precision", "fp32")))

    def run(x: torch.Tensor) -> torch.Tensor:
        return runner(x)

    return ExportedModel(run, meta, "openvino", xml, runtime=runner)


def _pt2(path: Path) -> ExportedModel:
    import logging

    extra = {"resnetkit.json": ""}
    log = logging.getLogger("torch.export")
    level = log.level
    log.setLevel(logging.ERROR)  # it logs the reader's failure as a warning before raising it
    try:
        program = torch.export.load(str(path), extra_files=extra)
    except Exception as exc:  # torch.export raises a variety of types for foreign files
        raise BadFile(
            f"{path}: not a readable torch.export program ({_last_line(exc)}: truncated, or not a .pt2); export it again"
        ) from None
    finally:
        log.setLevel(level)
    meta = json.loads(extra["resnetkit.json"]) if extra["resnetkit.json"] else {}
    module = program.module()

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(x)

    return ExportedModel(run, meta, "pt2", path)


def _torchscript(path: Path) -> ExportedModel:
    import warnings

    extra = {"resnetkit.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load announces its deprecation
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    meta = json.loads(extra["resnetkit.json"]) if extra["resnetkit.json"] else {}
    module.eval()

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(x)

    return ExportedModel(run, meta, "torchscript", path)


LOADERS = {"onnx": _onnx, "openvino": _openvino, "pt2": _pt2, "torchscript": _torchscript}


def load_exported(path: Path) -> ExportedModel:
    """The exported artifact at ``path`` on its runtime; BadFile if it is not one."""
    fmt = exported_format(Path(path))
    if fmt is None:
        raise BadFile(f"{path}: not an exported model (ONNX, OpenVINO IR, .pt2 or TorchScript)")
    return LOADERS[fmt](Path(path))
