"""OpenVINO: conversion from PyTorch (in memory), NNCF int8, the compiled runner, and the IR folder
(model.xml + model.bin) with the model card in its rt_info.

The card records a hash of the model's constants (its weights) at export: an IR whose .bin was
overwritten afterwards reads and runs, so the hash is checked when it is loaded."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import warnings
from pathlib import Path
from typing import List, Optional, Sequence

import torch
from torch import nn

from ...card import ModelCard
from ...errors import BadFile, DamagedModel, InvalidOption, MissingDependency
from ...fileio import make_dir
from ...quiet import third_party_output
from ..common import example_input, input_shape, last_line, need, threads
from ..exported import ExportedModel, card_of

EXTRA = "openvino"
RT_INFO = ["resnetkit", "meta"]  # where the card lives in the IR's rt_info


def _ov():
    need(("openvino",), EXTRA, "OpenVINO")
    import openvino as ov

    return ov


def has_bf16() -> bool:
    """Whether this CPU runs bf16 in OpenVINO (AVX512-BF16 or AMX)."""
    return "BF16" in _ov().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def convert(model: nn.Module, input_size: int):
    """The model converted to an OpenVINO model in memory, with a dynamic batch axis."""
    ov = _ov()
    with warnings.catch_warnings(), third_party_output():
        warnings.simplefilter("ignore")
        # share_weights=False: by default the OpenVINO model (and what is compiled from it) reads the
        # weights from the PyTorch tensors' memory, which is freed once ``model`` goes (build() passes a
        # temporary folded copy): wrong logits, then a segfault in a later allocation.
        ov_model = ov.convert_model(model, example_input=example_input(model, input_size), share_weights=False)
    ov_model.reshape({ov_model.input(0): ov.PartialShape(input_shape(model, input_size))})
    return ov_model


def quantize(ov_model, calibration: Sequence[torch.Tensor]):
    """NNCF's default post-training quantization (int8 weights per channel, calibrated activations)
    of an OpenVINO model, on every calibration image."""
    import logging

    need(("nncf",), EXTRA, "int8 on OpenVINO")
    # NNCF makes torch look for CUDA and log that it found none, and draws progress bars on
    # stdout: say nothing of either.
    cpp_log = logging.getLogger("torch.utils.cpp_extension")
    level = cpp_log.level
    cpp_log.setLevel(logging.ERROR)
    try:
        import nncf

        nncf.set_log_level(logging.ERROR)
        batches = [b.numpy() for b in calibration]
        count = sum(len(b) for b in batches)
        with third_party_output():
            return nncf.quantize(ov_model, nncf.Dataset(batches), subset_size=max(count, 1))
    finally:
        cpp_log.setLevel(level)


def constants_digest(ov_model) -> str:
    """sha256 of the model's constants (shapes, types, values) in graph order: its weights."""
    h = hashlib.sha256()
    for op in ov_model.get_ordered_ops():
        if op.get_type_name() == "Constant":
            h.update(f"{op.get_output_element_type(0)}|{op.get_output_partial_shape(0)}|".encode())
            h.update(op.get_data().tobytes())
    return h.hexdigest()


class OpenVINORunner(nn.Module):
    """A compiled OpenVINO model behind a module interface (CPU float tensors in, logits out).

    Compiled with the LATENCY hint (one stream, all cores on one request: what a single caller
    wants) and an infer request per calling thread, reused across its calls (a request shared by two
    threads would mix their inputs and outputs), its input shared with the tensor's memory rather
    than copied."""

    def __init__(self, ov_model, precision: str = "fp32", blob_cache: Optional[Path] = None) -> None:
        super().__init__()
        ov = _ov()
        hint = {"bf16": "bf16"}.get(precision, "f32")  # int8 models keep f32 for the parts left in float
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads()}
        if blob_cache is not None:  # OpenVINO's own cache of compiled blobs: a model read again compiles at once
            config["CACHE_DIR"] = str(blob_cache)
        self.compiled = ov.Core().compile_model(ov_model, "CPU", config)
        self.ov_model, self.precision = ov_model, precision
        self._local = threading.local()

    @property
    def request(self):
        """This thread's infer request."""
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        return request

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ov = _ov()
        array = x.detach().cpu().contiguous().numpy()
        expected = self.compiled.input(0).get_partial_shape()
        if not expected.compatible(ov.PartialShape(list(array.shape))):
            raise InvalidOption(f"input of shape {list(array.shape)} does not fit this model's input {expected}")
        request = self.request
        request.infer({0: array}, share_inputs=True)
        return torch.from_numpy(request.get_output_tensor(0).data.copy())


