"""Results tables under unlucky and hostile conditions: a job stopped at any moment (before its first
chunk, during a resume, during the final merge's clean-up) resumes with every input exactly once;
the same folder spelled another way is the same inputs; a damaged table is named; a failed input is
tried again; a symlink loop is walked once; a CSV record cut inside a quoted newline is dropped; a
file name that a spreadsheet would run as a formula is written as text; the provenance tells the
truth (the precision of an int8 export, every backend that made rows); decode processes are started
only for the work there is. Kills are simulated in-process where the on-disk state is the same
(a job's lock released without its clean-up); tests/batch/test_predict_job.py SIGKILLs a real one."""

import csv
import json
import os
from pathlib import Path

import pytest

from resnetkit.batch import table as table_module
from resnetkit.batch.inputs import Shard, walk
from resnetkit.batch.job import decode_workers
from resnetkit.batch.lines import complete_prefix, csv_safe, csv_text
from resnetkit.batch.table import ResultTable

from ..clirun import cli
from ..imagegen import class_image, write_small_weights

pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_small_weights(tmp_path_factory.mktemp("w") / "w.safetensors")


def make_photos(root: Path, count: int = 7) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        class_image(i % 3, i, size=36).save(root / f"{i:02d}.png")
    return root


def rows_of(path: Path) -> list:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    if path.suffix == ".csv":
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    return [json.loads(line) for line in path.read_text().splitlines()]


def predict(photos, weights, out, *flags):
    return cli("predict", photos, "--weights", weights, "--out", out, "--chunk", "2", "-b", "2", *flags)


def abandon(table: ResultTable) -> None:
    """What a SIGKILL leaves: the files as they are, the lock gone with the process."""
    table.lock.release()


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
def test_a_job_stopped_before_its_first_chunk_simply_resumes(tmp_path, weights, suffix):
    photos = make_photos(tmp_path / "p")
    out = tmp_path / f"r{suffix}"
    table = ResultTable(out, {"columns": ["path", "error"]})
    table.open()
    abandon(table)
    if suffix != ".parquet":
        (tmp_path / f"r{suffix}.meta.json").unlink()  # killed before even its record was written
    result = predict(photos, weights, out, "--resume")
    assert result.returncode == 0, result.stderr
    assert sorted(r["path"] for r in rows_of(out)) == sorted(walk([str(photos)]))


def test_a_stopped_resume_keeps_the_finished_table_whole_and_the_next_one_completes_it(tmp_path, weights, monkeypatch):
    photos = make_photos(tmp_path / "p", 5)
    out = tmp_path / "r.parquet"
    assert predict(photos, weights, out).returncode == 0
    before = rows_of(out)
    for i in range(5, 9):  # new inputs arrive
        class_image(i % 3, i, size=36).save(photos / f"{i:02d}.png")

    def interrupt(self, n):
        raise KeyboardInterrupt  # Ctrl-C after the resume committed its first chunk

    from resnetkit.cli import predict_output

    monkeypatch.setattr(predict_output.Printer, "on_chunk", interrupt)
    assert predict(photos, weights, out, "--resume").returncode == 130
    assert rows_of(out) == before  # the table is still there, as it was
    monkeypatch.undo()
    assert predict(photos, weights, out, "--resume").returncode == 0
    rows = rows_of(out)
    assert sorted(r["path"] for r in rows) == sorted(walk([str(photos)]))
    assert not (tmp_path / "r.parquet.parts").exists()


def test_a_kill_after_the_merge_before_its_clean_up_counts_nothing_twice(tmp_path, weights, monkeypatch):
    photos = make_photos(tmp_path / "p", 6)
    out = tmp_path / "r.parquet"
    monkeypatch.setattr(table_module.shutil, "rmtree", lambda *a, **k: None)  # the clean-up never happens
    assert predict(photos, weights, out).returncode == 0
    monkeypatch.undo()
    assert list((tmp_path / "r.parquet.parts").glob("part-*.parquet"))  # stale parts beside a complete table
    again = predict(photos, weights, out, "--resume")
    assert again.returncode == 0 and "0 inputs, 0 predicted, 0 failed, 6 already done" in again.stderr
    paths = [r["path"] for r in rows_of(out)]
    assert sorted(paths) == sorted(walk([str(photos)])) and len(paths) == len(set(paths))


def test_the_same_folder_spelled_another_way_is_the_same_inputs(tmp_path, weights, monkeypatch):
    make_photos(tmp_path / "imgs", 5)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "r.jsonl"
    assert predict("imgs", weights, out).returncode == 0
    for spelling in ("./imgs", "imgs/", str(tmp_path / "imgs")):
        again = predict(spelling, weights, out, "--resume")
        assert "0 inputs, 0 predicted" in again.stderr and "5 already done" in again.stderr, (spelling, again.stderr)
    assert len(rows_of(out)) == 5


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
def test_a_damaged_table_is_named_in_one_line(tmp_path, weights, suffix):
    photos = make_photos(tmp_path / "p", 3)
    out = tmp_path / f"r{suffix}"
    assert predict(photos, weights, out).returncode == 0
    data = out.read_bytes()
    out.write_bytes(data[:20] + b"\x00\xff garbage \xfe" + data[40:])
    result = predict(photos, weights, out, "--resume")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert "cannot be read to resume it" in lines[0] and "--exist-ok replaces it" in lines[0]
    assert "unexpected" not in lines[0]


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
def test_a_failed_input_is_tried_again_and_its_new_row_replaces_the_old(tmp_path, weights, suffix):
    photos = make_photos(tmp_path / "p", 4)
    (photos / "late.png").write_bytes(b"not yet an image")
    out = tmp_path / f"r{suffix}"
    assert predict(photos, weights, out).returncode == 1
    class_image(1, 99, size=36).save(photos / "late.png")  # fixed
    again = predict(photos, weights, out, "--resume")
    assert again.returncode == 0 and "1 inputs, 1 predicted, 0 failed, 4 already done" in again.stderr
    rows = rows_of(out)
    assert sorted(r["path"] for r in rows) == sorted(walk([str(photos)]))
    late = next(r for r in rows if r["path"].endswith("late.png"))
    assert not late["error"]


