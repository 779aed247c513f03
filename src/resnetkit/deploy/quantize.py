"""Post-training static int8 quantization for x86 CPUs (per-channel weights, calibrated activations)."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, List, Sequence, Union

import torch
from torch import nn

from ..data.decode import ImageDecodeError, expand_inputs, load_image

if TYPE_CHECKING:
    from ..data.transforms import Preprocess
from ..errors import BadFile, InvalidOption, MissingDependency, ResnetkitError

MIN_CALIBRATION_IMAGES = 32


def supported_engines() -> List[str]:
    return list(torch.backends.quantized.supported_engines)


def int8_backend() -> str:
    """The quantized engine to use here, or a clear error when the machine has none for x86."""
    engines = supported_engines()
    for name in ("x86", "fbgemm"):
        if name in engines:
            return name
    raise ResnetkitError(
        f"int8 needs PyTorch's x86 (fbgemm) quantized engine; this machine/build offers {engines}: "
        "use precision fp32 or bf16"
    )


def calibration_batches(
    source: Union[str, Path, torch.Tensor, Sequence[torch.Tensor]], preprocess: Preprocess, batch_size: int = 16
) -> List[torch.Tensor]:
    """Calibration images as batches: from a tensor (N, C, H, W), a list of tensors, or a folder of
    image files (decoded with the model's preprocessing; unreadable files are skipped)."""
    if isinstance(source, torch.Tensor):
        images = list(source)
    elif isinstance(source, (list, tuple)) and source and isinstance(source[0], torch.Tensor):
        images = [t for batch in source for t in (batch if batch.dim() == 4 else [batch])]
    else:
        folder = Path(source)  # type: ignore[arg-type]  # the remaining case: a path
        if not folder.exists():
            raise BadFile(f"calibration folder {folder} does not exist")
        transform = preprocess.transform()
        images = []
        for path in expand_inputs([str(folder)]):
            try:
                images.append(transform(load_image(path, preprocess.resize_size)))
            except ImageDecodeError:
                continue
    if len(images) < MIN_CALIBRATION_IMAGES:
        raise ResnetkitError(
            f"calibration needs at least {MIN_CALIBRATION_IMAGES} readable images, got {len(images)} from {source}; "
            "add representative images from your data"
        )
    return [torch.stack(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]


def quantize_int8(model: nn.Module, calibration: Union[torch.Tensor, Iterable[torch.Tensor]]) -> nn.Module:
    """An int8 copy of ``model`` (FX graph mode, x86 qconfig: per-channel symmetric weights,
    histogram-calibrated activations; conv+BN+ReLU and add+ReLU fused). ``calibration`` is a
    (N, C, H, W) tensor or batches of images, at least 32 in all. The original is untouched."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    if model.training:
        raise InvalidOption("int8 quantization needs the model in eval mode: call model.eval() first")
    backend = int8_backend()
    if isinstance(calibration, torch.Tensor):
        if calibration.dim() != 4:
            raise InvalidOption(
                f"calibration images must be a (N, C, H, W) tensor, got shape {list(calibration.shape)}"
            )
        calibration = calibration.split(16)
    batches = [b if b.dim() == 4 else b.unsqueeze(0) for b in calibration]
    count = sum(len(b) for b in batches)
    if count < MIN_CALIBRATION_IMAGES:
        raise InvalidOption(
            f"calibration needs at least {MIN_CALIBRATION_IMAGES} images, got {count}; add representative images"
        )
    float_model = copy.deepcopy(model).eval().to(memory_format=torch.contiguous_format)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its own deprecation
        prepared = prepare_fx(float_model, get_default_qconfig_mapping(backend), example_inputs=(batches[0],))
        with torch.no_grad():
            for batch in batches:
                prepared(batch.contiguous())
        quantized = convert_fx(prepared)
    quantized.eval()
    return Int8Model(quantized, backend).eval()


class Int8Model(nn.Module):
    """A quantized model that selects its quantized engine only while it runs, so the process-wide
    ``torch.backends.quantized.engine`` is restored after each call."""

    def __init__(self, quantized: nn.Module, engine: str) -> None:
        super().__init__()
        self.quantized, self.engine = quantized, engine

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        previous = torch.backends.quantized.engine
        torch.backends.quantized.engine = self.engine
        try:
            return self.quantized(x)
        finally:
            torch.backends.quantized.engine = previous


def quantize_onnx_int8(
    model: nn.Module, path: Path, calibration: List[torch.Tensor], metadata: dict, input_size: int
) -> float:
    """Write an int8 ONNX model (QDQ, per-channel int8 weights, uint8 activations calibrated by
    min-max on ``calibration``) with ONNX Runtime's static quantization, and return the top-1
    agreement (%) of the file, run by ONNX Runtime, with the fp32 PyTorch model on those images.
    The maintained alternative to torch.ao's FX int8 (deprecated), and it runs anywhere ONNX does."""
    import json
    import tempfile

    try:
        import onnx
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise MissingDependency("int8 ONNX export needs onnxruntime: pip install 'resnetkit[deploy]'") from None
    from ..fileio import atomic_path
    from .export import export
    from .runtimes import load_exported

    images = torch.cat([b if b.dim() == 4 else b.unsqueeze(0) for b in calibration])
    if len(images) < MIN_CALIBRATION_IMAGES:
        raise InvalidOption(f"calibration needs at least {MIN_CALIBRATION_IMAGES} images, got {len(images)}")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(images.split(16))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"images": batch.numpy()}

    meta = dict(metadata, precision="int8")
    with tempfile.TemporaryDirectory(prefix="resnetkit-int8-") as tmp:
        fp32, prepared, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        export(model, fp32, metadata=metadata, input_size=input_size)
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(int8),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        proto = onnx.load(str(int8))
        del proto.metadata_props[:]
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
        with atomic_path(path, "ONNX file") as out:
            onnx.save(proto, str(out))
    runner = load_exported(path)
    with torch.no_grad():
        agree = (runner(images).argmax(1) == model(images).argmax(1)).float().mean().item()
    return 100.0 * agree
