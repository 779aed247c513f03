"""What every runtime leaf needs: example inputs, the thread count, checking an optional package,
and a runtime's exception reduced to its informative line."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Iterable, List

from ..errors import MissingDependency

if TYPE_CHECKING:  # torch is imported by the functions that use it: the format table imports this module
    import torch
    from torch import nn


def example_input(model: nn.Module, input_size: int, batch: int = 2) -> torch.Tensor:
    """A fixed random batch (seed 0) at the model's channel count: what exporters trace with. A model
    that takes another input (uint8 NHWC crops: ``FusedInput``) says so with its ``example_input``."""
    own = getattr(model, "example_input", None)
    if callable(own):
        return own(input_size, batch)
    import torch

    in_chans = int(getattr(model, "in_chans", 3))
    gen = torch.Generator().manual_seed(0)
    return torch.randn(batch, in_chans, input_size, input_size, generator=gen)


def input_shape(model: nn.Module, input_size: int) -> List[int]:
    """The model's input shape with a dynamic batch axis (-1): NCHW, unless the model says otherwise."""
    own = getattr(model, "input_shape", None)
    if callable(own):
        return list(own(input_size))
    return [-1, int(getattr(model, "in_chans", 3)), input_size, input_size]


def threads() -> int:
    """The process's thread setting (torch.set_num_threads, OMP_NUM_THREADS, bench --threads) holds
    for every runtime, not only PyTorch: ONNX Runtime and OpenVINO would otherwise take every core."""
    import torch

    return torch.get_num_threads()


def importable(name: str) -> bool:
    """Whether ``name`` imports; NNCF (heavy: it loads its torch backend) is only looked for."""
    if name == "nncf":
        return importlib.util.find_spec(name) is not None
    from ..quiet import no_warnings, third_party_output

    try:
        with third_party_output(), no_warnings():  # some print and warn as they import (coremltools)
            __import__(name)  # a broken install is as good as none
    except ImportError:
        return False
    return True


def need(packages: Iterable[str], extra: str, what: str) -> None:
    """MissingDependency naming the extra to install, unless every package imports."""
    missing = [p for p in packages if not importable(p)]
    if missing:
        raise MissingDependency(f"{what} needs {', '.join(missing)}: pip install 'resnetkit[{extra}]'")


def last_line(exc: BaseException) -> str:
    """The informative part of a runtime's exception: OpenVINO's first lines name its own source file."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
