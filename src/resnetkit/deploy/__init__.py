"""Deployment: BatchNorm folding, int8 quantization, export, and the fastest inference module."""

from .export import ExportReport, export
from .fold import fold_batchnorm
from .optimize import optimize
from .quantize import calibration_batches, quantize_int8

__all__ = ["ExportReport", "export", "fold_batchnorm", "optimize", "calibration_batches", "quantize_int8"]