def test_a_symlink_loop_is_walked_once(tmp_path, weights):
    photos = make_photos(tmp_path / "p", 3)
    (photos / "sub").mkdir()
    class_image(0, 7, size=36).save(photos / "sub" / "x.png")
    os.symlink(photos, photos / "sub" / "back")  # sub/back -> p: a loop
    os.symlink(photos / "sub", photos / "self")  # self -> sub: not a loop, a second name of sub
    paths = list(walk([str(photos)]))
    assert len(paths) == 5 and sorted(Path(p).name for p in paths) == ["00.png", "01.png", "02.png", "x.png", "x.png"]
    out = tmp_path / "r.jsonl"
    assert predict(photos, weights, out).returncode == 0 and len(rows_of(out)) == 5


def test_a_csv_record_cut_inside_a_quoted_newline_is_dropped_on_resume(tmp_path, weights):
    photos = make_photos(tmp_path / "p", 3)
    odd = photos / 'two\nlines, and "quotes".png'
    class_image(2, 5, size=36).save(odd)
    out = tmp_path / "r.csv"
    assert predict(photos, weights, out).returncode == 0
    text = out.read_bytes()
    cut = text[: text.index(b"two\n") + 6]  # the kill fell inside the quoted name
    assert complete_prefix(cut, "csv") < text.index(b"two\n")
    out.write_bytes(cut)
    assert predict(photos, weights, out, "--resume").returncode == 0
    rows = rows_of(out)
    assert sorted(r["path"] for r in rows) == sorted(walk([str(photos)]))
    assert all(r["class_1"] in ("a", "b", "c") and float(r["prob_1"]) > 0 for r in rows)


def test_csv_cells_a_spreadsheet_would_run_are_written_as_text(tmp_path, weights, monkeypatch):
    names = ["=HYPERLINK(1).png", "+1.png", "@SUM.png", "-2.png", "'q.png", "ok.png"]
    for name in names:
        class_image(0, 1, size=36).save(tmp_path / name)
    monkeypatch.chdir(tmp_path)  # the inputs given as bare names: the path cells start with them
    out = tmp_path / "r.csv"
    flags = ["--weights", weights, "--out", out]
    assert cli("predict", *flags, "--", *names).returncode == 0
    with open(out, newline="") as f:
        cells = [row[0] for row in csv.reader(f)][1:]
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@"))], cells
    assert [csv_text(c) for c in cells] == names
    again = cli("predict", *flags, "--resume", "--", *names)  # the names are read back as they were: nothing redone
    assert "0 inputs" in again.stderr and "6 already done" in again.stderr, again.stderr
    for text in ("=1+1", "+x", "-x", "@x", "\tx", "'=x", "plain", "a=b"):
        assert csv_text(csv_safe(text)) == text
        assert not csv_safe(text).startswith(("=", "+", "-", "@", "\t"))


def test_provenance_records_the_precision_of_an_export_and_every_backend(tmp_path, weights):
    photos = make_photos(tmp_path / "p", 3)
    out = tmp_path / "r.jsonl"
    assert predict(photos, weights, out, "--backend", "pytorch", "--topk", "2").returncode == 0
    (photos / "03.png").write_bytes((photos / "00.png").read_bytes())
    again = predict(photos, weights, out, "--backend", "onnxruntime", "--topk", "2", "--resume")
    assert again.returncode == 0, again.stderr
    meta = json.loads((tmp_path / "r.jsonl.meta.json").read_text())
    assert [r["backend"] for r in meta["runs"]] == ["pytorch", "onnxruntime"]
    assert meta["backend"] == "onnxruntime, pytorch"
    # an int8 export runs at int8 whatever --precision says (fp32 by default): its rows say so
    from resnetkit.batch.job import JobConfig, table_meta
    from resnetkit.card import ModelCard

    card = ModelCard(arch="resnet18", num_classes=3, format="onnx", precision="int8")
    assert table_meta(card, JobConfig(sources=["x"]), "0" * 64)["precision"] == "int8"


def test_decode_processes_are_started_for_the_work_there_is(tmp_path):
    photos = make_photos(tmp_path / "p", 40)
    sources = [str(photos)]
    assert decode_workers(sources, Shard(), set(), 40) == 3  # 40 files: 16 a process
    assert decode_workers(sources[:1], Shard(), set(), 1) == 1
    assert decode_workers([str(photos / "00.png")], Shard(), set(), 8) == 0  # one file: no processes
