"""Training and evaluation beyond one process: two torchrun ranks train the same model one process
trains (DDP), and evaluate with each rank taking its share. Run by `make test-scale` (two processes
training for 11 steps is a 25 s test on two cores), which CI runs too."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from ..engine.test_train_cli import FAST_DIGITS, assert_same_weights, ok, weights


def test_two_process_ddp_matches_single_process(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun is installed with torch"
    # 11 steps of batch 128, with per-sample augmentation (pad-crop) that must not depend on the rank.
    # Few steps: float rounding alone (e.g. 1 vs 2 threads) drifts ~1e-3 apart over a whole epoch.
    common = [
        "train",
        *FAST_DIGITS,
        "--batch-size",
        "128",
        "--epochs",
        "1",
        "--norm",
        "group",
        "--lr",
        "0.1",
        "--schedule",
        "cosine",
        "--no-channels-last",
        "--pad-crop",
        "2",
    ]
    single = tmp_path / "single"
    ok(*common, "--out", single)
    ddp = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "resnetkit", *common, "--out", str(ddp)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_weights(weights(single), weights(ddp), atol=1e-4)
    # Gradient accumulation under DDP (only the last micro-batch synchronises): after one step, the
    # weights of one process's whole batch, to rounding (later steps amplify rounding chaotically: see
    # docs/training.md, "Distributed"); without the synchronisation each rank would have stepped on
    # its own half of the batch, orders of magnitude further off.
    one = tmp_path / "single-1"
    ok(*common, "--max-steps", "1", "--out", one)
    accum = tmp_path / "ddp-accum"
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "resnetkit", *common, "--accum-steps", "2",
         "--max-steps", "1", "--out", str(accum)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    step = [torch.load(run / "last.pt", weights_only=True)["model"] for run in (one, accum)]
    assert_same_weights(step[0], step[1], atol=1e-5)
    # Only rank 0 wrote files, and metrics were reduced over both ranks (same val accuracy).
    a = (single / "metrics.csv").read_text().splitlines()[1].split(",")
    b = (ddp / "metrics.csv").read_text().splitlines()[1].split(",")
    assert a[4] == b[4]
    # eval under torchrun: each rank takes its share, rank 0 reports the totals (once, not twice).
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "resnetkit", "eval", "--weights", str(ddp), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    alone = json.loads(ok("eval", "--weights", ddp, "--json").stdout.splitlines()[-1])
    assert len(reports) == 1 and reports[0]["images"] == alone["images"] == 360
    assert reports[0]["confusion"] == alone["confusion"] and abs(reports[0]["loss"] - alone["loss"]) < 1e-6
