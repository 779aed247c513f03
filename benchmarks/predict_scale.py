"""`resnetkit predict` as a batch job against the pipelines a user writes by hand, measured in one run.

Corpus: random crops of the photos shipped in scikit-learn and matplotlib, re-encoded as JPEG at
quality 90: ``--photos`` web-size ones (about 500x375) and ``--phone`` phone-size ones (4000x3000).
Model: ResNet-50 with random weights (speed does not depend on them), 224 px.

Rows (images/s; the model's own start-up excluded everywhere, and resnetkit's shown apart):
- decode only: PIL, short side to 256 and centre crop 224 - 1 process, with JPEG draft mode, 2 processes;
- model only: OpenVINO int8 (NNCF), batch 32, LATENCY hint;
- by hand, serial: draft decode, then OpenVINO int8; by hand, overlapped: 2 decode processes feeding it
  (a DataLoader), also for fp32 and bf16;
- the previous release's predict: serial full decode, eager fp32 PyTorch;
- resnetkit: ``resnetkit predict DIR --weights W --precision P --out r.parquet`` in a subprocess, its
  summary line's images/s (after optimize() has remembered its choice: the first run of a machine
  measures the backends once).

``--memory`` adds the peak RSS (the process tree, sampled) of resnetkit predict over N and 20 x N files
(hard links to the same photos). ``--agreement`` adds the top-1 agreement of draft with full decoding:
a resnet18 fine-tuned for a few epochs to tell the photos' sources apart, and the random ResNet-50.

    .venv/bin/python benchmarks/predict_scale.py --out /tmp/predict_scale.md
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import resnetkit as rk

ROOT = Path(__file__).resolve().parents[1]
RESNETKIT = [sys.executable, "-m", "resnetkit"]


def sources() -> list:
    import matplotlib.cbook as cbook
    from sklearn.datasets import load_sample_images

    images = [Image.fromarray(a) for a in load_sample_images().images]
    images.append(Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))
    return images


def make_corpus(folder: Path, count: int, size: tuple, seed: int) -> list:
    """``count`` JPEGs of ``size``: a random crop (40-90 % of a side) of a random source, resized."""
    folder.mkdir(parents=True, exist_ok=True)
    files = sorted(folder.glob("*.jpg"))
    if len(files) == count:
        return files
    rng = np.random.default_rng(seed)
    photos = sources()
    for i in range(count):
        src = photos[i % len(photos)]
        w, h = src.size
        cw, ch = int(w * rng.uniform(0.4, 0.9)), int(h * rng.uniform(0.4, 0.9))
        x, y = int(rng.integers(0, w - cw)), int(rng.integers(0, h - ch))
        crop = src.crop((x, y, x + cw, y + ch)).resize(size, Image.Resampling.BICUBIC)
        crop.save(folder / f"{i:05d}.jpg", quality=90)
    return sorted(folder.glob("*.jpg"))


# ---- by hand ---------------------------------------------------------------------------------------


def hand_decode(path, draft: bool) -> np.ndarray:
    with Image.open(path) as img:
        if draft and min(img.size) >= 512:
            img.draft("RGB", (256, 256))
        img = img.convert("RGB")
        w, h = img.size
        s = 256 / min(w, h)
        img = img.resize((max(256, round(w * s)), max(256, round(h * s))), Image.Resampling.BILINEAR)
        w, h = img.size
        left, top = (w - 224) // 2, (h - 224) // 2
        arr = np.asarray(img.crop((left, top, left + 224, top + 224)), dtype=np.float32) / 255.0
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
    return ((arr - mean) / std).transpose(2, 0, 1)


def decode_rate(files, draft: bool, processes: int) -> float:
    start = time.perf_counter()
    if processes == 1:
        for f in files:
            hand_decode(f, draft)
    else:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(processes) as pool:
            for _ in pool.imap(_decode_draft if draft else _decode_full, files, chunksize=8):
                pass
    return len(files) / (time.perf_counter() - start)


def _decode_draft(f):
    return hand_decode(f, True)


def _decode_full(f):
    return hand_decode(f, False)


class HandDataset(torch.utils.data.Dataset):
    def __init__(self, files, draft):
        self.files, self.draft = files, draft

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        return torch.from_numpy(hand_decode(self.files[i], self.draft))


def openvino_by_hand(model, precision: str, calibration: torch.Tensor):
    """OpenVINO from its own docs: convert, NNCF's default PTQ for int8, the LATENCY hint."""
    import nncf
    import openvino as ov

    ov_model = ov.convert_model(model.eval(), example_input=torch.randn(1, 3, 224, 224))
    ov_model.reshape([-1, 3, 224, 224])
    if precision == "int8":
        ov_model = nncf.quantize(ov_model, nncf.Dataset([calibration.numpy()]), subset_size=len(calibration))
    hint = {"bf16": "bf16"}.get(precision, "f32")
    compiled = ov.Core().compile_model(
        ov_model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": hint}
    )
    request = compiled.create_infer_request()
    return lambda x: request.infer({0: x.numpy()})[0]


