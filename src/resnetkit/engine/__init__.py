"""Training, evaluation, checkpoints and distributed setup."""

from .config import RECIPES, TrainConfig, make_config
from .evaluate import EvalResult, evaluate
from .trainer import TrainResult, train

__all__ = ["RECIPES", "TrainConfig", "make_config", "EvalResult", "evaluate", "TrainResult", "train"]
