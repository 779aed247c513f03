"""Every artifact a command writes, handed to every command that accepts one, through the CLI with
default flags: the seams between commands. ``make test`` runs one representative per code path
(tests/cli/test_seams.py); ``make test-scale`` the whole matrix (tests/scale/test_artifact_matrix.py).

A refusal passes only where the documentation says that reader cannot take that file (``REFUSED``),
and only as one line saying why; anything else must work."""

import json
import shutil
from pathlib import Path
from typing import Callable, Dict, Tuple

from .clirun import cli
from .imagegen import class_image

# artifact -> how it is made from a digits run (the directory ``root`` holds them all)
PYTORCH_ARTIFACTS = ("run", "model.safetensors", "best.pt", "last.pt", "stopped-run", "stopped-last.pt")
EXPORTS = {  # name -> (format, precision)
    "model.onnx": ("onnx", "fp32"),
    "int8.onnx": ("onnx", "int8"),
    "model_ir": ("openvino", "fp32"),
    "int8_ir": ("openvino", "int8"),
    "model.pt2": ("pt2", "fp32"),
    "model_ts.pt": ("torchscript", "fp32"),
    "export.safetensors": ("safetensors", "fp32"),
    "model.pte": ("executorch", "fp32"),
    "int8.pte": ("executorch", "int8"),
    "model.tflite": ("tflite", "fp32"),
    "int8.tflite": ("tflite", "int8"),
}
READERS = ("predict", "eval", "export", "explain", "serve", "bench", "train-weights", "train-resume", "verify", "push")

# (reader, artifact kind) -> words of the one-line refusal the docs promise (docs/cli.md, "Where each file goes")
RUNNABLE_EXPORTS = tuple(n for n, (fmt, _) in EXPORTS.items() if fmt != "safetensors")
REFUSED: Dict[Tuple[str, str], str] = {}
for _name in RUNNABLE_EXPORTS:
    REFUSED[("export", _name)] = "already an exported"
    REFUSED[("train-weights", _name)] = (
        "not a weights file" if _name.endswith((".onnx", ".pt2", ".pte", ".tflite")) else "not"
    )
    REFUSED[("train-resume", _name)] = "run directory"
    REFUSED[("push", _name)] = "not a weights file" if _name.endswith("_ts.pt") else "exported model"
for _name in ("model.safetensors", "export.safetensors"):  # weights, not a checkpoint (best.pt, last.pt resume)
    REFUSED[("train-resume", _name)] = "run directory"


def build(root: Path, run: Path) -> Dict[str, Path]:
    """The artifacts, made from the trained digits ``run`` (copied: readers may write into a run)."""
    paths: Dict[str, Path] = {}
    shutil.copytree(run, root / "run", ignore=shutil.ignore_patterns(".resnetkit.lock*"))
    paths["run"] = root / "run"
    for name in ("model.safetensors", "best.pt", "last.pt"):
        paths[name] = root / "run" / name
    stopped = root / "stopped-run"
    result = cli("train", "--out", stopped, "--image-size", "16", "--max-steps", "2", "-j", "0", "--quiet")
    assert result.returncode == 0, result.stderr
    paths["stopped-run"], paths["stopped-last.pt"] = stopped, stopped / "last.pt"
    for name, (fmt, precision) in EXPORTS.items():
        out = root / name
        result = cli("export", "--weights", paths["run"], "--format", fmt, "--precision", precision, "--out", out)
        assert result.returncode == 0, (name, result.stderr)
        paths[name] = out
    images = root / "images"
    images.mkdir()
    for i in range(3):
        class_image(i % 3, i, size=24).save(images / f"{i}.png")
    paths["images"] = images
    return paths