def model_rate(run, batch: int = 32, calls: int = 6) -> float:
    x = torch.randn(batch, 3, 224, 224)
    run(x)
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t)
    return batch / statistics.median(times)


def serial_rate(files, run, draft: bool, batch: int = 32) -> float:
    start = time.perf_counter()
    for i in range(0, len(files), batch):
        run(torch.stack([torch.from_numpy(hand_decode(f, draft)) for f in files[i : i + batch]]))
    return len(files) / (time.perf_counter() - start)


def overlapped_rate(files, run, draft: bool, workers: int = 2, batch: int = 32) -> float:
    loader = torch.utils.data.DataLoader(HandDataset(files, draft), batch_size=batch, num_workers=workers)
    start = time.perf_counter()
    for x in loader:
        run(x)
    return len(files) / (time.perf_counter() - start)


# ---- resnetkit ----------------------------------------------------------------------------------


class PeakRSS:
    """The peak resident memory of a process and its children, sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.proc, self.peak, self.done = psutil.Process(pid), 0, threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        import psutil

        while not self.done.wait(0.05):
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs))
            except psutil.Error:
                pass

    def stop(self) -> int:
        self.done.set()
        self.thread.join()
        return self.peak


def resnetkit_rate(folder: Path, weights: Path, precision: str, out: Path) -> dict:
    """Wall time, rows and the process tree's peak RSS of one resnetkit predict."""
    cmd = [*RESNETKIT, "predict", str(folder), "--weights", str(weights), "--precision", precision]
    cmd += ["--out", str(out), "--exist-ok", "--quiet", "--batch-size", "32", "--draft"]  # as the hand pipelines decode
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    rss = PeakRSS(proc.pid)
    _, err = proc.communicate()
    peak, wall = rss.stop(), time.perf_counter() - t
    if proc.returncode not in (0, 1):
        raise SystemExit(f"resnetkit predict failed: {err[-2000:]}")
    import pyarrow.parquet as pq

    return {"wall_s": wall, "rows": pq.read_table(out, columns=["path"]).num_rows, "peak_rss_mb": peak / 2**20}


def resnetkit_images_per_s(folder: Path, weights: Path, precision: str, out: Path, calibration: Path) -> tuple:
    """(images/s from the summary line, seconds including start-up, the backend chosen)."""
    cmd = [*RESNETKIT, "predict", str(folder), "--weights", str(weights), "--precision", precision, "--out", str(out)]
    cmd += ["--calibration", str(calibration)] if precision == "int8" else []
    t = time.perf_counter()
    # --draft: the hand-written pipelines decode in draft mode too (resnetkit's default is the exact decode)
    proc = subprocess.run([*cmd, "--exist-ok", "--batch-size", "32", "--draft"], capture_output=True, text=True)
    wall = time.perf_counter() - t
    m = re.search(r"([\d.]+) images/s, ([\d.]+) s", proc.stderr)
    if m is None:
        raise SystemExit(f"resnetkit predict failed: {proc.stderr[-2000:]}")
    backend = re.search(r"optimize: \w+ on (\w+)", proc.stderr)
    return float(m[1]), wall, backend[1] if backend else "?"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", type=int, default=1000)
    p.add_argument("--phone", type=int, default=100)
    p.add_argument("--corpus", default=str(Path(tempfile.gettempdir()) / "resnetkit-photos"))
    p.add_argument("--precisions", default="int8,fp32,bf16")
    p.add_argument("--memory", type=int, default=0, metavar="N", help="peak RSS over N and 20 N files")
    p.add_argument("--agreement", action="store_true", help="top-1 agreement of draft with full decoding")
    p.add_argument("--agreement-only", action="store_true", help="only the agreement table (no speed runs)")
    p.add_argument("--out", help="also write the tables here (markdown)")
    args = p.parse_args()
    torch.manual_seed(0)
    corpus = Path(args.corpus)
    web = make_corpus(corpus / "web", args.photos, (500, 375), 0)
    phone = make_corpus(corpus / "phone", args.phone, (4000, 3000), 1)
    work = Path(tempfile.mkdtemp(prefix="resnetkit-predict-bench-"))
    model = rk.resnet50().eval()
    weights = work / "rn50.safetensors"
    rk.save_safetensors(model.state_dict(), weights, model.card.but(source="random resnet50"))
    calibration = torch.stack([torch.from_numpy(hand_decode(f, False)) for f in web[:64]])
    lines = [f"threads {torch.get_num_threads()}, {os.cpu_count()} cores; resnet50 random weights, 224 px", ""]
    if args.agreement_only:
        text = "\n".join([*lines, *agreement({"web": web, "phone": phone}, model)])
        print(text)
        if args.out:
            Path(args.out).write_text(text + "\n")
        return 0
    lines += ["| path | web photos (500x375) | phone photos (4000x3000) |", "|---|---|---|"]

    def row(name, web_rate, phone_rate="-"):
        cell = lambda v: v if isinstance(v, str) else f"{v:.1f}"  # noqa: E731
        lines.append(f"| {name} | {cell(web_rate)} | {cell(phone_rate)} |")
        print(lines[-1], flush=True)

    row("decode only, 1 process", decode_rate(web, False, 1), decode_rate(phone[:30], False, 1))
    row("decode only, 1 process, draft", decode_rate(web, True, 1), decode_rate(phone[:30], True, 1))
    row("decode only, 2 processes, draft", decode_rate(web, True, 2), decode_rate(phone, True, 2))
    eager = lambda x: model(x)  # noqa: E731
    with torch.no_grad():
        row(
            "previous predict: serial full decode, eager fp32",
            serial_rate(web[:256], eager, False),
            serial_rate(phone[:32], eager, False),
        )
        hand = {}
        for precision in args.precisions.split(","):
            hand[precision] = openvino_by_hand(model, precision, calibration)
            if precision == "int8":
                row("model only: OpenVINO int8, batch 32", model_rate(hand[precision]))
                row(
                    "by hand, serial: draft decode, then OpenVINO int8",
                    serial_rate(web, hand[precision], True),
                    serial_rate(phone, hand[precision], True),
                )
            row(
                f"by hand, overlapped: 2 decode processes + OpenVINO {precision}",
                overlapped_rate(web, hand[precision], True),
                overlapped_rate(phone, hand[precision], True),
            )
    for precision in args.precisions.split(","):
        calib = Path(web[0]).parent  # the same web photos the by-hand int8 was calibrated on (the first 64 of them)
        resnetkit_images_per_s(calib, weights, precision, work / "warm.parquet", calib)  # optimize() measures once
        rate_web, wall, backend = resnetkit_images_per_s(
            Path(web[0]).parent, weights, precision, work / "r.parquet", calib
        )
        rate_phone, _, _ = resnetkit_images_per_s(Path(phone[0]).parent, weights, precision, work / "p.parquet", calib)
        row(
            f"resnetkit predict --precision {precision} --out r.parquet ({backend}; {wall:.0f} s with start-up)",
            rate_web,
            rate_phone,
        )
    if args.memory:
        lines += ["", "| files | peak RSS MB (process tree) | images/s |", "|---|---|---|"]
        for n in (args.memory, 20 * args.memory):
            folder = work / f"files{n}"
            folder.mkdir()
            for i in range(n):
                os.link(web[i % len(web)], folder / f"{i:06d}.jpg")
            res = resnetkit_rate(folder, weights, "int8", work / f"m{n}.parquet")
            lines.append(f"| {n} | {res['peak_rss_mb']:.0f} | {res['rows'] / res['wall_s']:.1f} |")
            print(lines[-1], flush=True)
    if args.agreement:
        lines += ["", *agreement({"web": web, "phone": phone}, model)]
        print("\n".join(lines[-4:]))
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


