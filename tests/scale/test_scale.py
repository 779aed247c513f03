"""The batch job beyond one process: two torchrun ranks, and Ray Data on a local Ray instance, each
giving the rows the local engine gives. Run by `make test-scale` (Ray's start-up alone is several
seconds; `make test` stays within its budget), which CI runs too."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..clirun import cli
from ..imagegen import class_image, write_small_weights

pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale")
    photos = root / "photos"
    for i in range(30):
        folder = photos / f"c{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        class_image(i % 3, i, size=48).save(folder / f"{i:02d}.png")
    (photos / "c0" / "broken.png").write_bytes(b"not a png")
    weights = write_small_weights(root / "w.safetensors")
    local = root / "local.parquet"
    assert cli("predict", photos, "--weights", weights, "--out", local, "--backend", "pytorch").returncode == 1
    return photos, weights, {r["path"]: r for r in pq.read_table(local).to_pylist()}


def assert_same_rows(rows, want):
    assert sorted(r["path"] for r in rows) == sorted(want)  # every input exactly once
    for r in rows:
        w = want[r["path"]]
        assert (r["error"] is None) == (w["error"] is None), r
        if w["error"] is None:
            assert list(r["top_classes"]) == list(w["top_classes"])
            assert max(abs(a - b) for a, b in zip(r["top_probs"], w["top_probs"])) < 1e-5


def test_two_torchrun_ranks_each_write_their_share(job, tmp_path):
    photos, weights, want = job
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    out = tmp_path / "r.parquet"
    env = dict(os.environ, OMP_NUM_THREADS="1", RESNETKIT_BACKEND="pytorch")
    cmd = [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "resnetkit", "predict", str(photos)]
    proc = subprocess.run(
        [*cmd, "--weights", str(weights), "--out", str(out), "-j", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]  # the broken file
    parts = sorted(tmp_path.glob("r.shard-*-of-2.parquet"))
    assert [p.name for p in parts] == ["r.shard-0-of-2.parquet", "r.shard-1-of-2.parquet"]
    import pyarrow.dataset as ds

    table = ds.dataset([str(p) for p in parts]).to_table()  # the parts read back as one table (docs/predict.md)
    assert_same_rows(table.to_pylist(), want)


def test_ray_data_gives_the_local_engines_rows(job, tmp_path):
    pytest.importorskip("ray")
    import ray

    from resnetkit.batch.ray_engine import predictions

    photos, weights, want = job
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        rows = predictions([str(photos)], str(weights), backend="pytorch", batch_size=8).take_all()
    finally:
        ray.shutdown()
    assert_same_rows([{k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in r.items()} for r in rows], want)
    out = tmp_path / "ray.parquet"
    result = cli("predict", photos, "--weights", weights, "--engine", "ray", "--out", out, "--backend", "pytorch")
    assert result.returncode == 1, result.stderr
    assert_same_rows(pq.read_table(out).to_pylist(), want)
    assert "31 inputs, 30 predicted, 1 failed" in result.stderr


def test_ray_as_a_user_calls_it(job, tmp_path, monkeypatch):
    """No other flag than --engine ray (the backend measured on the driver), a table with the
    provenance every table has, in the walk's order, Ray's own output held back; --embeddings with a
    batch of nothing but unreadable files still writes one table."""
    pytest.importorskip("ray")
    import json

    from resnetkit.batch.inputs import walk

    photos, weights, want = job
    monkeypatch.delenv("RESNETKIT_BACKEND", raising=False)
    out = tmp_path / "ray.parquet"
    result = cli("predict", photos, "--weights", weights, "--engine", "ray", "--out", out)
    assert result.returncode == 1 and "unexpected" not in result.stderr, result.stderr
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        f"predict: 31 inputs, 30 predicted, 1 failed -> {out}"
    ]
    rows = pq.read_table(out).to_pylist()
    assert [r["path"] for r in rows] == list(walk([str(photos)]))  # the local engine's order
    assert_same_rows(rows, want)
    meta = json.loads(pq.read_schema(out).metadata[b"resnetkit"])
    assert meta["weights_sha256"] and meta["engine"] == "ray" and meta["runs"][0]["backend"] in (
        "pytorch", "onnxruntime", "openvino",
    )  # fmt: skip
    broken = tmp_path / "broken"
    broken.mkdir()
    for i in range(4):
        (broken / f"{i}.png").write_bytes(b"not an image")
    class_image(0, 0, size=48).save(broken / "z.png")
    out = tmp_path / "e.parquet"
    result = cli("predict", broken, "--weights", weights, "--engine", "ray", "--embeddings", "-b", "2", "--out", out)
    assert result.returncode == 1 and "5 inputs, 1 predicted, 4 failed" in result.stderr, result.stderr
    assert pq.read_table(out).column_names[-1] == "embedding"


def test_errors_inside_ray_reach_the_user_as_resnetkits_line():
    ray = pytest.importorskip("ray")
    from resnetkit.batch.ray_engine import engine_error
    from resnetkit.errors import BadFile, EngineFailed

    message = "w.safetensors: its tensors do not match the hash recorded when it was written"
    inner = BadFile(message)
    assert engine_error(ray.exceptions.RayTaskError("PredictActor.__call__", "Traceback ...", inner)) is inner
    # An actor that died in its constructor: Ray keeps only the text of the error
    trace = f'Traceback (most recent call last):\n  File "x.py", line 1, in f\nresnetkit.errors.BadFile: {message}'
    died = engine_error(
        ray.exceptions.ActorDiedError(ray.exceptions.RayTaskError("PredictActor.__init__", trace, inner))
    )
    assert isinstance(died, BadFile) and str(died) == message
    trace = 'Traceback (most recent call last):\n  File "x.py", line 1, in f\nZeroDivisionError: division by zero'
    other = ray.exceptions.RayTaskError("f", trace, ZeroDivisionError("division by zero"))
    said = engine_error(ray.exceptions.ActorDiedError(other))
    assert isinstance(said, EngineFailed) and "ZeroDivisionError: division by zero" in str(said)
