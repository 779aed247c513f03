"""Loading a state_dict into a model with a diagnosis instead of a wall of keys."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from importlib import resources
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from ..errors import BadFile, InvalidOption
from ..models import architecture_depths, build_architecture, list_models
from .io import strip_prefixes

HEAD_KEYS = ("fc.weight", "fc.bias", "head.fc.weight", "head.fc.bias")  # ResNet's, ResNetV2's classifier
STEM_KEYS = ("conv1.weight", "conv1.0.weight", "stem.conv.weight", "stem.conv1.weight")  # the input convolution


def classifier_weight(state: Dict[str, torch.Tensor]) -> Optional[torch.Tensor]:
    """The classifier's weight in a state_dict (ResNet's ``fc`` or ResNetV2's ``head.fc``), if any."""
    return state.get("fc.weight", state.get("head.fc.weight"))


def stem_weight(state: Dict[str, torch.Tensor]) -> Optional[torch.Tensor]:
    """The input convolution's weight (its second dimension is the input channels), if any."""
    return next((state[k] for k in STEM_KEYS if k in state), None)


def _shapes(state: Dict[str, torch.Tensor]) -> Dict[str, Tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


@functools.cache
def _builder_shapes(name: str, in_chans: int = 3) -> Dict[str, Tuple[int, ...]]:
    with torch.device("meta"):
        model = build_architecture(name, in_chans=in_chans)
    return _shapes(model.state_dict())


SIGNATURES = "shape_signatures.json"  # weights/data/: each built-in name's signature (scripts/make_shape_signatures.py)


def shape_signature(shapes: Dict[str, Tuple[int, ...]]) -> str:
    """A hash of a backbone's keys and shapes - the classifier left out, the input convolution's
    channel count too (any in_chans matches) - that names its architecture."""
    h = hashlib.sha256()
    for key in sorted(k for k in shapes if k not in HEAD_KEYS):
        shape = list(shapes[key])
        if key in STEM_KEYS and len(shape) == 4:
            shape[1] = -1
        h.update(f"{key}:{shape};".encode())
    return h.hexdigest()[:24]


@functools.cache
def known_signatures() -> Dict[str, str]:
    """{architecture: signature} of the built-in architectures, from the shipped table: identifying a
    file needs no model built (building one on the meta device costs torch's compiler stack, a second)."""
    text = resources.files(__package__).joinpath(f"data/{SIGNATURES}").read_text()
    return json.loads(text)


def builder_signature(name: str) -> str:
    """The signature of the architecture ``name`` as built now (what the shipped table records)."""
    return shape_signature(_builder_shapes(name))


def _depths(keys) -> Tuple[int, ...]:
    """Blocks per stage, read from key names (``layer3.22.conv1.weight``, ``stages.2.blocks.22...``)."""
    found: Dict[int, int] = {}
    for k in keys:
        m = re.match(r"^(?:layer(\d+)|stages\.(\d+)\.blocks)\.(\d+)\.", k)
        if m:
            stage = int(m[1]) - 1 if m[1] else int(m[2])
            found[stage] = max(found.get(stage, 0), int(m[3]) + 1)
    return tuple(found[i] for i in sorted(found))


def identify_architecture(state: Dict[str, torch.Tensor]) -> Optional[str]:
    """The registered builder whose backbone keys and shapes this state_dict has, if any (the head
    and the stem's input channels may differ). Only the names with the same blocks per stage are
    built (on the meta device) to compare: a hundred architectures are known."""
    shapes = {k: s for k, s in _shapes(strip_prefixes(state)).items() if k not in HEAD_KEYS}
    stem = stem_weight({k: v for k, v in strip_prefixes(state).items()})
    in_chans = int(stem.shape[1]) if stem is not None and stem.dim() == 4 else 3
    depths = _depths(shapes)
    signature, table = shape_signature(shapes), known_signatures()
    for name in list_models():
        if name in table:  # built-in: compared by the shipped signature, nothing built
            if table[name] == signature:
                return name
            continue
        if architecture_depths(name) not in (depths, ()):  # registered by the user: built on the meta device
            continue
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
    for key in STEM_KEYS:  # RGB weights for a model of other input channels
        stem = state.get(key)
        if stem is not None and key in own and stem.dim() == 4 and stem.shape[1] != own[key].shape[1]:
            if stem.shape[1] == 3 and stem.shape[0] == own[key].shape[0]:
                state[key] = adapt_stem(stem, own[key].shape[1])
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