def build(
    folded: nn.Module, precision: str, input_size: int, calibration: Optional[Sequence[torch.Tensor]]
) -> nn.Module:
    """The OpenVINO runner of an already BatchNorm-folded model (fp32, bf16 or int8), in memory."""
    if precision == "bf16" and not has_bf16():
        raise MissingDependency("this CPU has no bf16 support in OpenVINO (no AVX512-BF16/AMX): use fp32 or int8")
    ov_model = convert(folded, input_size)
    if precision == "int8":
        ov_model = quantize(ov_model, calibration or [])
    return OpenVINORunner(ov_model, precision).eval()


def save_runner(runner: nn.Module, folder: Path) -> List[str]:
    """The runner's model as an IR in ``folder`` (for the cache of optimized models); the files written."""
    _ov().save_model(runner.ov_model, str(folder / "model.xml"), compress_to_fp16=False)  # type: ignore[union-attr]
    return ["model.xml", "model.bin"]


def load_runner(folder: Path, precision: str, blob_cache: Optional[Path] = None) -> nn.Module:
    """A runner of the IR ``save_runner`` wrote, compiled (from OpenVINO's blob cache when it has it)."""
    ov_model = _ov().Core().read_model(str(folder / "model.xml"))
    return OpenVINORunner(ov_model, precision, blob_cache).eval()


# ---- the IR folder ----------------------------------------------------------------------------------


def write(model: nn.Module, path: Path, card: ModelCard, input_size: int, calibration=None) -> None:
    """An IR folder (model.xml + model.bin) written next to ``path`` and renamed into place. bf16 is a
    run-time setting kept in the card (the weights stay fp32: OpenVINO converts them when it compiles
    for a CPU with bf16)."""
    ov = _ov()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise BadFile(
            f"out {path} exists and is not an empty folder; an OpenVINO IR export writes a new folder", field="out"
        )
    ov_model = convert(model, input_size)
    if card.precision == "int8":
        ov_model = quantize(ov_model, calibration or [])
    ov_model.set_rt_info(json.dumps(card.but(weights_sha256=constants_digest(ov_model)).to_dict()), RT_INFO)
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    make_dir(tmp, "export folder")
    try:
        # fp16 compression would change the numbers: keep the weights as they are.
        ov.save_model(ov_model, str(tmp / "model.xml"), compress_to_fp16=False)
        if path.exists():
            path.rmdir()
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def xml_of(path: Path) -> Path:
    if path.suffix.lower() == ".xml":
        return path
    found = sorted(path.glob("*.xml"))
    if not found:
        raise BadFile(f"{path}: a folder without an OpenVINO .xml model; export it again")
    return found[0]


def load(path: Path) -> ExportedModel:
    """An IR (a folder, or its .xml) compiled for this CPU, its weights checked against the hash
    recorded at export."""
    ov = _ov()
    xml = xml_of(path)
    weights = xml.with_suffix(".bin")
    if not weights.is_file():
        raise BadFile(
            f"{xml}: OpenVINO IR without its weights file {weights.name}: put it beside the .xml, or export again"
        )
    try:
        ov_model = ov.Core().read_model(str(xml))
    except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
        raise BadFile(f"{xml}: not a valid OpenVINO IR model ({last_line(exc)}); export it again") from None
    meta = json.loads(ov_model.get_rt_info(RT_INFO).astype(str)) if ov_model.has_rt_info(RT_INFO) else {}
    recorded = meta.get("weights_sha256")
    if isinstance(recorded, str) and recorded != constants_digest(ov_model):
        raise DamagedModel(
            f"{xml}: its weights ({weights.name}) do not match the hash recorded at export (the file was damaged or "
            "replaced after it was written); export it again"
        )
    runner = OpenVINORunner(ov_model, str(meta.get("precision", "fp32")))
    card = card_of(meta, xml, "openvino", runner)
    return ExportedModel(runner, card, xml, runtime=runner)
