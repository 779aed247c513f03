"""Training throughput: resnetkit's loop (bf16 autocast + channels_last) vs a plain
torchvision-style loop (eager fp32, NCHW), same model, batch and optimizer, measured in one run.

    .venv/bin/python benchmarks/train_speed.py --arch resnet50 --batch-size 16 --input-size 224 [--compile]

The loops' steps are interleaved (one step of each in turn), so a machine whose speed drifts
affects both alike. Prints a Markdown table with images/s (median step), the ratio to the plain
loop, and the data-loading share of step time for a DataLoader over in-memory uint8 images
(decoding excluded; conversion and normalisation included).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import resnetkit as rk
from resnetkit.engine.config import make_config
from resnetkit.engine.evaluate import autocast_context
from resnetkit.engine.setup import make_optimizer

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255


class Loop:
    """One training setup: the model, its optimizer and its data iterator."""

    def __init__(self, name: str, arch: str, batch: int, size: int, n_batches: int, fast: bool, compile: bool):
        torch.manual_seed(0)
        self.name, self.fast = name, fast
        self.cfg = make_config("tv-v1", arch=arch, batch_size=batch, amp="bf16" if fast else "none", channels_last=fast)
        model = rk.get_model(arch)
        if fast:
            model = model.to(memory_format=torch.channels_last)
        self.model = model.train()
        self.opt = make_optimizer(model, self.cfg)
        self.step_model = torch.compile(model) if compile else model
        images = torch.randint(0, 256, (n_batches * batch, 3, size, size), dtype=torch.uint8)
        labels = torch.randint(0, 1000, (len(images),))
        self.batches = iter(DataLoader(TensorDataset(images, labels), batch_size=batch, num_workers=0))
        self.step_times, self.data_times = [], []

    def step(self, record: bool) -> None:
        t0 = time.perf_counter()
        x, y = next(self.batches)
        x = (x.float() - MEAN) / STD
        if self.fast:
            x = x.contiguous(memory_format=torch.channels_last)
        t1 = time.perf_counter()
        with autocast_context(self.cfg.amp, torch.device("cpu")):
            loss = F.cross_entropy(self.step_model(x).float(), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        t2 = time.perf_counter()
        if record:
            self.step_times.append(t2 - t0)
            self.data_times.append(t1 - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="also measure resnetkit's loop with --compile")
    args = p.parse_args()
    n = args.steps + args.warmup
    loops = [
        Loop("plain eager fp32 NCHW", args.arch, args.batch_size, args.input_size, n, False, False),
        Loop("resnetkit bf16 + channels_last", args.arch, args.batch_size, args.input_size, n, True, False),
    ]
    if args.compile:
        loops.append(
            Loop(
                "resnetkit bf16 + channels_last + --compile", args.arch, args.batch_size, args.input_size, n, True, True
            )
        )
    for i in range(n):
        for loop in loops:
            loop.step(record=i >= args.warmup)
    base = args.batch_size / statistics.median(loops[0].step_times)
    print(
        f"\n{args.arch}, batch {args.batch_size}, {args.input_size}px, {torch.get_num_threads()} threads, "
        f"median of {args.steps} interleaved steps after {args.warmup} warm-up\n"
    )
    print("| loop | images/s | step (s) | ratio | data-loading share |")
    print("|---|---|---|---|---|")
    for loop in loops:
        step = statistics.median(loop.step_times)
        share = sum(loop.data_times) / sum(loop.step_times)
        print(
            f"| {loop.name} | {args.batch_size / step:.1f} | {step:.3f} | {args.batch_size / step / base:.2f}x | "
            f"{100 * share:.1f} % |"
        )


if __name__ == "__main__":
    main()
