"""The line-based table formats (CSV and JSON Lines): cells safe to open in a spreadsheet, and the
complete records of a file a kill may have cut mid-write.

- **Spreadsheet formulas**: a text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
  carriage return is taken for a formula by Excel, LibreOffice and Google Sheets (OWASP's "CSV
  injection"); such a cell, and one that starts with ``'`` (so the rule can be undone exactly), is
  written with a leading ``'``, which spreadsheets show as text. ``csv_text`` undoes it.
- **Cut records**: a CSV field in quotes may hold a newline (a file name can), so the last complete
  record is not simply the last complete line: a record ends at a newline outside quotes, i.e. where
  the quotes seen so far are balanced (RFC 4180 doubles a quote inside a quoted field).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Dict, List, Sequence, Tuple

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def csv_safe(text: str) -> str:
    """A text cell as written: a leading ``'`` when a spreadsheet would read it as a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_text(cell: str) -> str:
    """A text cell as it was before ``csv_safe``."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS) else cell


def csv_cells(row: Dict[str, Any], columns: Sequence[str]) -> List[Any]:
    """A result row as the cells of a CSV line (top-k spread over columns, text cells made safe)."""
    cells: Dict[str, Any] = {"path": csv_safe(str(row.get("path"))), "error": csv_safe(row.get("error") or "")}
    for i, (index, name, prob) in enumerate(
        zip(row.get("top_indices") or [], row.get("top_classes") or [], row.get("top_probs") or []), start=1
    ):
        cells.update({f"index_{i}": index, f"class_{i}": csv_safe(str(name)), f"prob_{i}": f"{prob:.6g}"})
    return [cells.get(c, "") for c in columns]


def complete_prefix(data: bytes, fmt: str) -> int:
    """The length of ``data`` that holds complete records only (what follows was cut by a kill)."""
    if fmt != "csv":
        return data.rfind(b"\n") + 1
    end, quotes, start = 0, 0, 0
    while True:
        newline = data.find(b"\n", start)
        if newline < 0:
            return end
        quotes += data.count(b'"', start, newline)
        start = newline + 1
        if quotes % 2 == 0:
            end = start


def parse_records(text: str, fmt: str, columns: Sequence[str]) -> List[Tuple[str, Dict[str, Any]]]:
    """(the record's own text, its fields) for each complete record of a table's text; ``path`` and
    ``error`` as they were before ``csv_safe``. A record that does not parse raises ValueError."""
    out: List[Tuple[str, Dict[str, Any]]] = []
    if fmt == "jsonl":
        for line in _lines(text):
            if line.strip():
                record = json.loads(line)
                if not isinstance(record, dict) or "path" not in record:
                    raise ValueError(f"a line without a path: {line[:80]!r}")
                out.append((line, record))
        return out
    body = text.split("\n", 1)[1] if "\n" in text else ""
    for raw in _csv_records(body):
        fields = next(csv.reader(io.StringIO(raw)), [])
        if len(fields) != len(columns):
            raise ValueError(f"a line with {len(fields)} cells for {len(columns)} columns: {raw[:80]!r}")
        record = dict(zip(columns, fields))
        record["path"], record["error"] = csv_text(record["path"]), csv_text(record.get("error", ""))
        out.append((raw, record))
    return out


def _csv_records(body: str) -> List[str]:
    records, current, quotes = [], [], 0
    for line in _lines(body):
        current.append(line)
        quotes += line.count('"')
        if quotes % 2 == 0:
            records.append("".join(current))
            current, quotes = [], 0
    return [r for r in records if r.strip()]


def _lines(text: str) -> List[str]:
    """``text`` split after each newline only (str.splitlines also splits at characters such as
    U+2028 that a file name may hold)."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
