"""Multi-label training end to end: the digits grid and a labels.csv folder, BCE with mixed multi-hot
targets, mAP / per-class AP / F1 in eval, tuned per-class thresholds in the card, and every reader of the
file (predict and its tables, an ONNX export, eval, serve) answering with the labels above them (sigmoid).

The target (mAP >= 90 with the default settings) is a long run: tests/scale/test_multilabel_target.py."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from resnetkit.card import ModelCard
from resnetkit.data.multilabel import digits_grid_images, read_labels
from resnetkit.engine.multilabel import multilabel_metrics
from resnetkit.errors import BadFile, InvalidOption

from ..clirun import cli


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A short multi-label digits-grid run (16 px, 1 epoch: the plumbing, not the accuracy)."""
    out = tmp_path_factory.mktemp("ml") / "run"
    result = cli(
        "train", "--task", "multilabel", "--image-size", "16", "--epochs", "1", "--amp", "none", "--workers", "0",
        "--mixup-alpha", "0.2", "--quiet", "--out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def grids(run):
    return digits_grid_images(run.parent / "grids", count=6, image_size=16)


def test_the_run_records_the_task_the_thresholds_and_map(run):
    from resnetkit.weights.resolve import resolve

    card = resolve(str(run)).card
    assert card.task == "multilabel" and card.multilabel
    assert len(card.thresholds) == 10 and all(0 <= t <= 1 for t in card.thresholds)
    assert card.to_dict()["card_version"] == 3  # a resnetkit without multi-label refuses the file
    assert ModelCard(arch="resnet18", num_classes=2).to_dict()["card_version"] == 2
    summary = json.loads((run / "summary.json").read_text())
    history = (run / "metrics.csv").read_text().splitlines()
    assert "val_mAP" in history[0] and "val_exact_match" in history[0]
    assert 0 < summary["final_val_mAP"] <= 100 and "final_val_acc1" not in summary
    samples = sorted((run / "samples").glob("*.png"))
    assert samples and "_labels" in samples[0].name


def test_predict_answers_with_the_labels_above_the_thresholds(run, grids, tmp_path):
    from resnetkit.weights.resolve import resolve

    card = resolve(str(run)).card
    result = cli(
        "predict", *grids, "--weights", run, "--json", "--quiet", "--logits", "--backend", "pytorch", "--topk", "10"
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert all("labels" in r and "top" not in r for r in rows)
    for row in rows:
        probs = torch.sigmoid(torch.tensor(row["logits"]))
        expected = {str(i) for i in range(10) if probs[i] >= card.thresholds[i]}
        assert {label["class"] for label in row["labels"]} == expected
        assert [label["prob"] for label in row["labels"]] == sorted(
            (label["prob"] for label in row["labels"]), reverse=True
        )
    none = cli("predict", *grids, "--weights", run, "--json", "--quiet", "--threshold", "1", "--backend", "pytorch")
    assert all(json.loads(line)["labels"] == [] for line in none.stdout.splitlines())
    capped = cli("predict", *grids, "--weights", run, "--json", "--quiet", "--threshold", "0", "--topk", "3")
    assert all(len(json.loads(line)["labels"]) == 3 for line in capped.stdout.splitlines())  # the 3 most probable


def test_tables_and_an_onnx_export_give_the_same_labels(run, grids, tmp_path):
    pytest.importorskip("onnxruntime")
    onnx = tmp_path / "m.onnx"
    assert cli("export", "--weights", run, "--format", "onnx", "--out", onnx).returncode == 0
    tables = {}
    for name, weights in (("weights", run), ("onnx", onnx)):
        tables[name] = tmp_path / f"{name}.csv"
        result = cli("predict", *grids, "--weights", weights, "--out", tables[name], "--quiet", "--backend", "pytorch")
        assert result.returncode == 0, result.stderr
    import csv

    def labels(path):
        return [tuple(r[f"class_{i}"] for i in range(1, 6)) for r in csv.DictReader(path.open())]

    assert labels(tables["weights"]) == labels(tables["onnx"])
    evaluated = cli("eval", "--weights", onnx, "--json")  # the export carries the task and the data it names
    assert evaluated.returncode == 0, evaluated.stderr
    assert "mAP" in json.loads(evaluated.stdout)


def test_eval_reports_map_per_class_ap_and_f1(run):
    result = cli("eval", "--weights", run, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["task"] == "multilabel" and 0 <= report["mAP"] <= 100
    assert set(report["per_class_ap"]) == set(map(str, range(10))) and set(report["per_class_f1"]) == set(
        report["per_class_ap"]
    )
    saved = json.loads((run / "eval.json").read_text())
    assert saved["mAP"] == report["mAP"] and not (run / "confusion.png").exists()
    stricter = json.loads(cli("eval", "--weights", run, "--json", "--threshold", "0.99").stdout)
    assert stricter["mAP"] == report["mAP"]  # a ranking metric: thresholds do not move it
    assert stricter["thresholds"]["0"] == 0.99


def test_threshold_on_a_single_label_model_is_refused_in_one_line(digits_run, grids):
    result = cli("predict", grids[0], "--weights", digits_run, "--threshold", "0.3", "--backend", "pytorch")
    assert result.returncode != 0 and "threshold applies to multi-label models" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = cli("eval", "--weights", digits_run, "--threshold", "0.3")
    assert result.returncode != 0 and "multi-label" in result.stderr


def test_serve_answers_with_labels(run, grids):
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    import asyncio

    from resnetkit.serve import ServeConfig, create_app, load_service

    cfg = ServeConfig(weights=str(run), max_batch=4, backend="pytorch")
    app = create_app(load_service(cfg, log=lambda s: None), cfg, log=lambda s: None)

    async def scenario():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                files = [("file", (p.name, p.read_bytes(), "image/png")) for p in grids[:2]]
                ok = await client.post("/v1/predict", files=files)
                none = await client.post("/v1/predict?threshold=1", files=files)
                bad = await client.post("/v1/predict?threshold=2", files=files)
                info = await client.get("/v1/model")
                return ok, none, bad, info

    ok, none, bad, info = asyncio.run(scenario())
    assert ok.status_code == 200 and all("labels" in p and "top" not in p for p in ok.json()["predictions"])
    assert all(p["labels"] == [] for p in none.json()["predictions"])
    assert bad.status_code == 422 and "threshold" in bad.json()["error"]
    assert info.json()["task"] == "multilabel"


def _folder(root, count=48):
    """A labels.csv folder of digit grids (16 px), written as a user would have it."""
    images = digits_grid_images(root / "images", count=count, image_size=16)
    lines = ["image,labels"] + [f"images/{p.name},{' '.join(p.stem.split('_labels')[1].split('-'))}" for p in images]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def test_a_labels_csv_folder_trains_and_evaluates(tmp_path):
    data = _folder(tmp_path / "data")
    out = tmp_path / "run"
    result = cli(
        "train", "--task", "multilabel", "--data", data, "--epochs", "1", "--batch-size", "16", "--train-crop", "16",
        "--eval-resize", "16", "--eval-crop", "16", "--amp", "none", "--workers", "0", "--quiet", "--out", out,
        "--val-split", "0.25",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "multilabel" and config["loss"] == "bce"
    evaluated = cli("eval", "--weights", out, "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["images"] == 12  # the run's own validation share
    given = cli("eval", "--weights", out, "--data", data, "--json", "--out", tmp_path / "e")
    assert given.returncode == 0 and json.loads(given.stdout)["images"] == 48


@pytest.mark.parametrize(
    "content, message",
    [
        ("path,tags\nimages/a.png,1\n", "header"),
        ("image,labels\nimages/missing.png,1 2\n", "line 2"),
        ("image,labels\nimages/a.png,1\nimages/a.png,2\n", "listed twice"),
        ("image,labels,split\nimages/a.png,1,test\n", "train or val"),
        ("image,labels\nimages/a.png,1\n", "at least 2"),
    ],
    ids=["header", "missing-image", "duplicate", "split", "one-label"],
)
def test_a_bad_labels_file_is_refused_naming_the_line(tmp_path, content, message):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "a.png")
    (tmp_path / "labels.csv").write_text(content)
    with pytest.raises(BadFile, match=message):
        read_labels(tmp_path, tmp_path / "labels.csv")
    result = cli("train", "--task", "multilabel", "--data", tmp_path, "--epochs", "1")
    assert result.returncode != 0 and message.split()[0] in result.stderr


def test_task_options_are_checked():
    from resnetkit.engine.config import make_config

    assert make_config("digits", task="multilabel").loss == "bce"
    for overrides, field in (
        (dict(task="multilabel", loss="ce"), "loss"),
        (dict(task="multilabel", data="cifar10:/x"), "data"),
        (dict(task="multilabel", teacher="resnet18"), "teacher"),
        (dict(labels="x.csv", data="/x"), "labels"),
    ):
        with pytest.raises(InvalidOption) as info:
            make_config("digits", **overrides)
        assert info.value.field == field


def test_metrics_against_hand_computed_values():
    targets = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=np.float32)
    perfect = multilabel_metrics(targets * 0.8 + 0.1, targets)
    assert perfect.mAP == 100.0 and perfect.ap[2] is None  # class 2 has no positive image: left out
    assert perfect.exact_match == 100.0 and perfect.f1[:2] == [100.0, 100.0]
    # Class 0 ranked [0.9 (pos), 0.6 (neg), 0.4 (pos)]: AP = (1/1 + 2/3) / 2.
    scores = np.array([[0.9, 0.1, 0.0], [0.6, 0.9, 0.0], [0.4, 0.8, 0.0], [0.1, 0.2, 0.0]], dtype=np.float32)
    result = multilabel_metrics(scores, targets)
    assert result.ap[0] == pytest.approx(100 * (1 + 2 / 3) / 2, abs=1e-3)
    assert result.tuned[0] == pytest.approx(0.4)  # F1 1.0 needs the threshold at the lowest positive
    assert result.f1[0] == pytest.approx(100 * 2 * 0.5 * 0.5 / 1.0, abs=1e-3)  # at 0.5: P 1/2, R 1/2


def test_a_spreadsheets_labels_file_reads_the_same(tmp_path):
    """A byte-order mark and labels separated by commas (what a spreadsheet writes) read as spaces do."""
    (tmp_path / "images").mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / "images" / name)
    (tmp_path / "plain.csv").write_text("image,labels\nimages/a.png,cat dog\nimages/b.png,\n")
    (tmp_path / "sheet.csv").write_bytes(b'\xef\xbb\xbfimage,labels\r\nimages/a.png,"cat, dog"\r\nimages/b.png,\r\n')
    plain, sheet = (read_labels(tmp_path, tmp_path / f) for f in ("plain.csv", "sheet.csv"))
    assert plain == sheet and plain[1] == ["cat", "dog"] and plain[0][1][1] == ()
