"""resnetkit's deploy paths against OpenVINO and ONNX Runtime configured by hand, in one process.

    .venv/bin/python benchmarks/deploy_vs_hand.py [--archs resnet50,resnet18] [--runs 10] [--out FILE.md]

"By hand" is what a user writes from each runtime's documentation: OpenVINO ``convert_model`` +
``compile_model(..., {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": f32|bf16})``
called as ``compiled(array)``, int8 by NNCF's default ``nncf.quantize``; ONNX Runtime
``torch.onnx.export`` + a default ``InferenceSession``, int8 by ``quantize_static`` with its
defaults. resnetkit is ``optimize(model, precision, calibration, batch_size=B)``, which measures
its backends and keeps the fastest (its pick is printed). Every path gets the same random-weight
model and the same 64 calibration images; timings are alternating blocks of calls (a drifting machine
slows every path alike; each block after untimed calls, as runtimes' spinning threads would
steal the next path's time) and the table gives images/s (median) and the ratio to OpenVINO by hand.

A last table measures preprocessing fused into the OpenVINO graph (uint8 NHWC in, conversion and
normalisation inside the model) against normalising in PyTorch and passing float NCHW.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

import resnetkit as rk
from resnetkit.deploy import optimize
from resnetkit.measure import time_blocks

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def openvino_by_hand(model, precision, calibration, size):
    import nncf
    import openvino as ov

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ov_model = ov.convert_model(model, example_input=torch.randn(1, 3, size, size))
    ov_model.reshape([-1, 3, size, size])
    if precision == "int8":
        ov_model = nncf.quantize(ov_model, nncf.Dataset([b.numpy() for b in calibration]))
    hint = "bf16" if precision == "bf16" else "f32"
    compiled = ov.Core().compile_model(
        ov_model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": hint}
    )
    return lambda x: compiled(x.numpy())[0]


def onnxruntime_by_hand(model, precision, calibration, size, folder: Path):
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    path = folder / "hand.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.randn(1, 3, size, size),),
            str(path),
            dynamo=False,
            input_names=["x"],
            dynamic_axes={"x": {0: "b"}},
        )
    if precision == "int8":
        batches = iter([{"x": b.numpy()} for b in calibration])

        class Reader(CalibrationDataReader):
            def get_next(self):
                return next(batches, None)

        quantize_static(str(path), str(folder / "hand_int8.onnx"), Reader())
        path = folder / "hand_int8.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"x": x.numpy()})[0]


def interleaved(paths: dict, x: torch.Tensor, runs: int, warmup: int = 3) -> dict:
    """images/s of each path: blocks of calls, each block after untimed calls (see time_blocks)."""
    times = time_blocks(paths, x, runs, warmup, rounds=2)
    return {name: len(x) / statistics.median(ts) for name, ts in times.items()}


def fused_preprocessing(model, size, runs):
    """OpenVINO int8 of ``model``, fed uint8 NHWC with normalisation in the graph vs float NCHW
    normalised by PyTorch first (both include the normalisation's cost)."""
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    from resnetkit.deploy.fold import fold_batchnorm
    from resnetkit.deploy.runtimes.openvino import OpenVINORunner, convert
    from resnetkit.deploy.runtimes.openvino import quantize as nncf_quantize

    gen = torch.Generator().manual_seed(1)
    calibration = [torch.randn(16, 3, size, size, generator=gen) for _ in range(4)]
    quantized = nncf_quantize(convert(fold_batchnorm(model), size), calibration)
    float_in = OpenVINORunner(quantized.clone(), "int8")
    ppp = PrePostProcessor(quantized)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).scale(255.0).mean(MEAN).scale(STD)
    fused_in = ov.Core().compile_model(ppp.build(), "CPU", {"PERFORMANCE_HINT": "LATENCY"})
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)

    def outside(u8_nhwc: torch.Tensor):
        x = u8_nhwc.permute(0, 3, 1, 2).float().div_(255).sub_(mean).div_(std)
        return float_in(x)

    request = fused_in.create_infer_request()

    def inside(u8_nhwc: torch.Tensor):
        request.infer({0: u8_nhwc.numpy()}, share_inputs=True)
        return request.get_output_tensor(0).data

    rows = []
    for batch in (1, 16):
        images = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, generator=gen)
        assert np.abs(outside(images).numpy() - inside(images)).max() < 1e-1 * max(
            1.0, float(np.abs(inside(images)).max())
        )
        rates = interleaved({"normalise in PyTorch": outside, "fused in the graph": inside}, images, runs)
        rows.append((batch, rates["normalise in PyTorch"], rates["fused in the graph"]))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", default="resnet50,resnet18")
    p.add_argument("--batches", default="1,16")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--out", help="also write the tables to this markdown file")
    args = p.parse_args(argv)
    lines = [
        f"threads: {torch.get_num_threads()}; images/s (median of {args.runs} interleaved rounds); "
        "ratio = resnetkit / OpenVINO by hand",
        "",
        "| model | batch | precision | torchvision eager | ONNX Runtime by hand | OpenVINO by hand | resnetkit "
        "| resnetkit picked | resnetkit / OpenVINO |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    import torchvision

    gen = torch.Generator().manual_seed(0)
    for arch in args.archs.split(","):
        torch.manual_seed(0)
        model = rk.get_model(arch).eval()
        reference = getattr(torchvision.models, arch)().eval()
        reference.load_state_dict(model.state_dict())
        calibration = [torch.randn(16, 3, args.size, args.size, generator=gen) for _ in range(4)]
        for batch in [int(b) for b in args.batches.split(",")]:
            x = torch.randn(batch, 3, args.size, args.size, generator=gen)
            for precision in ("fp32", "bf16", "int8"):
                print(f"{arch} batch {batch} {precision}: preparing", file=sys.stderr, flush=True)
                with tempfile.TemporaryDirectory() as tmp:
                    paths = {"eager": reference, "ov": openvino_by_hand(model, precision, calibration, args.size)}
                    if precision != "bf16":  # ONNX Runtime has no bf16 CPU kernels
                        paths["ort"] = onnxruntime_by_hand(model, precision, calibration, args.size, Path(tmp))
                    ours = optimize(
                        model,
                        precision,
                        calibration=calibration if precision == "int8" else None,
                        input_size=args.size,
                        batch_size=batch,
                        cache=False,
                    )
                    paths["resnetkit"] = ours
                    rates = interleaved(paths, x, args.runs)
                ort = f"{rates['ort']:.1f}" if "ort" in rates else "-"
                lines.append(
                    f"| {arch} | {batch} | {precision} | {rates['eager']:.1f} | {ort} | {rates['ov']:.1f} | "
                    f"{rates['resnetkit']:.1f} | {ours.choice.backend} | {rates['resnetkit'] / rates['ov']:.2f}x |"
                )
                print(lines[-1], file=sys.stderr, flush=True)
    lines += [
        "",
        "Preprocessing fused into the OpenVINO int8 graph (uint8 NHWC in) vs normalised in PyTorch first:",
        "",
        "| model | batch | normalise in PyTorch | fused in the graph | fused / PyTorch |",
        "|---|---|---|---|---|",
    ]
    first = args.archs.split(",")[0]
    torch.manual_seed(0)
    for batch, outside, inside in fused_preprocessing(rk.get_model(first).eval(), args.size, args.runs):
        lines.append(f"| {first} | {batch} | {outside:.1f} | {inside:.1f} | {inside / outside:.2f}x |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
