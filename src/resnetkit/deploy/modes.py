"""The inference modes `resnetkit bench` compares (a light module: the CLI reads it to build --help)."""

MODES = ("eager", "channels_last", "fused", "compile", "onnxruntime", "onnxruntime-int8", "int8", "bf16")
