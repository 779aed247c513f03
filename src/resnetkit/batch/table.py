"""Result tables: one row per input, in Parquet, CSV or JSON Lines (by the file's suffix), written by
one writer, committed in chunks, resumable, never silently overwritten or mixed.

- **One writer**: the table's lock (``OneWriter``, beside the file) is held for the life of the job.
- **Never mixed**: an existing table is refused unless ``resume`` (continue it: the inputs it holds are
  skipped; refused if it was made by another model, preprocessing, precision or other columns) or
  ``exist_ok`` (replace it). A job stopped before it committed anything left nothing to mix: it
  simply starts again.
- **Every input once**: inputs are matched by their normalised absolute path (``imgs/a.jpg`` and
  ``./imgs/a.jpg`` are one input). An input that failed (unreadable, not finite) is not done: a resume
  tries it again and its new row replaces the failed one.
- **Chunks**: rows are committed ``chunk`` at a time. CSV and JSON Lines are appended and fsynced;
  a record cut by a kill mid-write is dropped on resume. Parquet cannot be appended to (its index is
  at the end of the file), so each chunk is a complete Parquet file in ``NAME.parquet.parts/``, named
  by its job, and the job's end merges the table and its parts into a new ``NAME.parquet``, replaced
  atomically: a finished table stays at its path, whole, while a resume of it runs, and a kill during
  the merge leaves either the old table and the parts or the new table (which names the parts it
  holds, so stale parts are removed, never counted twice).
- **Provenance**: the model's card, the weights' hash, the precision, the decode mode, the columns and,
  per job that wrote rows (``runs``), the backend, its choice and resnetkit's version: in the Parquet
  file's schema metadata, and for CSV and JSON Lines in ``NAME.csv.meta.json`` (``NAME.jsonl.meta.json``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set

from ..errors import BadFile, InvalidOption, MissingDependency
from ..fileio import OneWriter, atomic_path, check_output_file, describe_os_error, disk_full_error, make_dir, write_text
from ..version import __version__
from .inputs import input_key
from .lines import complete_prefix, csv_cells, parse_records

FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl"}
IDENTITY = (
    "arch", "weights_sha256", "classes", "preprocess", "in_chans", "precision", "draft", "decode", "topk", "columns",
    "tta", "threshold",
)  # fmt: skip
# What a table written before a setting existed recorded, in effect.
IDENTITY_DEFAULTS = {"tta": "none", "threshold": None}


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


def arrow_schema(columns: Sequence[str], meta: Optional[Dict[str, Any]] = None):
    """The Parquet schema of a table with these columns, its provenance in the metadata."""
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
    metadata = {"resnetkit": json.dumps(meta, sort_keys=True)} if meta is not None else None
    return pa.schema([pa.field(c, types[c]) for c in columns], metadata=metadata)


def with_runs(meta: Dict[str, Any], runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    """``meta`` recording the jobs that wrote its rows, and the backends they ran on."""
    backends = sorted({r["backend"] for r in runs if r.get("backend")})
    return dict(meta, runs=runs, backend=", ".join(backends) if backends else meta.get("backend"))


def _damaged(path: Path, exc: BaseException) -> BadFile:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return BadFile(
        f"out {path} cannot be read to resume it ({detail}): it is damaged; exist_ok replaces it, or give another out",
        field="out",
        related=("exist_ok",),
    )


class ResultTable:
    """The table at ``path`` for one job (see the module docstring). ``open()`` takes the lock and
    returns the input keys already done; ``write(rows)`` commits a chunk; ``close()`` finishes it."""

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
        self.job = f"{time.time_ns():016x}"  # sorts in time: parts are merged in the order they were written
        self._part = 0
        self.earlier_runs: List[Dict[str, Any]] = []
        self.run: Dict[str, Any] = {"job": self.job, "resnetkit_version": __version__}

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
            return
        self._write_meta()
        if not self.path.exists() or self.path.stat().st_size == 0:
            with open(self.path, "w", newline="") as f:
                if self.fmt == "csv":
                    csv.writer(f).writerow(self.meta["columns"])
                f.flush()
                os.fsync(f.fileno())

    # ---- resuming ------------------------------------------------------------------------------------

    def _check_same_job(self, recorded: Optional[Dict[str, Any]], has_rows: bool) -> None:
        if recorded is None:
            if not has_rows:
                return  # a job stopped before its first chunk: nothing to mix, it simply starts again
            raise BadFile(
                f"out {self.path} holds rows but no record of the model that made them (not a table resnetkit "
                "wrote, or its record was removed); it cannot be resumed: exist_ok replaces it, or give another out",
                field="out",
                related=("exist_ok",),
            )
        differ = [k for k in IDENTITY if recorded.get(k, IDENTITY_DEFAULTS.get(k)) != self.meta.get(k)]
        if differ:
            raise BadFile(
                f"out {self.path} was made by another model or setting ({', '.join(differ)} differ); resuming would "
                "mix two jobs' results: use the same weights and flags, exist_ok to replace it, or another out",
                field="out",
                related=("exist_ok",),
            )
        runs = recorded.get("runs")
        self.earlier_runs = [r for r in runs if isinstance(r, dict)] if isinstance(runs, list) else []

    def _resume(self) -> Set[str]:
        return self._resume_parquet() if self.fmt == "parquet" else self._resume_lines()

    def _sources(self) -> List[Path]:
        """The Parquet files holding this table's rows, oldest first: the table, then the parts."""
        parts = sorted(self.parts.glob("part-*.parquet")) if self.parts.is_dir() else []
        return ([self.path] if self.path.is_file() else []) + parts

    def _resume_parquet(self) -> Set[str]:
        import pyarrow.parquet as pq

        recorded = None
        try:
            if self.path.is_file():
                recorded = _schema_meta(self.path)
                merged = set((recorded or {}).get("merged_parts") or ())
                for stale in [p for p in self._sources()[1:] if p.name in merged]:
                    stale.unlink()  # a kill after the merge, before its clean-up: these rows are in the table
            sources = self._sources()
            metas = [_schema_meta(f) for f in sources]
            recorded = next((m for m in reversed(metas) if m is not None), None)
            has_rows = any(pq.read_metadata(f).num_rows for f in sources)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise _damaged(self.path, exc) from None
        self._check_same_job(recorded, has_rows)
        runs = {r.get("job"): r for m in metas if m for r in (m.get("runs") or []) if isinstance(r, dict)}
        self.earlier_runs = sorted(runs.values(), key=lambda r: str(r.get("job")))
        done: Set[str] = set()
        for f in sources:
            try:
                columns = pq.read_table(f, columns=["path", "error"]).to_pydict()
            except (OSError, ValueError, KeyError) as exc:
                raise _damaged(f, exc) from None
            done.update(input_key(p) for p, e in zip(columns["path"], columns["error"]) if not e)
        return done

    def _resume_lines(self) -> Set[str]:
        """The inputs of the complete records; a record cut by a kill is truncated away, and failed
        inputs' records are removed (the resume tries them again)."""
        try:
            data = self.path.read_bytes() if self.path.exists() else b""
        except OSError as exc:
            raise BadFile(describe_os_error(self.path, exc, "read")) from None
        keep = data[: complete_prefix(data, self.fmt)]
        recorded = None
        if self.meta_path.exists():
            try:
                recorded = json.loads(self.meta_path.read_text())
            except (OSError, ValueError) as exc:
                raise _damaged(self.meta_path, exc) from None
        body = keep.split(b"\n", 1)[1] if self.fmt == "csv" and b"\n" in keep else keep
        # The identity first: another job's table is named as that, not as a damaged file.
        self._check_same_job(recorded if isinstance(recorded, dict) else None, bool(body.strip()))
        try:
            text = keep.decode("utf-8")
            records = parse_records(text, self.fmt, self.meta["columns"])
        except (UnicodeDecodeError, ValueError) as exc:
            raise _damaged(self.path, exc) from None
        good = [(raw, r) for raw, r in records if not r.get("error")]
        if len(keep) != len(data) or len(good) != len(records):
            header = text.split("\n", 1)[0] + "\n" if self.fmt == "csv" and "\n" in text else ""
            write_text(self.path, header + "".join(raw for raw, _ in good), "results table")
        return {input_key(r["path"]) for _, r in good}

    # ---- writing -------------------------------------------------------------------------------------

    def describe(self, **facts: Any) -> None:
        """Record how this job runs (backend, choice, ...): not part of the table's identity."""
        self.run.update(facts)
        if self.fmt != "parquet":
            self._write_meta()

    def recorded_meta(self) -> Dict[str, Any]:
        """The table's provenance as written: its identity, and every job that wrote its rows."""
        return with_runs(self.meta, self.earlier_runs + [self.run])

    def _write_meta(self) -> None:
        text = json.dumps(self.recorded_meta(), indent=1, sort_keys=True) + "\n"
        write_text(self.meta_path, text, "table metadata")

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

        columns = self.meta["columns"]
        table = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows], schema=self.schema())
        with atomic_path(self.parts / f"part-{self.job}-{self._part:06d}.parquet", "results chunk") as tmp:
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

    def schema(self, extra: Optional[Dict[str, Any]] = None):
        return arrow_schema(self.meta["columns"], dict(self.recorded_meta(), **(extra or {})))

    def close(self, complete: bool = True) -> None:
        """Finish the table (a Parquet job merges its chunks into the table) and let the lock go;
        ``complete=False`` (a stopped job) keeps the chunks for a resume."""
        try:
            if complete and self.fmt == "parquet":
                self._merge()
        finally:
            self.lock.release()

    def _merge(self) -> None:
        """The table and the parts, each input once (its last successful row, else its last row),
        written to a new file that replaces the table atomically; then the parts go."""
        import pyarrow.parquet as pq

        sources = self._sources()
        keep = _rows_to_keep(sources)
        parts = [p.name for p in sources if p != self.path]
        with atomic_path(self.path, "results table") as tmp:
            with pq.ParquetWriter(tmp, self.schema({"merged_parts": parts})) as writer:
                for f, mask in zip(sources, keep):  # one file at a time: memory stays flat
                    table = pq.read_table(f).select(self.meta["columns"])
                    writer.write_table(table.filter(mask).cast(self.schema()))
        shutil.rmtree(self.parts, ignore_errors=True)


def _schema_meta(path: Path) -> Optional[Dict[str, Any]]:
    import pyarrow.parquet as pq

    raw = (pq.read_schema(path).metadata or {}).get(b"resnetkit")
    meta = json.loads(raw) if raw else None
    return meta if isinstance(meta, dict) else None


def _rows_to_keep(sources: Sequence[Path]) -> List[List[bool]]:
    """Per file, per row: whether the merged table keeps it (each input's last successful row, else
    its last row). Only the path and error columns are read."""
    import pyarrow.parquet as pq

    columns = [pq.read_table(f, columns=["path", "error"]).to_pydict() for f in sources]
    chosen: Dict[str, tuple] = {}
    for i, c in enumerate(columns):
        for j, (path, error) in enumerate(zip(c["path"], c["error"])):
            key = input_key(path)
            if not error or key not in chosen or chosen[key][2]:
                chosen[key] = (i, j, bool(error))
    keep = [[False] * len(c["path"]) for c in columns]
    for i, j, _ in chosen.values():
        keep[i][j] = True
    return keep
