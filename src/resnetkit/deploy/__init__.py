"""Deployment: BatchNorm folding, int8 quantization, export, and the fastest inference runner."""

from .backends import available
from .export import ExportReport, export
from .fold import fold_batchnorm
from .optimize import Choice, optimize
from .quantize import calibration_batches, quantize_int8

__all__ = [
    "Choice",
    "ExportReport",
    "available",
    "calibration_batches",
    "export",
    "fold_batchnorm",
    "optimize",
    "quantize_int8",
]
