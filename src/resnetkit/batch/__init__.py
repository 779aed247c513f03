"""Batch prediction: the Predictor (decode -> preprocess -> forward -> top-k / embeddings) that predict,
serve, torchrun shards and Ray actors share; decoding in worker processes; result tables (Parquet, CSV,
JSON Lines: resumable, one writer); sharding; the local job and the Ray Data engine.

Lazy (resnetkit/lazy.py): its names import torch when first looked up.
"""

from typing import TYPE_CHECKING

from ..lazy import faces

__getattr__, __dir__ = faces(
    __name__,
    {
        "decode": ["Decoder"],
        "inputs": ["Shard", "walk"],
        "job": ["JobConfig", "JobSummary", "run_job"],
        "predictor": ["Predictor", "build_predictor"],
        "table": ["ResultTable"],
    },
)

if TYPE_CHECKING:  # what type checkers and IDEs see
    from .decode import Decoder
    from .inputs import Shard, walk
    from .job import JobConfig, JobSummary, run_job
    from .predictor import Predictor, build_predictor
    from .table import ResultTable

__all__ = [
    "Decoder",
    "JobConfig",
    "JobSummary",
    "Predictor",
    "ResultTable",
    "Shard",
    "build_predictor",
    "run_job",
    "walk",
]
