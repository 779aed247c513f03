"""Batch prediction: the Predictor (decode -> preprocess -> forward -> top-k / embeddings) that predict,
serve, torchrun shards and Ray actors share; decoding in worker processes; result tables (Parquet, CSV,
JSON Lines: resumable, one writer); sharding; the local job and the Ray Data engine."""

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
