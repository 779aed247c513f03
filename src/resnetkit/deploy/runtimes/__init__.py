"""One leaf module per runtime (pytorch, onnxruntime, openvino): its session or compilation, its
writer, its int8 path and its runner. A leaf imports no other leaf and no deploy verb."""
