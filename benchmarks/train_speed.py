"""Training throughput: resnetkit's loop (bf16 autocast + channels_last) vs a plain
torchvision-style loop (eager fp32, NCHW), same model, batch and optimizer, measured in one run.

    .venv/bin/python benchmarks/train_speed.py --arch resnet50 --batch-size 16 --input-size 224

Prints a Markdown table with images/s, the ratio to the plain loop, and the data-loading share of
step time for a DataLoader over in-memory uint8 images (decode excluded, normalisation included).
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
from resnetkit.engine.trainer import autocast, make_optimizer


def run_loop(arch: str, batch: int, size: int, steps: int, warmup: int, fast: bool, compile: bool = False) -> dict:
    torch.manual_seed(0)
    cfg = make_config("tv-v1", arch=arch, batch_size=batch, amp="bf16" if fast else "none", channels_last=fast)
    model = rk.get_model(arch)
    if fast:
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, cfg)
    step_model = torch.compile(model) if compile else model
    images = torch.randint(0, 256, ((steps + warmup) * batch, 3, size, size), dtype=torch.uint8)
    labels = torch.randint(0, 1000, (len(images),))
    loader = DataLoader(TensorDataset(images, labels), batch_size=batch, num_workers=0)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
    step_times, data_times = [], []
    model.train()
    t_prev = time.perf_counter()
    for i, (x, y) in enumerate(loader):
        x = (x.float() - mean) / std
        if fast:
            x = x.contiguous(memory_format=torch.channels_last)
        t_data = time.perf_counter()
        with autocast(cfg, torch.device("cpu")):
            loss = F.cross_entropy(step_model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        t_end = time.perf_counter()
        if i >= warmup:
            step_times.append(t_end - t_prev)
            data_times.append(t_data - t_prev)
        t_prev = t_end
    step = statistics.median(step_times)
    return {"img_s": batch / step, "step_s": step, "data_share": sum(data_times) / sum(step_times)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--compile", action="store_true", help="also measure resnetkit's loop with --compile")
    args = p.parse_args()
    plain = run_loop(args.arch, args.batch_size, args.input_size, args.steps, args.warmup, fast=False)
    ours = run_loop(args.arch, args.batch_size, args.input_size, args.steps, args.warmup, fast=True)
    rows = [("plain eager fp32 NCHW", plain), ("resnetkit bf16 + channels_last", ours)]
    if args.compile:
        compiled = run_loop(args.arch, args.batch_size, args.input_size, args.steps, args.warmup + 2, fast=True,
                            compile=True)
        rows.append(("resnetkit bf16 + channels_last + --compile", compiled))
    print(f"\n{args.arch}, batch {args.batch_size}, {args.input_size}px, {torch.get_num_threads()} threads, "
          f"median of {args.steps} steps after {args.warmup} warm-up\n")
    print("| loop | images/s | step (s) | ratio | data-loading share |")
    print("|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['img_s']:.1f} | {r['step_s']:.3f} | {r['img_s'] / plain['img_s']:.2f}x | "
              f"{100 * r['data_share']:.1f} % |")


if __name__ == "__main__":
    main()
