"""The first minute of `resnetkit`: whole jobs, start-up included, against the pipelines a user writes
by hand - each side a fresh process, the two interleaved, in one run.

Rows:
- cold: `resnetkit predict DIR --weights rn50.safetensors --arch resnet50 --precision int8 --out r.parquet`
  over ``--photos`` web-size photos (3,000) with an empty ``RESNETKIT_HOME``, against the by-hand
  pipeline (OpenVINO convert, NNCF int8 on 64 of the images, two draft-decode processes feeding the
  compiled model at batch 32, top-5 written to a Parquet table): images / whole wall time of each
  process.
- warm: the same weights on ``--new`` (300) photos never seen, resnetkit's cache kept from the cold run,
  against the by-hand pipeline again (it converts and quantizes every time).
- `resnetkit --help` against `python -c "import torch"`: wall time of the process (median of 5).
- one image: `resnetkit predict one.jpg --weights rn50.safetensors` against a torchvision script doing
  the same (import, build resnet50, load the file, preprocess, top-5): median of 5.

Model: ResNet-50 with random weights (speed does not depend on them), 224 px. The photos: random
crops of the photos scikit-learn and matplotlib ship (benchmarks/predict_scale.py's corpus).

    .venv/bin/python benchmarks/first_minute.py --out /tmp/first_minute.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable

BY_HAND = r"""
import sys, time
import numpy as np, torch, torchvision.models as tvm
import openvino as ov, nncf, pyarrow as pa, pyarrow.parquet as pq
from pathlib import Path
from PIL import Image
from safetensors.torch import load_file

MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], np.float32) * 255

def decode(path):
    with Image.open(path) as img:
        img.draft("RGB", (256, 256))
        img = img.convert("RGB")
        w, h = img.size
        s = 256 / min(w, h)
        img = img.resize((max(224, round(w * s)), max(224, round(h * s))), Image.Resampling.BILINEAR)
        w, h = img.size
        left, top = (w - 224) // 2, (h - 224) // 2
        a = np.asarray(img.crop((left, top, left + 224, top + 224)), np.float32)
    return torch.from_numpy(((a - MEAN) / STD).transpose(2, 0, 1).copy())

class Files(torch.utils.data.Dataset):
    def __init__(self, files): self.files = files
    def __len__(self): return len(self.files)
    def __getitem__(self, i): return decode(self.files[i]), str(self.files[i])

