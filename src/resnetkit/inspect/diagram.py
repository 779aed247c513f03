"""A diagram of the network: stem, the four stages (repeated blocks collapsed), head, tensor sizes."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

from ..errors import InvalidOption
from ..fileio import atomic_path, check_output_file
from .summary import Summary

STAGE_COLORS = ["#dbe9f6", "#d5efd8", "#fbe5c8", "#f3d4e4"]


def _shape(c_hw) -> str:
    return " x ".join(map(str, c_hw))


Node = Tuple[str, List[str], str, Optional[List[int]], Optional[bool]]  # title, lines, fill, tensor after, projection


def _stage_lines(st, blocks) -> List[str]:
    first = blocks[0]
    lines = [f"{first.block} x {st.blocks}:  {st.spec.split(' x ')[0] if st.spec.count('] x') == 1 else st.spec}"]
    if first.stride > 1:
        stride_note = f"stride {first.stride}"
    else:
        stride_note = f"dilation {first.dilation}" if first.dilation > 1 else "stride 1"
    if first.projection:
        lines.append(f"block 1: {stride_note}, projection shortcut (1x1 conv + norm: {first.projection_reason})")
    else:
        lines.append(f"block 1: {stride_note}, identity shortcut")
    if st.blocks > 1:
        lines.append(f"blocks 2-{st.blocks}: identity shortcuts" if st.blocks > 2 else "block 2: identity shortcut")
    lines.append(f"{st.params / 1e6:.2f}M params, {st.macs / 1e9:.2f} GMACs")
    return lines


def nodes_of(summary: Summary) -> List[Node]:
    """The boxes of the diagram, top to bottom: input, stem, pool, the stages, head."""
    stem, *stages, head = summary.stages
    pool = stages.pop(0) if stages[0].module == "maxpool" else None
    blocks_by_stage = {st.module: [b for b in summary.blocks if b.name.startswith(st.module + ".")] for st in stages}
    h, w = summary.input_size
    nodes: List[Node] = [
        ("input", [f"{summary.in_chans} x {h} x {w} image"], "#eeeeee", [summary.in_chans, h, w], None)
    ]
    stem_c = blocks_by_stage[stages[0].module][0].in_shape[0]  # channels entering stage 1
    nodes.append(("conv1 (stem)", [stem.spec, "norm, ReLU"], "#e6e6e6", [stem_c, *stem.output_size], None))
    if pool is not None:
        nodes.append(("pool", [pool.spec], "#e6e6e6", [stem_c, *pool.output_size], None))
    for k, st in enumerate(stages):
        blocks = blocks_by_stage[st.module]
        color = STAGE_COLORS[k % 4]
        nodes.append(
            (f"{st.name}  ({st.module})", _stage_lines(st, blocks), color, blocks[-1].out_shape, blocks[0].projection)
        )
    nodes.append(("head", [head.spec], "#e6e6e6", None, None))
    return nodes


def _draw_node(ax, node: Node, top: float, box_h: float, gap: float, last: bool) -> None:
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    title, lines, color, tensor, projection = node
    style = "round,pad=0.02,rounding_size=0.12"
    ax.add_patch(FancyBboxPatch((0.6, top - box_h), 7.4, box_h, boxstyle=style, fc=color, ec="#555555", lw=1.0))
    ax.text(0.8, top - 0.28, title, fontsize=10, fontweight="bold", va="center")
    for j, line in enumerate(lines):
        ax.text(0.8, top - 0.55 - 0.22 * j, line, fontsize=7.5, va="center", family="monospace")
    if projection is not None:
        # The shortcut around the stage's first block: a projection (solid) or the identity (dashed).
        arc = FancyArrowPatch(
            (8.0, top - 0.2), (8.0, top - box_h + 0.2), connectionstyle="arc3,rad=-0.6", arrowstyle="-|>",
            mutation_scale=10, lw=1.2, ls="-" if projection else "--", color="#aa3333",
        )  # fmt: skip
        ax.add_patch(arc)
        label = "projection\nshortcut" if projection else "identity\nshortcut"
        ax.text(8.75, top - box_h / 2, label, fontsize=7, color="#aa3333", va="center")
    if tensor is not None and not last:
        y0, y1 = top - box_h, top - box_h - gap
        ax.add_patch(
            FancyArrowPatch((4.3, y0), (4.3, y1 + 0.02), arrowstyle="-|>", mutation_scale=12, lw=1.2, color="#333333")
        )
        ax.text(4.5, (y0 + y1) / 2, _shape(tensor), fontsize=8, va="center", color="#1f4e99")


def draw(summary: Summary, path: Path) -> Path:
    """Write the diagram to ``path``; the format (svg, png, pdf) follows the extension."""
    # A bare Figure (not pyplot): the process-wide matplotlib backend is left alone.
    from matplotlib.figure import Figure

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in ("svg", "png", "pdf"):
        raise InvalidOption(f"diagram {path}: use a .svg, .png or .pdf file name", field="diagram")
    check_output_file(path, "diagram")
    nodes = nodes_of(summary)
    gap = 0.75
    heights = [0.5 + 0.24 * max(2, len(lines)) for _, lines, *_ in nodes]
    total_h = sum(heights) + gap * len(nodes)
    fig = Figure(figsize=(9, total_h * 0.62))
    ax = fig.subplots()
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.2, total_h)
    ax.axis("off")
    top = total_h - 0.3
    for i, (node, box_h) in enumerate(zip(nodes, heights)):
        _draw_node(ax, node, top, box_h, gap, last=i == len(nodes) - 1)
        top -= box_h + gap
    h, w = summary.input_size
    title = f"{summary.arch} at {h}x{w}: {summary.total_params / 1e6:.2f}M parameters, {summary.gmacs:.2f} GMACs"
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    with atomic_path(path, "diagram") as tmp:
        fig.savefig(tmp, format=fmt, dpi=110)
    return path
