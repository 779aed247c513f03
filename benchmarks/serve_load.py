"""Load test of `resnetkit serve` on 127.0.0.1: batching gain, p99 latency, overload and recovery.

    .venv/bin/python benchmarks/serve_load.py [--weights runs/digits] [--requests 2000] [--clients 32]

Starts the server as a subprocess (its own process, as in production), then with a bounded async
httpx client:
1. sequential: one request at a time, one image each -> the batch-1 request rate;
2. concurrent: --clients clients sending single images, --requests in all -> throughput (x the
   sequential rate), p50/p99 latency, failed requests;
3. overload: a burst of 4x the queue bound at once -> how many got 503 (and how fast), the
   server's memory before/after (RSS from /proc), then the concurrent phase again (recovery).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def sample_png() -> bytes:
    samples = sorted((ROOT / "runs" / "digits" / "samples").glob("*.png"))
    image = Image.open(samples[0]) if samples else Image.new("RGB", (32, 32), "gray")
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


async def one(client: httpx.AsyncClient, body: bytes):
    t = time.perf_counter()
    r = await client.post("/v1/predict?topk=1", content=body, headers={"content-type": "image/png"})
    return r.status_code, time.perf_counter() - t


async def concurrent(client, body, total: int, clients: int):
    results = []
    counter = iter(range(total))

    async def worker():
        for _ in counter:
            results.append(await one(client, body))

    start = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(clients)])
    return results, time.perf_counter() - start


def server_side(metrics: str) -> dict:
    """{status: (count, seconds)} of /v1/predict requests, from the server's latency histogram."""
    out: dict = {}
    for line in metrics.splitlines():
        for suffix, index in (("_count{", 0), ("_sum{", 1)):
            if line.startswith("resnetkit_request_seconds" + suffix):
                status = line.split('status="')[1].split('"')[0]
                entry = out.setdefault(status, [0.0, 0.0])
                entry[index] = float(line.split()[-1])
    return {k: tuple(v) for k, v in out.items()}


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


async def main_async(args, base: str, pid: int) -> str:
    body = sample_png()
    limits = httpx.Limits(max_connections=max(args.clients, args.queue * 4) + 8)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        for _ in range(20):  # warm-up
            await one(client, body)
        seq = [await one(client, body) for _ in range(args.sequential)]
        seq_rate = len(seq) / sum(t for _, t in seq)
        results, wall = await concurrent(client, body, args.requests, args.clients)
        ok = [t for s, t in results if s == 200]
        rate = len(ok) / wall
        rss_before = rss_mb(pid)
        served_before = server_side((await client.get("/metrics")).text)
        burst_start = time.perf_counter()
        burst = await asyncio.gather(*[one(client, body) for _ in range(args.queue * 4)])
        burst_wall = time.perf_counter() - burst_start
        refused = [t for s, t in burst if s == 503]
        rss_after = rss_mb(pid)
        served_after = server_side((await client.get("/metrics")).text)
        again, wall2 = await concurrent(client, body, args.requests, args.clients)
        ok2 = [t for s, t in again if s == 200]
        metrics = (await client.get("/metrics")).text
    batches = [line for line in metrics.splitlines() if line.startswith("resnetkit_batch_size_")]
    count = float(next(line.split()[-1] for line in batches if "_count" in line))
    total = float(next(line.split()[-1] for line in batches if "_sum" in line))
    lines = [
        "| phase | requests | ok | failed | images/s | x sequential | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|---|",
        f"| sequential, 1 client | {len(seq)} | {len(seq)} | 0 | {seq_rate:.1f} | 1.00x | "
        f"{1000 * statistics.median(t for _, t in seq):.1f} | {1000 * pct([t for _, t in seq], 0.99):.1f} |",
        f"| {args.clients} concurrent clients | {len(results)} | {len(ok)} | {len(results) - len(ok)} | {rate:.1f} | "
        f"{rate / seq_rate:.2f}x | {1000 * statistics.median(ok):.1f} | {1000 * pct(ok, 0.99):.1f} |",
        f"| after the overload burst | {len(again)} | {len(ok2)} | {len(again) - len(ok2)} | {len(ok2) / wall2:.1f} | "
        f"{len(ok2) / wall2 / seq_rate:.2f}x | {1000 * statistics.median(ok2):.1f} | {1000 * pct(ok2, 0.99):.1f} |",
        "",
        f"overload: a burst of {len(burst)} requests at once (4x the queue bound of {args.queue}): "
        f"{len(refused)} answered 503 + Retry-After (median {1000 * statistics.median(refused or [0]):.1f} ms), "
        f"{sum(1 for s, _ in burst if s == 200)} answered 200, {sum(1 for s, _ in burst if s not in (200, 503))} other; "
        f"burst over in {burst_wall:.2f} s; server RSS {rss_before:.0f} MB before, {rss_after:.0f} MB after.",
        "server side, during the burst (resnetkit_request_seconds): "
        + ", ".join(
            f"{status}: {n:.0f} answered in {1000 * t / n:.1f} ms on average"
            for status in sorted(served_after)
            for n, t in [
                (
                    served_after[status][0] - served_before.get(status, (0, 0))[0],
                    served_after[status][1] - served_before.get(status, (0, 0))[1],
                )
            ]
            if n > 0
        )
        + " (the rest of a client's time is the client's own and the wait for a core).",
        f"mean batch size over the run: {total / max(count, 1):.2f} images ({count:.0f} model calls).",
    ]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=str(ROOT / "runs" / "digits"))
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--sequential", type=int, default=300)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--queue", type=int, default=64, help="the server's --max-queue")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--random", metavar="ARCH", help="serve ARCH with random weights at 224 px instead (e.g. resnet50)")
    args = p.parse_args()
    if args.random:
        import tempfile

        import resnetkit as rk

        path = Path(tempfile.mkdtemp(prefix="resnetkit-load-")) / f"{args.random}.safetensors"
        rk.save_safetensors(rk.get_model(args.random).state_dict(), path, {"arch": args.random, "num_classes": 1000})
        args.weights = str(path)
    port = free_port()
    cmd = [sys.executable, "-m", "resnetkit", "serve", "--weights", args.weights, "--port", str(port)]
    cmd += ["--max-queue", str(args.queue), "--precision", args.precision]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        while True:
            line = server.stdout.readline()
            if not line:
                raise SystemExit(f"the server exited ({server.wait()})")
            print(line.rstrip(), file=sys.stderr)
            if line.startswith("ready: "):
                break
        table = asyncio.run(main_async(args, f"http://127.0.0.1:{port}", server.pid))
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(60)
    print(f"`{' '.join(['resnetkit', *cmd[3:]])}`, {os.cpu_count()} cores, server exit code {code}\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
