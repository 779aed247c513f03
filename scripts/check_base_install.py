"""A base install (`pip install resnetkit`, no extras) names the extra every feature that needs one
asks for, in one line, and runs what needs none. Run by `make test-base` (and so by CI) with the
Python of a fresh venv holding resnetkit without extras: `.venv-base/bin/python scripts/check_base_install.py`.

Repository-only: it checks an installation, it is not part of the package."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from resnetkit.targets import RUNTIME_ROWS  # noqa: E402  (data only: no torch, no runtime)

# What an extra installs, and a base install lacks: every runtime's packages (from the table, so a
# new runtime is covered without an edit here), and the other extras' modules.
EXTRAS = tuple(dict.fromkeys(p for r in RUNTIME_ROWS for p in r.packages + r.int8_packages)) + (
    "onnx",
    "fastapi",
    "uvicorn",
    "pytorch_grad_cam",
    "pyarrow",
    "ray",
    "huggingface_hub",
    "timm",
    "webdataset",
)
PACKAGED = ("py.typed", "serve/page.html", "inspect/explain.html", "weights/data")


def resnetkit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "resnetkit", *args], capture_output=True, text=True, cwd=cwd)


def one_line(result: subprocess.CompletedProcess, words: str, what: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip() and "warning:" not in line]
    ok = result.returncode == 1 and len(lines) == 1 and words in lines[0] and "Traceback" not in result.stderr
    print(("ok   " if ok else "FAIL ") + f"{what}: {lines[-1] if lines else result.stderr.strip()[:300]}")
    if not ok:
        raise SystemExit(f"{what}: expected one error line with {words!r}, exit 1; got exit {result.returncode}")


def main() -> int:
    present = [name for name in EXTRAS if importlib.util.find_spec(name) is not None]
    if present:
        raise SystemExit(f"not a base install: {', '.join(present)} importable; run this in a venv without extras")
    import torch

    import resnetkit as rk

    model = rk.resnet18(num_classes=3).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 3)
    print("ok   import resnetkit and run a model")
    from importlib import metadata, resources

    root = resources.files("resnetkit")
    missing = [name for name in PACKAGED if not root.joinpath(name).is_file() and not root.joinpath(name).is_dir()]
    dist = metadata.distribution("resnetkit")
    licensed = any(str(f).endswith("LICENSE") for f in dist.files or [])
    if missing or not licensed or dist.metadata["License-Expression"] != "BSD-3-Clause":
        raise SystemExit(f"the installed package lacks {missing or 'its LICENSE / SPDX license'}")
    if Path(rk.__file__).resolve().is_relative_to(Path(__file__).resolve().parents[1] / "src"):
        raise SystemExit(f"resnetkit was imported from the checkout ({rk.__file__}), not the installed wheel")
    print("ok   the wheel holds its data files, py.typed and LICENSE (BSD-3-Clause)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        weights = work / "w.safetensors"
        rk.save_safetensors(model.state_dict(), weights, model.card.but(classes=("a", "b", "c")))
        from PIL import Image

        Image.new("RGB", (40, 40), (10, 200, 30)).save(work / "x.png")
        w = ("--weights", str(weights))
        one_line(
            resnetkit("export", *w, "--format", "onnx", "--out", "m.onnx", cwd=work), "resnetkit[deploy]", "export onnx"
        )
        one_line(
            resnetkit("export", *w, "--format", "openvino", "--out", "ir", cwd=work),
            "resnetkit[openvino]",
            "export openvino",
        )
        from resnetkit.targets import FORMAT_ROWS, RUNTIME_ROWS

        extras = {r.name: r.extra for r in RUNTIME_ROWS}
        for row in FORMAT_ROWS:  # every format of the table whose runtime is an extra (onnx, openvino: above)
            if extras[row.runtime] and row.name not in ("onnx", "openvino"):
                out = f"m{row.suffix}" if row.suffix else "folder"
                result = resnetkit("export", *w, "--format", row.name, "--out", out, cwd=work)
                one_line(result, f"resnetkit[{extras[row.runtime]}]", f"export {row.name}")
        one_line(resnetkit("serve", *w, cwd=work), "resnetkit[serve]", "serve")
        result = resnetkit("predict", "x.png", *w, "--cam", "cams", cwd=work)
        one_line(result, "resnetkit[serve]", "predict --cam")
        if result.stdout.strip():
            raise SystemExit(f"predict --cam predicted before naming the extra: {result.stdout!r}")
        bench = resnetkit(
            "bench",
            "resnet18",
            "--input-size",
            "32",
            "--batch-size",
            "1",
            "--runs",
            "1",
            "--warmup",
            "0",
            "--json",
            cwd=work,
        )
        skipped = json.loads(bench.stdout)["skipped"] if bench.returncode == 0 else {}
        for mode in ("onnxruntime", "openvino"):
            if "pip install" not in skipped.get(mode, ""):
                raise SystemExit(
                    f"bench did not say it skipped {mode} and why: {bench.stdout[-500:]} {bench.stderr[-500:]}"
                )
        print(f"ok   bench runs PyTorch's modes and says why it skipped {', '.join(sorted(skipped))}")
        one_line(
            resnetkit("predict", "x.png", *w, "--out", "r.parquet", cwd=work),
            "resnetkit[batch]",
            "predict --out .parquet",
        )
        one_line(
            resnetkit("predict", "x.png", *w, "--engine", "ray", cwd=work), "resnetkit[ray]", "predict --engine ray"
        )
        table = resnetkit("predict", "x.png", *w, "--out", "r.jsonl", cwd=work)
        if table.returncode != 0 or not (work / "r.jsonl").is_file():
            raise SystemExit(f"predict --out r.jsonl failed on a base install: {table.stderr}")
        print("ok   predict --out r.jsonl (no extra needed)")
        predict = resnetkit("predict", "x.png", *w, cwd=work)
        if predict.returncode != 0:
            raise SystemExit(f"predict failed on a base install: {predict.stderr}")
        print("ok   predict on a base install")
        one_line(resnetkit("predict", "x.png", "--weights", "hf-hub:timm/resnet18.a1_in1k", cwd=work), "resnetkit[hub]",
                 "--weights hf-hub:...")  # fmt: skip
        one_line(resnetkit("predict", "x.png", "--weights", "runs/digit", cwd=work), "no such file or directory",
                 "--weights runs/digit (a typo that looks like ORG/NAME)")  # fmt: skip
        for split in ("train", "val"):
            for name in ("a", "b"):
                (work / "imgs" / split / name).mkdir(parents=True)
                Image.new("RGB", (40, 40), (10, 200, 30)).save(work / "imgs" / split / name / "x.png")
        one_line(resnetkit("train", "--recipe", "rsb-a3", "--data", "imgs", "--out", "rsb", cwd=work), "resnetkit[rsb]",
                 "train --recipe rsb-a3 (timm's LAMB and RandAugment)")  # fmt: skip
        one_line(resnetkit("train", "--data", "s-{000..003}.tar", "--val-data", "v-{0..1}.tar", cwd=work),
                 "resnetkit[shards]", "train --data 'shards-{000..003}.tar' (WebDataset)")  # fmt: skip
        page = resnetkit("explain", "resnet18", "--input-size", "64", "--out", "e.html", cwd=work)
        if page.returncode != 0 or "layer4" not in (work / "e.html").read_text():
            raise SystemExit(f"explain failed on a base install: {page.stderr}")
        print("ok   explain on a base install")
    return 0


if __name__ == "__main__":
    sys.exit(main())