if __name__ == "__main__":
    folder, weights, out = sys.argv[1:4]
    files = sorted(Path(folder).glob("*.jpg"))
    model = tvm.resnet50()
    model.load_state_dict(load_file(weights))
    model.eval()
    ov_model = ov.convert_model(model, example_input=torch.randn(1, 3, 224, 224))
    ov_model.reshape([-1, 3, 224, 224])
    calibration = torch.stack([decode(f) for f in files[:64]]).numpy()
    ov_model = nncf.quantize(ov_model, nncf.Dataset([calibration]), subset_size=64)
    compiled = ov.Core().compile_model(ov_model, "CPU", {"PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    loader = torch.utils.data.DataLoader(Files(files), batch_size=32, num_workers=2)
    paths, classes, probs = [], [], []
    for x, names in loader:
        logits = torch.from_numpy(request.infer({0: x.numpy()})[0])
        p, c = logits.softmax(1).topk(5)
        paths += names; classes += c.tolist(); probs += p.tolist()
    pq.write_table(pa.table({"path": paths, "top5_class": classes, "top5_prob": probs}), out)
"""

TORCHVISION_ONE = r"""
import sys
import torch, torchvision.models as tvm, torchvision.transforms as T
from PIL import Image
from safetensors.torch import load_file

image, weights = sys.argv[1:3]
model = tvm.resnet50()
model.load_state_dict(load_file(weights))
model.eval()
transform = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                       T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
x = transform(Image.open(image).convert("RGB"))[None]
with torch.no_grad():
    p, c = model(x).softmax(1).topk(5)
print(image, c[0].tolist(), [round(v, 4) for v in p[0].tolist()])
"""


def timed(cmd, env=None) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{proc.stderr[-3000:]}")
    timed.last_stderr = proc.stderr  # type: ignore[attr-defined]
    return wall


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", type=int, default=3000, help="the cold job's photos (default 3000)")
    p.add_argument("--new", type=int, default=300, help="the warm job's new photos (default 300)")
    p.add_argument("--repeats", type=int, default=2, help="interleaved runs of each whole job (default 2)")
    p.add_argument("--work", default=None, help="keep the photos and weights here (default: a temporary folder)")
    p.add_argument("--out", help="also write the table here (Markdown)")
    args = p.parse_args()

    sys.path.insert(0, str(HERE))
    import torch
    import torchvision.models as tvm
    from predict_scale import make_corpus
    from safetensors.torch import save_file

    work = Path(args.work or tempfile.mkdtemp(prefix="first-minute-"))
    work.mkdir(parents=True, exist_ok=True)
    cold_dir, warm_dir = work / "photos", work / "new-photos"
    make_corpus(cold_dir, args.photos, (500, 375), seed=0)
    make_corpus(warm_dir, args.new, (500, 375), seed=1)
    weights = work / "rn50.safetensors"
    if not weights.exists():
        torch.manual_seed(0)
        save_file(tvm.resnet50().state_dict(), str(weights))
    (work / "by_hand.py").write_text(BY_HAND)
    (work / "torchvision_one.py").write_text(TORCHVISION_ONE)
    one = sorted(cold_dir.glob("*.jpg"))[0]
    rk = [PY, "-m", "resnetkit"]
    base_env = {k: v for k, v in os.environ.items() if k not in ("RESNETKIT_BACKEND", "RESNETKIT_HOME")}

    def hand(folder):
        return timed([PY, str(work / "by_hand.py"), str(folder), str(weights), str(work / "hand.parquet")])

    def resnetkit_job(folder, home):
        env = dict(base_env, RESNETKIT_HOME=str(home))
        cmd = [*rk, "predict", str(folder), "--weights", str(weights), "--arch", "resnet50", "--precision", "int8"]
        return timed([*cmd, "--out", str(work / "r.parquet"), "--exist-ok"], env)

    rows = []
    cold_hand, cold_rk, warm_hand, warm_rk, lines = [], [], [], [], []
    for r in range(args.repeats):
        home = Path(tempfile.mkdtemp(prefix="rk-home-", dir=work))  # a fresh cache: a new machine
        cold_hand.append(hand(cold_dir))
        cold_rk.append(resnetkit_job(cold_dir, home))
        lines.append(timed.last_stderr.strip().splitlines()[-1])  # type: ignore[attr-defined]
        warm_hand.append(hand(warm_dir))
        warm_rk.append(resnetkit_job(warm_dir, home))
        lines.append(timed.last_stderr.strip().splitlines()[-1])  # type: ignore[attr-defined]
        print(f"run {r + 1}: cold hand {cold_hand[-1]:.1f} s, resnetkit {cold_rk[-1]:.1f} s; "
              f"warm hand {warm_hand[-1]:.1f} s, resnetkit {warm_rk[-1]:.1f} s", flush=True)  # fmt: skip
    n, m = args.photos, args.new
    rows.append((f"cold, {n} photos: images/s, whole job", n / statistics.median(cold_hand),
                 n / statistics.median(cold_rk), ">= 1.0x"))  # fmt: skip
    rows.append((f"warm, {m} new photos: images/s, whole job", m / statistics.median(warm_hand),
                 m / statistics.median(warm_rk), ">= 2.5x"))  # fmt: skip

    help_s, torch_s = [], []
    for _ in range(5):
        torch_s.append(timed([PY, "-c", "import torch"]))
        help_s.append(timed([*rk, "--help"], base_env))
    rows.append(("--help vs import torch: 1 / seconds", 1 / statistics.median(torch_s),
                 1 / statistics.median(help_s), ">= 4x"))  # fmt: skip

    tv_s, one_s = [], []
    home = Path(tempfile.mkdtemp(prefix="rk-home-one-", dir=work))
    for _ in range(5):
        tv_s.append(timed([PY, str(work / "torchvision_one.py"), str(one), str(weights)]))
        one_s.append(
            timed([*rk, "predict", str(one), "--weights", str(weights)], dict(base_env, RESNETKIT_HOME=str(home)))
        )
    rows.append(("one image, default settings: 1 / seconds", 1 / statistics.median(tv_s),
                 1 / statistics.median(one_s), ">= 1.0x"))  # fmt: skip

    table = [
        f"torch {torch.__version__}, {os.cpu_count()} cores; medians of {args.repeats} interleaved whole jobs "
        "(5 for the last two rows)",
        "",
        "| row | by hand / baseline | resnetkit | ratio | target |",
        "|---|---|---|---|---|",
    ]
    for name, base, ours, target in rows:
        table.append(f"| {name} | {base:.2f} | {ours:.2f} | {ours / base:.2f}x | {target} |")
    table += ["", "seconds: cold hand " + ", ".join(f"{s:.1f}" for s in cold_hand)
              + "; cold resnetkit " + ", ".join(f"{s:.1f}" for s in cold_rk)
              + "; warm hand " + ", ".join(f"{s:.1f}" for s in warm_hand)
              + "; warm resnetkit " + ", ".join(f"{s:.1f}" for s in warm_rk)
              + f"; import torch {statistics.median(torch_s):.2f}; --help {statistics.median(help_s):.2f}"
              + f"; torchvision one image {statistics.median(tv_s):.2f}; resnetkit one image {statistics.median(one_s):.2f}",
              "", "resnetkit's summary lines:", *[f"    {line}" for line in lines]]  # fmt: skip
    text = "\n".join(table)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
