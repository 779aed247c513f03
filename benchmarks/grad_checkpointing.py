"""Memory and time of a training step with and without gradient checkpointing, in one run.

Memory is the bytes of the tensors autograd keeps for the backward pass (counted with
torch.autograd.graph.saved_tensors_hooks: the activation memory that checkpointing saves, on any
device); time is the median of interleaved steps.

    .venv/bin/python benchmarks/grad_checkpointing.py --arch resnet50 --batch-size 8
"""

import argparse
import statistics
import time

import torch

import resnetkit as rk


def step(model, x, y):
    saved = [0]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    t0 = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return saved[0], time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args()
    torch.manual_seed(0)
    plain = rk.get_model(args.arch).train()
    ckpt = rk.get_model(args.arch).train()
    ckpt.load_state_dict(plain.state_dict())
    ckpt.set_grad_checkpointing(True)
    x = torch.randn(args.batch_size, 3, args.input_size, args.input_size)
    y = torch.randint(0, 1000, (args.batch_size,))
    times = {"plain": [], "checkpointed": []}
    memory = {}
    step(plain, x, y), step(ckpt, x, y)  # warm-up
    for _ in range(args.steps):
        for name, model in (("plain", plain), ("checkpointed", ckpt)):
            saved, seconds = step(model, x, y)
            memory[name] = saved
            times[name].append(seconds)
    print(
        f"{args.arch}, batch {args.batch_size}, {args.input_size}px, {torch.get_num_threads()} threads, "
        f"median of {args.steps} interleaved steps"
    )
    print("| step | saved for backward | step time |")
    print("|---|---|---|")
    for name in ("plain", "checkpointed"):
        print(f"| {name} | {memory[name] / 2**20:,.0f} MB | {statistics.median(times[name]):.2f} s |")
    print(
        f"checkpointed / plain: memory {memory['checkpointed'] / memory['plain']:.2f}x, "
        f"time {statistics.median(times['checkpointed']) / statistics.median(times['plain']):.2f}x"
    )


if __name__ == "__main__":
    main()
