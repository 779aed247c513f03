"""Deployment benchmark: every inference mode side by side in one process, for resnet50 and
resnet18, plus int8 accuracy on a trained model (the digits run of `make run`).

    .venv/bin/python benchmarks/deploy_speed.py [--out benchmarks/deploy_speed.md]

Speed uses random weights (speed does not depend on them); accuracy uses runs/digits (trained
here first if missing): every format x precision on the 360 validation digits, calibrated on them.
benchmarks/deploy_vs_hand.py compares the same paths with OpenVINO and ONNX Runtime set up by hand.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from resnetkit.deploy.bench import MODES, benchmark, markdown_table

ROOT = Path(__file__).resolve().parents[1]


def accuracy_per_format(run_dir: Path) -> str:
    """`resnetkit bench --weights RUN`: every format x precision of the trained digits model, with
    acc@1 on the 360 validation digits and top-1 agreement with fp32."""
    if not (run_dir / "model.safetensors").is_file():
        subprocess.run([sys.executable, "-m", "resnetkit", "train", "--quiet", "--out", str(run_dir)], check=True)
    out = subprocess.run(
        [sys.executable, "-m", "resnetkit", "bench", "--weights", str(run_dir)],
        check=True,
        capture_output=True,
        text=True,
    )
    return (
        f"Every format of the trained digits model ({run_dir}), `resnetkit bench --weights {run_dir}`:\n\n" + out.stdout
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", default="resnet50,resnet18")
    p.add_argument("--batch-size", default="1,16")
    p.add_argument("--modes", default=",".join(MODES))
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
    text = markdown_table(results) + "\n\n" + accuracy_per_format(Path(args.digits_run)) + "\n"
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