def read(reader: str, artifact: str, paths: Dict[str, Path], tmp: Path, hub=None):
    """Run ``reader`` on the artifact with default flags; the CLI's Result."""
    source = paths[artifact]
    images = paths["images"]
    runs: Dict[str, Callable] = {
        "predict": lambda: cli("predict", images, "--weights", source),
        "eval": lambda: cli("eval", "--weights", source, "--out", tmp / "eval"),
        "export": lambda: cli("export", "--weights", source, "--format", "onnx", "--out", tmp / "again.onnx"),
        "explain": lambda: cli("explain", "--weights", source, "--out", tmp / "page.html"),
        "serve": lambda: _serve(source),
        # The reader is bench itself: two formats show it read the file (every format is timed in the docs' table).
        "bench": lambda: cli(
            "bench",
            "--weights",
            source,
            "--runs",
            "1",
            "--warmup",
            "0",
            "--max-images",
            "32",
            "--formats",
            "pytorch,onnx",
        ),  # fmt: skip
        "train-weights": lambda: cli(
            "train", "--weights", source, "--out", tmp / "tuned", "--max-steps", "1", "--image-size", "16", "-j", "0"
        ),
        "train-resume": lambda: _resume(source, tmp),
        "verify": lambda: cli("weights", "verify", source),
        "push": lambda: cli("weights", "push", source, "me/pushed"),
    }
    return runs[reader]()


def _resume(source: Path, tmp: Path):
    """A copy is resumed (resuming writes into the run): of the run for a run, of the run for one of
    its checkpoints."""
    source = Path(source)
    run = source if source.is_dir() else source.parent
    if (run / "config.json").exists() and (run / "last.pt").exists():
        copy = tmp / "resumed"
        shutil.copytree(run, copy, ignore=shutil.ignore_patterns(".resnetkit.lock*"))
        source = copy if source.is_dir() else copy / source.name
    return cli("train", "--resume", source, "--epochs", "6", "--max-steps", "1")


def _serve(source: Path):
    """What `serve` does with the file: load the service (as the command does) and answer one upload."""
    import asyncio
    import io
    from types import SimpleNamespace

    import httpx

    from resnetkit.errors import ResnetkitError
    from resnetkit.serve import ServeConfig, create_app, load_service

    try:
        service = load_service(ServeConfig(weights=str(source), max_batch=2), log=lambda s: None)
    except ResnetkitError as exc:
        return SimpleNamespace(returncode=1, stdout="", stderr=f"resnetkit serve: error: {exc}\n")
    app = create_app(service, ServeConfig(weights=str(source), max_batch=2), log=lambda s: None)
    buffer = io.BytesIO()
    class_image(1, 1, size=24).save(buffer, format="PNG")

    async def ask():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                answer = await client.post(
                    "/v1/predict", content=buffer.getvalue(), headers={"content-type": "image/png"}
                )
                page = await client.get("/explain")
                return answer, page

    answer, page = asyncio.run(ask())
    ok = answer.status_code == 200 and page.status_code in (200, 404)
    return SimpleNamespace(returncode=0 if ok else 1, stdout=answer.text, stderr="" if ok else page.text)


def check(reader: str, artifact: str, result) -> None:
    """Works, or is refused in one line with the documented words."""
    refusal = REFUSED.get((reader, artifact))
    lines = [line for line in result.stderr.splitlines() if line.strip() and "warning:" not in line]
    if refusal is None:
        assert result.returncode == 0, (reader, artifact, result.stderr[-2000:])
        assert "unexpected error" not in result.stderr, (reader, artifact, result.stderr)
        return
    assert result.returncode == 1 and len(lines) == 1, (reader, artifact, result.stderr)
    assert refusal in lines[0] and "unexpected" not in lines[0], (reader, artifact, lines[0])


def table_resume(paths: Dict[str, Path], tmp: Path) -> None:
    """A results table is read by predict --resume (the one reader of tables), and refused as weights."""
    out = tmp / "r.parquet"
    assert cli("predict", paths["images"], "--weights", paths["run"], "--out", out).returncode == 0
    again = cli("predict", paths["images"], "--weights", paths["run"], "--out", out, "--resume")
    assert again.returncode == 0 and "3 already done" in again.stderr, again.stderr
    refused = cli("predict", paths["images"], "--weights", out)
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert refused.returncode == 1 and len(lines) == 1 and "not a weights file" in lines[0], refused.stderr
    meta = json.loads(__import__("pyarrow.parquet").parquet.read_schema(out).metadata[b"resnetkit"])
    assert meta["runs"] and meta["weights_sha256"]
