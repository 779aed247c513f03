"""The inference modes `resnetkit bench` compares (a light module: the CLI reads it to build --help)."""

# PyTorch ways of running the same fp32 model, then (runtime, precision) pairs: "bf16" is
# PyTorch's; the others name their runtime (see deploy/backends.py).
PYTORCH_MODES = ("eager", "channels_last", "fused", "compile")
BACKEND_MODES = {
    "bf16": ("pytorch", "bf16"),
    "onnxruntime": ("onnxruntime", "fp32"),
    "onnxruntime-int8": ("onnxruntime", "int8"),
    "openvino": ("openvino", "fp32"),
    "openvino-bf16": ("openvino", "bf16"),
    "openvino-int8": ("openvino", "int8"),
}
MODES = PYTORCH_MODES + tuple(BACKEND_MODES)
