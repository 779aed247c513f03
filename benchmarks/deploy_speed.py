"""Deployment benchmark: every inference mode side by side in one process, for resnet50 and
resnet18, plus int8 accuracy on a trained model (the digits run of `make run`).

    .venv/bin/python benchmarks/deploy_speed.py [--out benchmarks/deploy_speed.md]

Speed uses random weights (speed does not depend on them); accuracy uses runs/digits (trained
here first if missing): fp32 vs int8 top-1 on the 360 validation digits and their agreement,
calibrated on 64 training digits.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch

from resnetkit.data.datasets import load_digits
from resnetkit.deploy import quantize_int8
from resnetkit.deploy.bench import benchmark, markdown_table
from resnetkit.weights.factory import model_from_weights
from resnetkit.weights.resolve import resolve

ROOT = Path(__file__).resolve().parents[1]


def int8_accuracy(run_dir: Path) -> str:
    if not (run_dir / "model.safetensors").is_file():
        subprocess.run([sys.executable, "-m", "resnetkit", "train", "--quiet", "--out", str(run_dir)], check=True)
    model = model_from_weights(resolve(str(run_dir))).eval()
    split = load_digits()
    calib = split.train.images[:64].split(16)
    q = quantize_int8(model, calib)
    x, y = split.val.images, split.val.targets
    with torch.no_grad():
        fp = model(x).argmax(1)
        iq = q(x).argmax(1)
    acc_fp, acc_q = (fp == y).float().mean().item() * 100, (iq == y).float().mean().item() * 100
    agree = (fp == iq).float().mean().item() * 100
    return (
        f"int8 accuracy on the trained digits model ({run_dir}, 360 val images, 64 calibration images): "
        f"fp32 {acc_fp:.2f} %, int8 {acc_q:.2f} % (drop {acc_fp - acc_q:.2f} points), "
        f"top-1 agreement {agree:.2f} %"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", default="resnet50,resnet18")
    p.add_argument("--batch-size", default="1,16")
    p.add_argument("--modes", default="eager,channels_last,fused,compile,onnxruntime,bf16,int8")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--digits-run", default=str(ROOT / "runs" / "digits"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "deploy_speed.md"))
    args = p.parse_args()
    batches = [int(b) for b in args.batch_size.split(",")]
    modes = args.modes.split(",")
    results = [
        benchmark(a, batches, 224, modes, runs=args.runs, log=lambda s: print(s, file=sys.stderr))
        for a in args.archs.split(",")
    ]
    text = markdown_table(results) + "\n\n" + int8_accuracy(Path(args.digits_run)) + "\n"
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
