"""Text renderings of a Summary: aligned table, Markdown, JSON."""

from __future__ import annotations

import json
from typing import List

from .summary import Summary


def _human(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def _size(hw: List[int]) -> str:
    return "x".join(map(str, hw)) if hw else "-"


def _stage_rows(s: Summary) -> List[List[str]]:
    return [[r.name, _size(r.output_size), r.spec, _human(r.params), _human(r.macs)] for r in s.stages]


def _block_rows(s: Summary) -> List[List[str]]:
    rows = []
    for b in s.blocks:
        proj = f"yes ({b.projection_reason})" if b.projection else "no (identity)"
        rows.append(
            [
                b.name,
                b.block,
                "x".join(map(str, b.in_shape)),
                "x".join(map(str, b.out_shape)),
                str(b.stride),
                str(b.dilation),
                proj,
                _human(b.params),
                _human(b.macs),
            ]
        )
    return rows


STAGE_HEAD = ["stage", "output", "blocks (paper notation)", "params", "MACs"]
BLOCK_HEAD = [
    "block",
    "type",
    "in (CxHxW)",
    "out (CxHxW)",
    "stride",
    "dilation",
    "projection shortcut",
    "params",
    "MACs",
]


def _title(s: Summary) -> str:
    h, w = s.input_size
    return f"{s.arch} at {h}x{w}, {s.in_chans} input channels, {s.num_classes} classes"


def _totals(s: Summary) -> str:
    return f"total: {s.total_params:,} parameters, {s.gmacs:.3f} GMACs per image"


def to_table(s: Summary, blocks: bool = False) -> str:
    def fmt(head, rows):
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
        return "\n".join([line(head), "  ".join("-" * w for w in widths), *map(line, rows)])

    parts = [_title(s), "", fmt(STAGE_HEAD, _stage_rows(s))]
    if blocks:
        parts += ["", fmt(BLOCK_HEAD, _block_rows(s))]
    parts += ["", _totals(s), f"counted: {s.counted}"]
    return "\n".join(parts)


def to_markdown(s: Summary, blocks: bool = False) -> str:
    def fmt(head, rows):
        esc = lambda c: c.replace("|", "\\|")  # noqa: E731
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
        return "\n".join(out)

    parts = [f"**{_title(s)}**", "", fmt(STAGE_HEAD, _stage_rows(s))]
    if blocks:
        parts += ["", fmt(BLOCK_HEAD, _block_rows(s))]
    parts += ["", _totals(s) + ".", "", f"Counted: {s.counted}."]
    return "\n".join(parts)


def to_json(s: Summary, blocks: bool = False) -> str:
    """The full summary, blocks included whatever ``blocks`` says, so the schema never varies."""
    return json.dumps(s.to_dict(), indent=1)
