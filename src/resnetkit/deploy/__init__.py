"""Deployment: the table of runtimes and formats (formats.py), one leaf per runtime (runtimes/),
and the verbs over them: export, load_inference_model, optimize (the fastest runner), bench.

Lazy (resnetkit/lazy.py): the format table's constants import without the runtimes.
"""

from typing import TYPE_CHECKING

from ..lazy import faces

__getattr__, __dir__ = faces(
    __name__,
    {
        "calibration": ["calibration_batches"],
        "export": ["ExportReport", "export"],
        "fold": ["fold_batchnorm"],
        "formats": ["available"],
        "loading": ["load_inference_model"],
        "optimize": ["Choice", "optimize", "quantize_int8"],
    },
)

if TYPE_CHECKING:  # what type checkers and IDEs see
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
