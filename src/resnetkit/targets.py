"""The deploy targets as data: every runtime and every file format resnetkit writes, one row each.

This is the one table the rest derives from: the card's allowed formats and precisions (card.py), the
resolver's suffixes (weights/resolve.py), the command line's choices (cli/), serve's configuration,
bench's modes, optimize's candidates, the version stamp of cached models and the extras named when a
package is missing. It is data only (no torch, no runtime), so the bottom layer and the command line
read it for free; ``deploy/formats.py`` adds to each row how it is built, written and loaded (the
functions of its leaf module ``deploy/runtimes/<runtime>.py``, named here by their names).

Adding a runtime: its leaf module, one row here per runtime and per format, its extra in pyproject.toml.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

# Every precision some target runs, in the order choices list them.
PRECISIONS: Tuple[str, ...] = ("fp32", "bf16", "fp16", "int8")


@dataclass(frozen=True)
class RuntimeRow:
    name: str
    label: str  # how messages name it
    precisions: Tuple[str, ...]  # what it runs (in memory, and from its files)
    packages: Tuple[str, ...]  # the modules it needs to run at all
    int8_packages: Tuple[str, ...]  # and to quantize
    extra: Optional[str]  # the pip extra that installs them
    keeps: bool  # its runners are kept in the cache of optimized models (leaf.save_runner/load_runner)
    native_threads: bool  # runs thread pools of its own: forked decode workers could deadlock
    candidate: bool  # optimize() may pick it for predict/serve/eval of PyTorch weights on this machine
    runs_here: bool = True  # False: its files are checked here but run only on its devices (Core ML)

    @property
    def version_packages(self) -> Tuple[str, ...]:
        """The distributions whose versions a converted model depends on."""
        return self.packages + self.int8_packages


@dataclass(frozen=True)
class FormatRow:
    name: str  # --format NAME, and the card's "format"
    suffix: str  # the file name's ending; "" for a folder (OpenVINO IR)
    runtime: str  # the runtime that runs it
    precisions: Tuple[str, ...]  # what it stores
    writer: str  # the leaf's function (model, path, card, input_size, calibration)
    loader: Optional[str]  # the leaf's function (path) -> runner; None: not an exported artifact
    what: str  # how the docs and errors call a file of it
    marker: str = ""  # a folder format: the file inside that names it (OpenVINO IR: model.xml)


RUNTIME_ROWS: Tuple[RuntimeRow, ...] = (
    # PyTorch builds in milliseconds: nothing to keep. The others' runners are kept (runner_cache.py).
    RuntimeRow("pytorch", "PyTorch", ("fp32", "bf16"), (), (), None, False, False, True),
    RuntimeRow("onnxruntime", "ONNX Runtime", ("fp32", "int8"), ("onnxruntime", "onnx"), (), "deploy", True, True, True),
    RuntimeRow("openvino", "OpenVINO", ("fp32", "bf16", "int8"), ("openvino",), ("nncf",), "openvino", True, True, True),
    # Edge runtimes: they run their files here (verification, predict, eval, bench, serve), but are
    # built for phones and boards, so optimize() does not offer them for server-side jobs.
    RuntimeRow("executorch", "ExecuTorch", ("fp32", "int8"), ("executorch",), ("torchao",), "executorch", False, False, False),
    RuntimeRow("litert", "LiteRT", ("fp32", "int8"), ("ai_edge_litert",), ("litert_torch", "torchao"), "litert", False, False, False),
    RuntimeRow("coreml", "Core ML", ("fp32", "fp16"), ("coremltools",), (), "coreml", False, False, False, runs_here=False),
)  # fmt: skip

FORMAT_ROWS: Tuple[FormatRow, ...] = (
    FormatRow("onnx", ".onnx", "onnxruntime", ("fp32", "int8"), "write", "load", "an exported ONNX model"),
    FormatRow("openvino", "", "openvino", ("fp32", "bf16", "int8"), "write", "load", "an OpenVINO IR model", marker="model.xml"),
    FormatRow("pt2", ".pt2", "pytorch", ("fp32",), "write_pt2", "load_pt2", "an exported torch.export program"),
    FormatRow("torchscript", ".pt", "pytorch", ("fp32",), "write_torchscript", "load_torchscript", "a TorchScript program"),
    FormatRow("safetensors", ".safetensors", "pytorch", ("fp32",), "write_safetensors", None, "a safetensors weights file"),
    FormatRow("executorch", ".pte", "executorch", ("fp32", "int8"), "write", "load", "an ExecuTorch program"),
    FormatRow("tflite", ".tflite", "litert", ("fp32", "int8"), "write", "load", "a LiteRT model"),
    FormatRow("coreml", ".mlpackage", "coreml", ("fp32", "fp16"), "write", "load", "a Core ML package", marker="Manifest.json"),
)  # fmt: skip

RUNTIME_NAMES: Tuple[str, ...] = tuple(r.name for r in RUNTIME_ROWS)
# The formats a card records: a PyTorch model in memory, or one of the files.
CARD_FORMATS: Tuple[str, ...] = ("pytorch", *(f.name for f in FORMAT_ROWS))
EXPORT_FORMATS: Tuple[str, ...] = tuple(f.name for f in FORMAT_ROWS)
# What predict, eval and serve run PyTorch weights at (the candidates' precisions; fp16 is Core ML's).
RUN_PRECISIONS: Tuple[str, ...] = tuple(
    p for p in PRECISIONS if any(p in r.precisions for r in RUNTIME_ROWS if r.candidate)
)
# What --backend takes (predict, serve, eval): the fastest (auto), every candidate timed (measure), or one.
BACKEND_CHOICES: Tuple[str, ...] = ("auto", "measure", *(r.name for r in RUNTIME_ROWS if r.candidate))
# File endings of exported artifacts that are not weights (a .pt may be a checkpoint), with what they are;
# an OpenVINO IR folder is recognised by its .xml.
EXPORTED_SUFFIXES: Dict[str, str] = {
    **{f.suffix: f.what for f in FORMAT_ROWS if f.suffix not in ("", ".pt", ".safetensors")},
    ".xml": next(f.what for f in FORMAT_ROWS if f.name == "openvino"),
}
# Modules whose thread pools make forking a process that loaded them unsafe.
NATIVE_THREAD_MODULES: Tuple[str, ...] = tuple(p for r in RUNTIME_ROWS if r.native_threads for p in r.packages[:1])

# Test-time augmentation a runner can wrap the network in (predict, eval): none, or the mean of the
# logits of the image and its mirror image (deploy/fused.py: FlipAverage).
TTA_CHOICES: Tuple[str, ...] = ("none", "flip")
