"""The modes of `bench --modes`, derived from the runtime table; torch-free, so the command line checks
them without loading torch."""

from __future__ import annotations

from .formats import RUNTIMES

__all__ = ["DEFAULT_MODES", "MODES", "PYTORCH_MODES", "RUNTIME_MODES", "mode_name"]


def mode_name(runtime: str, precision: str) -> str:
    """A runtime's mode in `bench --modes`: its name for fp32, name-precision else (PyTorch's bf16: bf16)."""
    if runtime == "pytorch":
        return precision
    return runtime if precision == "fp32" else f"{runtime}-{precision}"


# PyTorch ways of running the same fp32 model, then every (runtime, precision) of the table.
PYTORCH_MODES = ("eager", "channels_last", "fused", "compile")
RUNTIME_MODES = {
    mode_name(r.name, p): (r.name, p)
    for r in RUNTIMES.values()
    if r.candidate
    for p in r.precisions
    if (r.name, p) != ("pytorch", "fp32")
}
MODES = PYTORCH_MODES + tuple(RUNTIME_MODES)

# By default: eager and fused PyTorch, then every other runtime's modes (PyTorch's bf16 autocast is
# asked for by name). The edge runtimes run their exported files: bench --weights FILE gives their rows.
DEFAULT_MODES = ("eager", "fused", *(m for m, (runtime, _) in RUNTIME_MODES.items() if runtime != "pytorch"))
