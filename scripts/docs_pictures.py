"""The pictures in docs/, made by the commands the docs show (repository-only):

    .venv/bin/python scripts/docs_pictures.py [--run runs/digits]

- docs/training-curves.png: `resnetkit train --out RUN` (the default digits recipe), its curves.png;
- docs/confusion.png: `resnetkit eval --weights RUN --confusion docs/confusion.png`;
- docs/gradcam.png: `resnetkit predict RUN/samples --weights RUN --cam DIR` (one digit's overlay);
- docs/resnet50.png: `resnetkit summary resnet50 --diagram docs/resnet50.png`.

An existing RUN (what `make run` leaves) is reused; otherwise it is trained first (about a minute).
The page screenshots come from scripts/serve_screenshot.py and scripts/explain_screenshot.py.
"""

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from resnetkit.cli import main as resnetkit


def run(*args: str) -> None:
    print("resnetkit", " ".join(args))
    if resnetkit(list(args)) != 0:
        raise SystemExit(f"resnetkit {' '.join(args)} failed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/digits")
    parser.add_argument("--docs", default="docs")
    args = parser.parse_args()
    run_dir, docs = Path(args.run), Path(args.docs)
    if not (run_dir / "model.safetensors").is_file():
        run("train", "--out", str(run_dir))
    shutil.copyfile(run_dir / "curves.png", docs / "training-curves.png")
    with tempfile.TemporaryDirectory() as tmp:
        run("eval", "--weights", str(run_dir), "--out", tmp, "--confusion", str(docs / "confusion.png"), "--exist-ok")
        samples = sorted((run_dir / "samples").glob("*.png"))[:1]
        single = Path(tmp) / "one"
        single.mkdir()
        shutil.copyfile(samples[0], single / samples[0].name)
        run("predict", str(single), "--weights", str(run_dir), "--topk", "1", "--cam", str(Path(tmp) / "cam"))
        shutil.copyfile(next((Path(tmp) / "cam").glob("*_cam.png")), docs / "gradcam.png")
    run("summary", "resnet50", "--diagram", str(docs / "resnet50.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
