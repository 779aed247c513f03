"""The inference modes `resnetkit bench` compares (a light module: the CLI reads it to build --help)."""

MODES = ("eager", "channels_last", "fused", "compile", "onnxruntime", "int8", "bf16")
