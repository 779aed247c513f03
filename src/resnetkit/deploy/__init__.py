"""Deployment: the table of runtimes and formats (formats.py), one leaf per runtime (runtimes/),
and the verbs over them: export, load_inference_model, optimize (the fastest runner), bench."""

from .calibration import calibration_batches
from .export import ExportReport, export
from .fold import fold_batchnorm
from .formats import available
from .loading import load_inference_model
from .optimize import Choice, optimize, quantize_int8

__all__ = [
    "Choice",
    "ExportReport",
    "available",
    "calibration_batches",
    "export",
    "fold_batchnorm",
    "load_inference_model",
    "optimize",
    "quantize_int8",
]
