"""Result tables: one row per input, in Parquet, CSV or JSON Lines (by the file's suffix), written by
one writer, committed in chunks, resumable, never silently overwritten or mixed.

- **One writer**: the table's lock (``OneWriter``, beside the file) is held for the life of the job.
- **Never mixed**: an existing table is refused unless ``resume`` (continue it: the inputs it holds are
  skipped; refused if it was made by another model, preprocessing, precision or other columns) or
  ``exist_ok`` (replace it).
- **Chunks**: rows are committed ``chunk`` at a time. CSV and JSON Lines are appended and fsynced;
  a cut last line (a kill mid-write) is dropped on resume. Parquet cannot be appended to (its index is
  at the end of the file), so each chunk is a complete Parquet file in ``NAME.parquet.parts/``, and the
  job's end merges them into ``NAME.parquet``; a SIGKILL loses at most the chunk in flight.
- **Provenance**: the model's card, the weights' hash, the precision, the backend, the decode mode and
  resnetkit's version are recorded: in the Parquet file's schema metadata, and for CSV and JSON Lines
  in ``NAME.csv.meta.json`` (``NAME.jsonl.meta.json``) beside the table.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set

from ..errors import BadFile, InvalidOption, MissingDependency
from ..fileio import OneWriter, atomic_path, check_output_file, describe_os_error, disk_full_error, make_dir, write_text

FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl"}
IDENTITY = ("arch", "weights_sha256", "classes", "preprocess", "in_chans", "precision", "draft", "topk", "columns")


def table_format(path: Path) -> str:
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise InvalidOption(f"out {path}: a results table ends in .parquet, .csv or .jsonl", field="out")
    return fmt


def require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise MissingDependency("a .parquet table needs pyarrow: pip install 'resnetkit[batch]'") from None


def columns_for(fmt: str, topk: int, embeddings: bool, logits: bool) -> List[str]:
    """The table's columns. CSV holds one value a cell, so its top-k is spread over columns and
    vectors (embeddings, logits) are refused."""
    if fmt == "csv":
        if embeddings or logits:
            what = "embeddings" if embeddings else "logits"
            raise InvalidOption(
                f"{what} are vectors, which a CSV cell cannot hold; write a .parquet or .jsonl table",
                field="embeddings" if embeddings else "logits",
            )
        cols = ["path"]
        for i in range(1, topk + 1):
            cols += [f"index_{i}", f"class_{i}", f"prob_{i}"]
        return cols + ["error"]
    cols = ["path", "top_indices", "top_classes", "top_probs", "error"]
    return cols + (["embedding"] if embeddings else []) + (["logits"] if logits else [])


class ResultTable:
    """The table at ``path`` for one job (see the module docstring). ``open()`` takes the lock and
    returns the paths already done; ``write(rows)`` commits a chunk; ``close()`` finishes it."""

    def __init__(self, path: Path, meta: Dict[str, Any], resume: bool = False, exist_ok: bool = False) -> None:
        self.path, self.meta = Path(path), dict(meta)
        self.fmt = table_format(self.path)
        if self.fmt == "parquet":
            require_pyarrow()
        if resume and exist_ok:
            raise InvalidOption("pass resume or exist_ok, not both", field="resume", related=("exist_ok",))
        self.resume, self.exist_ok = resume, exist_ok
        self.parts = self.path.with_name(self.path.name + ".parts")
        self.meta_path = self.path.with_name(self.path.name + ".meta.json")
        self.lock = OneWriter(self.path, "results table")
        self.rows_written = 0
        self._part = 0

    # ---- opening -------------------------------------------------------------------------------------

    def _existing(self) -> List[Path]:
        return [p for p in (self.path, self.parts, self.meta_path) if p.exists()]

    def open(self) -> Set[str]:
        check_output_file(self.path, "results table")
        self.lock.acquire()
        try:
            existing = self._existing()
            if existing and not (self.resume or self.exist_ok):
                raise BadFile(
                    f"out {self.path} already holds results; use resume to continue it (skipping the inputs it "
                    "holds), exist_ok to replace it, or another out",
                    field="out",
                    related=("resume", "exist_ok"),
                )
            if existing and self.exist_ok:
                self._remove()
            done = self._resume() if (existing and self.resume) else set()
            self._start()
            return done
        except BaseException:
            self.lock.release()
            raise

    def _remove(self) -> None:
        for p in self._existing():
            shutil.rmtree(p) if p.is_dir() else p.unlink()

    def _start(self) -> None:
        if self.fmt == "parquet":
            make_dir(self.parts, "results folder")
            self._part = max((int(p.stem.split("-")[-1]) for p in self.parts.glob("part-*.parquet")), default=-1) + 1
            return
        write_text(self.meta_path, json.dumps(self.meta, indent=1, sort_keys=True) + "\n", "table metadata")
        if not self.path.exists() or self.path.stat().st_size == 0:
            with open(self.path, "w", newline="") as f:
                if self.fmt == "csv":
                    csv.writer(f).writerow(self.meta["columns"])
                f.flush()
                os.fsync(f.fileno())

    # ---- resuming ------------------------------------------------------------------------------------

    def _recorded_meta(self) -> Optional[Dict[str, Any]]:
        if self.fmt != "parquet":
            try:
                return json.loads(self.meta_path.read_text())
            except (OSError, ValueError):
                return None
        import pyarrow.parquet as pq

        files = sorted(self.parts.glob("part-*.parquet")) if self.parts.is_dir() else []
        files += [self.path] if self.path.is_file() else []
        for f in files:
            raw = (pq.read_schema(f).metadata or {}).get(b"resnetkit")
            if raw:
                return json.loads(raw)
        return None

    def _check_same_job(self) -> None:
        recorded = self._recorded_meta()
        if recorded is None:
            raise BadFile(
                f"out {self.path}: no record of the model that made it; it cannot be resumed (exist_ok replaces it)",
                field="out",
                related=("exist_ok",),
            )
        differ = [k for k in IDENTITY if recorded.get(k) != self.meta.get(k)]
        if differ:
            raise BadFile(
                f"out {self.path} was made by another model or setting ({', '.join(differ)} differ); resuming would "
                "mix two jobs' results: use the same weights and flags, exist_ok to replace it, or another out",
                field="out",
                related=("exist_ok",),
            )

    def _resume(self) -> Set[str]:
        self._check_same_job()
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            if self.path.is_file():  # a finished table grows: it becomes the first part again
                make_dir(self.parts, "results folder")
                os.replace(self.path, self.parts / "part-000000.parquet")
            return {
                p
                for f in sorted(self.parts.glob("part-*.parquet"))
                for p in pq.read_table(f, columns=["path"])["path"].to_pylist()
            }
        return self._resume_lines()

    def _resume_lines(self) -> Set[str]:
        """The paths of the complete lines; a cut last line (a kill mid-write) is truncated away."""
        data = self.path.read_bytes() if self.path.exists() else b""
        keep = data[: data.rfind(b"\n") + 1]
        if len(keep) != len(data):
            with open(self.path, "r+b") as f:
                f.truncate(len(keep))
        text = keep.decode("utf-8")
        if self.fmt == "csv":
            return {row["path"] for row in csv.DictReader(io.StringIO(text))}
        return {json.loads(line)["path"] for line in text.splitlines() if line.strip()}

    # ---- writing -------------------------------------------------------------------------------------

    def describe(self, **facts: Any) -> None:
        """Add how the job runs (backend, ...) to the recorded metadata (not part of its identity)."""
        self.meta.update(facts)
        if self.fmt != "parquet":
            write_text(self.meta_path, json.dumps(self.meta, indent=1, sort_keys=True) + "\n", "table metadata")

    def write(self, rows: Sequence[Dict[str, Any]]) -> None:
        """Commit ``rows``: when this returns they are on disk (fsynced)."""
        if not rows:
            return
        if self.fmt == "parquet":
            self._write_part(rows)
        else:
            self._append(rows)
        self.rows_written += len(rows)

    def _write_part(self, rows: Sequence[Dict[str, Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist([{c: r.get(c) for c in self.meta["columns"]} for r in rows], schema=self.schema())
        with atomic_path(self.parts / f"part-{self._part:06d}.parquet", "results chunk") as tmp:
            pq.write_table(table, tmp)
        self._part += 1

    def _append(self, rows: Sequence[Dict[str, Any]]) -> None:
        buf = io.StringIO()
        if self.fmt == "csv":
            writer = csv.writer(buf)
            for r in rows:
                writer.writerow(csv_cells(r, self.meta["columns"]))
        else:
            for r in rows:
                buf.write(json.dumps({c: r.get(c) for c in self.meta["columns"]}) + "\n")
        existed = self.path.exists()
        try:
            with open(self.path, "a", newline="") as f:
                f.write(buf.getvalue())
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            if exc.errno in (28, 122):
                raise disk_full_error(self.path, "results table", existed) from None
            raise BadFile(describe_os_error(self.path, exc, "write")) from None

    def schema(self):
        import pyarrow as pa

        types = {
            "path": pa.string(),
            "top_indices": pa.list_(pa.int32()),
            "top_classes": pa.list_(pa.string()),
            "top_probs": pa.list_(pa.float32()),
            "error": pa.string(),
            "embedding": pa.list_(pa.float32()),
            "logits": pa.list_(pa.float32()),
        }
        fields = [pa.field(c, types[c]) for c in self.meta["columns"]]
        return pa.schema(fields, metadata={"resnetkit": json.dumps(self.meta, sort_keys=True)})

    def close(self, complete: bool = True) -> None:
        """Finish the table (a Parquet job merges its chunks into one file) and let the lock go;
        ``complete=False`` (a stopped job) keeps the chunks for a resume."""
        try:
            if complete and self.fmt == "parquet":
                self._merge()
        finally:
            self.lock.release()

    def _merge(self) -> None:
        import pyarrow.parquet as pq

        parts = sorted(self.parts.glob("part-*.parquet"))
        with atomic_path(self.path, "results table") as tmp:
            with pq.ParquetWriter(tmp, self.schema()) as writer:
                for part in parts:  # one part at a time: memory stays flat
                    writer.write_table(pq.read_table(part, schema=self.schema()))
        shutil.rmtree(self.parts, ignore_errors=True)


def csv_cells(row: Dict[str, Any], columns: Sequence[str]) -> List[Any]:
    cells = {"path": row.get("path"), "error": row.get("error") or ""}
    for i, (index, name, prob) in enumerate(
        zip(row.get("top_indices") or [], row.get("top_classes") or [], row.get("top_probs") or []), start=1
    ):
        cells.update({f"index_{i}": index, f"class_{i}": name, f"prob_{i}": f"{prob:.6g}"})
    return [cells.get(c, "") for c in columns]
