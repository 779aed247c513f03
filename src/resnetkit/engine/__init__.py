"""Training, evaluation, checkpoints and distributed setup: import the modules (config, trainer,
evaluate, ...) you need; this package file stays empty so that reading the config is cheap."""
