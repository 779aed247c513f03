"""Loading a state_dict into a model with a diagnosis instead of a wall of keys."""

from __future__ import annotations

import functools
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from ..errors import BadFile, InvalidOption
from ..models import build_architecture, list_models
from .io import strip_prefixes

HEAD_KEYS = ("fc.weight", "fc.bias")


def _shapes(state: Dict[str, torch.Tensor]) -> Dict[str, Tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


@functools.cache
def _builder_shapes(name: str, in_chans: int = 3) -> Dict[str, Tuple[int, ...]]:
    with torch.device("meta"):
        model = build_architecture(name, in_chans=in_chans)
    return _shapes(model.state_dict())


def identify_architecture(state: Dict[str, torch.Tensor]) -> Optional[str]:
    """The registered builder whose backbone keys and shapes this state_dict has, if any (the head
    and the stem's input channels may differ)."""
    shapes = {k: s for k, s in _shapes(strip_prefixes(state)).items() if k not in HEAD_KEYS}
    stem = shapes.get("conv1.weight")
    in_chans = stem[1] if stem and len(stem) == 4 else 3
    for name in list_models():
        ref = {k: s for k, s in _builder_shapes(name, in_chans).items() if k not in HEAD_KEYS}
        if ref == shapes:
            return name
    return None


def adapt_stem(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Turn 3-channel stem weights into ``in_chans`` ones: sum for 1 channel (a gray image equals
    R = G = B), else repeat the RGB filters cyclically and rescale so activations keep their size."""
    src = weight.shape[1]
    if src == in_chans:
        return weight
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = -(-in_chans // src)
    return weight.repeat(1, reps, 1, 1)[:, :in_chans] * (src / in_chans)


def diagnose(model: nn.Module, state: Dict[str, torch.Tensor], source: str = "the weights") -> List[str]:
    """Human-readable problems that stop ``state`` from loading into ``model`` (empty if none)."""
    want, have = _shapes(model.state_dict()), _shapes(state)
    missing = [k for k in want if k not in have]
    unexpected = [k for k in have if k not in want]
    mismatched = [(k, have[k], want[k]) for k in want if k in have and have[k] != want[k]]
    if not (missing or unexpected or mismatched):
        return []

    def short(keys: List[str]) -> str:
        return ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")

    lines = []
    arch = identify_architecture(state)
    own = getattr(model, "arch", None) or identify_architecture(model.state_dict())
    if arch and arch != own:
        lines.append(f"these weights are {arch}'s, not {own or 'this model'}'s: build {arch} to load them")
    if missing:
        lines.append(f"{len(missing)} keys missing from {source}: {short(missing)}")
    if unexpected:
        lines.append(f"{len(unexpected)} unexpected keys in {source}: {short(unexpected)}")
    for k, got, exp in mismatched[:4]:
        lines.append(f"{k}: {source} has shape {list(got)}, the model expects {list(exp)}")
    if len(mismatched) > 4:
        lines.append(f"... {len(mismatched) - 4} more shape mismatches")
    if mismatched and all(k in HEAD_KEYS for k, _, _ in mismatched) and not missing and not unexpected:
        lines.append("only the classifier differs: pass head='reset' (CLI: fine-tuning does this) to re-initialise it")
    return lines


def load_state(
    model: nn.Module, state: Dict[str, torch.Tensor], head: str = "keep", source: str = "the weights"
) -> nn.Module:
    """Load ``state`` into ``model`` strictly, after stripping DDP/compile prefixes.

    ``head="reset"`` keeps the model's own (freshly initialised) classifier when the class count
    differs; a 3-channel stem is adapted to the model's ``in_chans``; FrozenBatchNorm2d accepts
    BatchNorm's ``num_batches_tracked``. Anything else that does not fit raises ResnetkitError
    with a diagnosis.
    """
    if head not in ("keep", "reset"):
        raise InvalidOption(f"head must be 'keep' or 'reset', got {head!r}")
    state = dict(strip_prefixes(state))
    own = model.state_dict()
    stem = state.get("conv1.weight")
    if stem is not None and "conv1.weight" in own and stem.dim() == 4 and stem.shape[1] != own["conv1.weight"].shape[1]:
        if stem.shape[1] == 3 and stem.shape[0] == own["conv1.weight"].shape[0]:
            state["conv1.weight"] = adapt_stem(stem, own["conv1.weight"].shape[1])
    # A backbone (features_only) skips the head and any stages after its last output.
    dropped = tuple(m + "." for m in getattr(model, "dropped_modules", ()))
    if dropped:
        state = {k: v for k, v in state.items() if not k.startswith(dropped)}
    if head == "reset":
        for k in HEAD_KEYS:
            if k in state and (k not in own or state[k].shape != own[k].shape):
                state.pop(k)
                if k in own:
                    state[k] = own[k]
    for k in list(state):
        # BatchNorm's counter has no place in a FrozenBatchNorm2d that is otherwise there.
        if k.endswith(".num_batches_tracked") and k not in own and k[: -len("num_batches_tracked")] + "weight" in own:
            state.pop(k)
    problems = diagnose(model, state, source)
    if problems:
        raise BadFile(f"cannot load {source}: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)
    return model
