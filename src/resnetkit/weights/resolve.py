"""One resolver for every way of naming weights: ``resolve(source, arch=None)``.

Used by the builders (``rk.resnet50(weights=...)``, ``get_model``), ``load_weights``, the trainer
and every CLI command, so a source means the same thing everywhere. Precedence:

1. a catalog enum member or entry object;
2. an existing directory: a training run (model.safetensors, best.pt, last.pt) or a Hugging Face
   ``save_pretrained`` folder (config.json beside model.safetensors / pytorch_model.bin);
3. an existing file (.safetensors, .pt, .pth: the format is read from the content);
4. an http(s) URL (downloaded once into the cache, verified);
5. a catalog name (``resnet50.IMAGENET1K_V2``, timm's ``resnet50.a1_in1k``) or, with ``arch``,
   a tag (``IMAGENET1K_V2``, ``DEFAULT``);
6. a Hugging Face Hub repository: ``hf-hub:timm/resnet50.a1_in1k``, ``microsoft/resnet-50``,
   ``ORG/NAME@REVISION`` (``weights.hub``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from ..errors import BadFile, InvalidOption
from ..targets import EXPORTED_SUFFIXES
from .catalog import WEIGHT_ENUMS, WeightsEntry, WeightsEnum, find_weights
from .io import read_cached, read_weights_file
from .loaded import LoadedWeights

WeightsSource = Union[str, Path, WeightsEntry, WeightsEnum]

RUN_FILES = ("model.safetensors", "best.pt", "last.pt")
HF_FILES = ("model.safetensors", "pytorch_model.bin")


def _from_entry(entry: WeightsEntry, arch: Optional[str], progress: bool) -> LoadedWeights:
    if arch is not None and entry.arch != arch:
        raise InvalidOption(f"weights {entry.name} are for {entry.arch}, not {arch}; build {entry.arch} to use them")
    state, card = entry.load(progress=progress)
    return LoadedWeights(state, card, entry.name)


def _from_dir(path: Path, config: Optional[Path]) -> LoadedWeights:
    if any(path.glob("*.xml")):
        raise BadFile(
            f"{path} is an OpenVINO IR export (its .xml and .bin), not weights: it runs on its own runtime "
            f"(resnetkit predict/eval --weights {path}); to build a PyTorch model, pass the weights it was exported from"
        )
    if (path / "config.json").is_file() and not (path / "last.pt").exists():
        for name in HF_FILES:
            if (path / name).is_file():  # a save_pretrained folder
                state, meta = read_weights_file(path / name, config=config)
                return LoadedWeights.read(state, meta, str(path / name))
    for name in RUN_FILES:
        if (path / name).is_file():
            state, meta = read_weights_file(path / name, config=config)
            return LoadedWeights.read(state, meta, str(path / name))
    raise BadFile(
        f"{path}: a directory without weights: expected a training run ({', '.join(RUN_FILES)}) or a "
        f"save_pretrained folder (config.json with {' or '.join(HF_FILES)})"
    )


def resolve(
    source: WeightsSource, arch: Optional[str] = None, progress: bool = True, config: Optional[Union[str, Path]] = None
) -> LoadedWeights:
    """Read the weights ``source`` names (see the module docstring for the order tried).
    ``arch`` is the architecture they are meant for: it allows bare tags and refuses weights of
    another architecture from the catalog. ``config`` is a Hugging Face config.json to check
    transformers weights against when it is not beside them."""
    config_path = Path(config) if config is not None else None
    if isinstance(source, WeightsEnum):
        source = source.value
    if isinstance(source, WeightsEntry):
        return _from_entry(source, arch, progress)
    if not isinstance(source, (str, Path)):
        raise InvalidOption(
            f"weights must be a catalog name, a file, a run directory or a URL, got {type(source).__name__}"
        )
    text = str(source)
    if not text.strip():
        raise InvalidOption("the weights source is empty; give a run directory, a file, a URL or a catalog name")
    path = Path(text).expanduser()
    suffix = path.suffix.lower()
    if suffix in EXPORTED_SUFFIXES and (path.is_file() or path.is_dir()):
        raise BadFile(
            f"{path} is {EXPORTED_SUFFIXES[suffix]}, not a weights file: it runs on its own runtime "
            f"(resnetkit predict/eval --weights {path}); to build a PyTorch model, pass the weights it was exported from"
        )
    if path.is_dir():
        return _from_dir(path, config_path)
    if path.exists() or path.is_symlink():
        state, meta = read_weights_file(path, config=config_path)
        return LoadedWeights.read(state, meta, str(path))
    if text.startswith(("http://", "https://")):
        from .download import fetch_url

        state, meta = read_cached(lambda: fetch_url(text, progress=progress), config=config_path)
        return LoadedWeights.read(state, meta, text)
    entry = find_weights(text, arch=arch)
    if entry is not None:
        return _from_entry(entry, arch, progress)
    from . import hub

    if hub.hub_id(text) is not None:  # hf-hub:ORG/NAME, or ORG/NAME that is no local path
        bare = not text.startswith(hub.PREFIX)
        # A bare ORG/NAME whose ORG is a local folder (runs/digit) is a mistyped path, not a repository;
        # without the hub extra, too: say that first (hf-hub:ORG/NAME always means the Hub).
        if bare and (Path(text.split("/")[0]).is_dir() or not hub.available()):
            need = "" if hub.available() else ", with pip install 'resnetkit[hub]'"
            raise BadFile(
                f"weights {text}: no such file or directory (for a Hugging Face Hub repository of that name, "
                f"write hf-hub:{text}{need})"
            )
        return hub.load(text, looks_local=bare)
    looks_like_path = "/" in text or "\\" in text or suffix in (".pt", ".pth", ".safetensors", ".bin", ".ckpt")
    if looks_like_path:
        raise BadFile(f"weights {text}: no such file or directory")
    from ..models import list_models
    from .catalog import list_weights

    if text in list_models():
        names = [e.name for e in list_weights(text)]
        hint = f"e.g. {', '.join(names[:3])}" if names else "no published weights exist for it: train it or give a file"
        raise InvalidOption(f"weights {text!r} is an architecture name, not weights; {hint}")
    same_tag = [e.name for e in list_weights() if e.tag.lower() == text.lower()]
    if same_tag and arch is None:
        raise InvalidOption(f"weights {text!r} is a tag: name the architecture too, e.g. {', '.join(same_tag[:3])}")
    tags = ""
    if arch in WEIGHT_ENUMS:
        tags = f" (tags for {arch}: {', '.join(WEIGHT_ENUMS[arch].__members__)})"  # type: ignore[index]
    raise InvalidOption(
        f"weights {text!r} is neither a file, a run directory, a URL nor a catalog name{tags}; "
        "see `resnetkit weights list`"
    )
