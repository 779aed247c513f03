"""`resnetkit predict` as a batch job: every table format and column, provenance, the never-mixed
policy, a real SIGKILL then --resume (every input exactly once, the values an uninterrupted run
gives), shards, draft decoding, the walk's order, and missing extras named."""

import builtins
import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import resnetkit as rk
from resnetkit.batch.decode import Decoder
from resnetkit.batch.inputs import Shard, walk
from resnetkit.data.decode import load_image

from ..clirun import cli
from ..imagegen import class_image, write_small_weights
from ..sweep import sweep

pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402


def one_line_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip() and "warning:" not in line]
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """24 images in two nested folders (PNG and JPEG, some larger than twice the resize size), and one
    broken file."""
    root = tmp_path_factory.mktemp("photos")
    for i in range(24):
        folder = root / ("a" if i % 2 else "b") / ("deep" if i % 3 == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        image = class_image(i % 3, i, size=40 if i % 4 else 120)
        image.save(
            folder / (f"{i:02d}.jpg" if i % 4 == 0 else f"{i:02d}.png"), **({"quality": 90} if i % 4 == 0 else {})
        )
    (root / "b" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_small_weights(tmp_path_factory.mktemp("w") / "w.safetensors")


def read_table(path: Path) -> list:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    if path.suffix == ".csv":
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_format_and_column(photos, weights, tmp_path):
    inputs = list(walk([str(photos)]))
    assert len(inputs) == 25
    printed = cli("predict", photos, "--weights", weights, "--json", "--topk", "2", "-j", "2")
    assert printed.returncode == 1  # the broken file
    by_path = {r["path"]: r for r in map(json.loads, printed.stdout.splitlines())}
    for suffix in (".parquet", ".jsonl", ".csv"):
        out = tmp_path / f"r{suffix}"
        extra = ["--embeddings", "--logits"] if suffix != ".csv" else []
        result = cli("predict", photos, "--weights", weights, "--out", out, "--topk", "2", "-j", "2", *extra)
        assert result.returncode == 1 and "25 inputs, 24 predicted, 1 failed" in result.stderr, result.stderr
        rows = read_table(out)
        assert [r["path"] for r in rows] == inputs  # the walk's order, every input once
        broken = [r for r in rows if r["error"]]
        assert (
            len(broken) == 1 and broken[0]["path"].endswith("broken.jpg") and "not an image file" in broken[0]["error"]
        )
        good = next(r for r in rows if not r["error"])
        want = by_path[good["path"]]["top"]
        if suffix == ".csv":
            assert good["class_1"] == want[0]["class"] and abs(float(good["prob_1"]) - want[0]["prob"]) < 1e-5
            assert list(rows[0]) == ["path", "index_1", "class_1", "prob_1", "index_2", "class_2", "prob_2", "error"]
        else:
            assert good["top_classes"] == [t["class"] for t in want] and len(good["embedding"]) == 512
            assert abs(good["top_probs"][0] - want[0]["prob"]) < 1e-5 and len(good["logits"]) == 3
    refused = one_line_error(cli("predict", photos, "--weights", weights, "--out", tmp_path / "x.csv", "--embeddings"))
    assert "--embeddings are vectors, which a CSV cell cannot hold" in refused


def test_embeddings_and_logits_are_the_models(photos, weights, tmp_path):
    """--embeddings is forward_head(pre_logits=True), --logits the model's output, on the exact
    preprocessing (--no-draft) - with the preprocessing fused into the graph."""
    out = tmp_path / "e.jsonl"
    assert (
        cli("predict", photos, "--weights", weights, "--out", out, "--embeddings", "--logits", "--no-draft").returncode
        == 1
    )
    model = rk.resnet18(weights=str(weights)).eval()
    pre = model.card.preprocess
    for row in read_table(out)[:6]:
        if row["error"]:
            continue
        x = pre.transform()(load_image(row["path"], pre.resize_size))[None]
        with torch.no_grad():
            features = model.forward_head(model.forward_features(x), pre_logits=True)[0]
            logits = model(x)[0]
        assert np.abs(np.array(row["embedding"]) - features.numpy()).max() < 1e-4
        assert np.abs(np.array(row["logits"]) - logits.numpy()).max() < 1e-4


def test_provenance_and_the_never_mixed_policy(photos, weights, tmp_path):
    out = tmp_path / "r.parquet"
    assert cli("predict", photos, "--weights", weights, "--out", out).returncode == 1
    meta = json.loads(pq.read_schema(out).metadata[b"resnetkit"])
    assert (
        meta["arch"] == "resnet18" and meta["weights"].endswith("w.safetensors") and len(meta["weights_sha256"]) == 64
    )
    assert meta["preprocess"]["crop_size"] == 32 and meta["precision"] == "fp32" and meta["backend"] == "pytorch"
    assert meta["resnetkit_version"] == rk.__version__ and meta["draft"] is False and meta["decode"] == "resnetkit"
    again = one_line_error(cli("predict", photos, "--weights", weights, "--out", out))
    assert "already holds results; use --resume" in again and "--exist-ok" in again
    other = write_small_weights(tmp_path / "other.safetensors", seed=1)
    mixed = one_line_error(cli("predict", photos, "--weights", other, "--out", out, "--resume"))
    assert "was made by another model or setting (weights_sha256 differ)" in mixed
    assert "topk differ" in one_line_error(
        cli("predict", photos, "--weights", weights, "--out", out, "--resume", "--topk", "2")
    )
    nothing = cli("predict", photos, "--weights", weights, "--out", out, "--resume")
    # the broken file is tried again (it may have been fixed); every input is still in the table once
    assert nothing.returncode == 1 and "1 inputs, 0 predicted, 1 failed, 24 already done" in nothing.stderr
    assert len(read_table(out)) == 25
    replaced = cli("predict", photos / "a", "--weights", other, "--out", out, "--exist-ok")
    assert replaced.returncode == 0 and len(read_table(out)) == 12


def start_predicting(args, stop_after_chunk: int) -> subprocess.Popen:
    """A real `predict` process, SIGKILLed once it has said it committed a given chunk: its next
    chunk may be half written (an event waited for, not a clock raced)."""
    cmd = [sys.executable, "-m", "resnetkit", "predict", *map(str, args), "--verbose", "--quiet"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    for line in proc.stderr:
        if line.startswith(f"predict: chunk {stop_after_chunk} committed"):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    return proc


@pytest.mark.parametrize("suffix", sweep([".jsonl", ".parquet"], [".parquet"]))
def test_sigkill_then_resume_records_every_input_once_with_the_same_values(photos, weights, tmp_path, suffix):
    flags = ["--weights", weights, "--chunk", "3", "--batch-size", "3", "-j", "1", "--backend", "pytorch"]
    whole = tmp_path / f"whole{suffix}"
    assert cli("predict", photos, *flags, "--out", whole).returncode == 1
    cut = tmp_path / f"cut{suffix}"
    killed = start_predicting([photos, *flags, "--out", cut], stop_after_chunk=2)
    assert killed.returncode == -signal.SIGKILL
    resumed = cli("predict", photos, *flags, "--out", cut, "--resume")
    assert resumed.returncode == 1 and "already done" in resumed.stderr, resumed.stderr
    done = int(resumed.stderr.split(" already done")[0].rsplit(", ", 1)[-1])
    assert 6 <= done < 25  # at least the 2 committed chunks survived; the rest was redone
    rows, want = read_table(cut), read_table(whole)
    assert sorted(r["path"] for r in rows) == sorted(r["path"] for r in want)  # every input exactly once
    by_path = {r["path"]: r for r in want}
    for r in rows:
        assert (
            r["top_classes"] == by_path[r["path"]]["top_classes"] and r["top_probs"] == by_path[r["path"]]["top_probs"]
        )


def test_shards_cover_every_input_exactly_once(photos, weights, tmp_path):
    out = tmp_path / "r.jsonl"
    for i in range(3):
        assert cli("predict", photos, "--weights", weights, "--out", out, "--shard", f"{i}/3").returncode in (0, 1)
    parts = sorted(tmp_path.glob("r.shard-*-of-3.jsonl"))
    assert [p.name for p in parts] == [f"r.shard-{i}-of-3.jsonl" for i in range(3)]
    paths = [r["path"] for p in parts for r in read_table(p)]
    assert sorted(paths) == sorted(walk([str(photos)])) and len(paths) == len(set(paths))
    assert Shard.parse("2/4") == Shard(2, 4) and Shard(1, 2).within(1, 2) == Shard(3, 4)
    for bad in ("3/3", "x", "1/0"):
        assert "--shard" in one_line_error(cli("predict", photos, "--weights", weights, "--shard", bad))


def test_draft_decoding_and_the_exact_path(tmp_path):
    big = tmp_path / "big.jpg"
    Image.fromarray((np.random.default_rng(0).random((900, 1200, 3)) * 255).astype(np.uint8)).save(big, quality=90)
    pre = rk.card.Preprocess(256, 224)
    exact, fast = Decoder(pre, draft=False)(str(big)), Decoder(pre, draft=True)(str(big))
    reference = np.asarray(pre.transform()(load_image(big, 256)).numpy())  # float, normalised
    from resnetkit.deploy.fused import normalise

    assert torch.equal(normalise(torch.from_numpy(exact)[None], pre, 3)[0], torch.from_numpy(reference))
    assert exact.shape == fast.shape == (224, 224, 3) and not np.array_equal(exact, fast)
    assert np.abs(exact.astype(int) - fast.astype(int)).mean() < 8  # a 1/2-scale decode, then the same resize


def test_the_walk_streams_in_the_order_of_names(tmp_path):
    for name in ("b/2.png", "a/z.png", "a/b/1.png", "a-b.png", ".hidden/x.png", "c.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    got = [os.path.relpath(p, tmp_path) for p in walk([str(tmp_path), str(tmp_path / "missing.png")])]
    assert got[:5] == ["a/b/1.png", "a/z.png", "a-b.png", "b/2.png", "c.png"] and got[5].endswith("missing.png")
    stream = walk([str(tmp_path)])
    assert next(stream).endswith("1.png")  # a generator: the first path before the rest is listed


def test_int8_calibrates_on_the_inputs(photos, weights, tmp_path):
    few = cli("predict", photos, "--weights", weights, "--precision", "int8")
    assert few.returncode == 1 and few.stderr.splitlines()[-1].endswith(
        "int8 needs at least 32 readable images among the first inputs to calibrate on, found 24; pass --calibration DIR"
    )
    many = tmp_path / "many"
    many.mkdir()
    for i in range(40):
        class_image(i % 3, i).save(many / f"{i:02d}.png")
    out = tmp_path / "q.jsonl"
    # One runtime named (optimize()'s measured choice is tested in tests/deploy/test_backends.py)
    result = cli("predict", many, "--weights", weights, "--out", out, "--precision", "int8", "--backend", "onnxruntime")
    assert result.returncode == 0, result.stderr
    assert "int8 calibrated on the first 64 readable inputs" in result.stderr and "int8 on onnxruntime" in result.stderr
    meta = json.loads((tmp_path / "q.jsonl.meta.json").read_text())
    assert meta["precision"] == "int8" and meta["backend"] == "onnxruntime"
    assert sum(1 for r in read_table(out) if not r["error"]) == 40


def test_missing_extras_are_named(photos, weights, tmp_path, monkeypatch):
    real_import = builtins.__import__

    def without(name, *args, **kwargs):
        if name.split(".")[0] in ("pyarrow", "ray"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without)
    line = one_line_error(cli("predict", photos, "--weights", weights, "--out", tmp_path / "r.parquet"))
    assert "pip install 'resnetkit[batch]'" in line
    line = one_line_error(cli("predict", photos, "--weights", weights, "--engine", "ray"))
    assert "pip install 'resnetkit[ray]'" in line


def test_a_precision_only_files_have_is_refused_for_weights(weights):
    """fp16 is Core ML's (exported packages): a job or predictor asked for it on PyTorch weights says so
    instead of running fp32 under an fp16 label."""
    from resnetkit.batch.job import JobConfig
    from resnetkit.batch.predictor import build_predictor
    from resnetkit.errors import InvalidOption

    with pytest.raises(InvalidOption, match="fp16 runs only from Core ML"):
        JobConfig(sources=["x"], precision="fp16").check()
    with pytest.raises(InvalidOption, match="fp16 runs only from Core ML"):
        build_predictor(rk.get_model("resnet18", weights=str(weights)).eval(), precision="fp16", small_job=1)