def agreement(corpora, model) -> list:
    """Top-1 agreement of draft with full decoding on each corpus, for a network trained on it (which
    source photo a crop comes from) and for the random ResNet-50. Draft mode engages only for a JPEG at
    least twice the resize size (short side >= 512 for 256): the phone photos; the web photos (375 px)
    decode in full either way, so theirs is 100 % by construction and is shown as a check."""
    from resnetkit.batch.decode import Decoder
    from resnetkit.deploy.fused import normalise

    n_sources = len(sources())
    pre = rk.card.Preprocess()
    out = [
        "| photos | network | top-1 agreement, draft vs full decode | its accuracy (full decode) |",
        "|---|---|---|---|",
    ]
    for kind, files in corpora.items():
        labels = torch.tensor([i % n_sources for i in range(len(files))])
        full = torch.stack([torch.from_numpy(Decoder(pre, draft=False)(str(f))) for f in files])
        draft = torch.stack([torch.from_numpy(Decoder(pre, draft=True)(str(f))) for f in files])
        xf, xd = normalise(full, pre, 3), normalise(draft, pre, 3)
        torch.manual_seed(0)
        net = rk.resnet18(num_classes=n_sources)
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        for _ in range(3):  # enough to tell three photos apart
            for i in range(0, len(files), 32):
                net.train()
                loss = torch.nn.functional.cross_entropy(net(xf[i : i + 32]), labels[i : i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
        changed = (full != draft).any(dim=(1, 2, 3)).float().mean()
        with torch.no_grad():
            for name, m in (("resnet18 trained on the corpus", net.eval()), ("resnet50, random weights", model)):
                a = torch.cat([m(xf[i : i + 64]).argmax(1) for i in range(0, len(files), 64)])
                b = torch.cat([m(xd[i : i + 64]).argmax(1) for i in range(0, len(files), 64)])
                acc = f"{100 * (a == labels).float().mean():.1f} %" if "trained" in name else "-"
                what = f"{kind} ({len(files)}, {100 * changed:.0f} % decoded differently)"
                out.append(f"| {what} | {name} | {100 * (a == b).float().mean():.2f} % | {acc} |")
    return out


if __name__ == "__main__":
    sys.exit(main())
