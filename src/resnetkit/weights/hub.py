"""Weights on the Hugging Face Hub, by repository id: ``hf-hub:timm/resnet50.a1_in1k`` (timm's
spelling), ``microsoft/resnet-50`` (a transformers repository), ``ORG/NAME@REVISION``.

Files come through ``huggingface_hub`` itself - its cache, revisions, resumable transfers, offline mode
(``HF_HUB_OFFLINE=1``), tokens from ``huggingface-cli login`` or ``HF_TOKEN``, ``HF_ENDPOINT`` for a
mirror - read at call time. A repository is read as what its ``config.json`` says it is:

- timm's (``architecture`` + ``pretrained_cfg``): the weights already have resnetkit's keys; the
  preprocessing is timm's (input size, crop_pct, interpolation, mean, std), the class names its
  ``label_names`` (ImageNet's for a 1000-way model without them);
- transformers' (``model_type: resnet``): keys renamed and the config checked, as for a
  ``save_pretrained`` folder.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from ..card import IMAGENET_MEAN, IMAGENET_STD, ModelCard, Preprocess
from ..errors import BadFile, DownloadError, InvalidOption, MissingDependency, OfflineError, redact

PREFIX = "hf-hub:"
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*(?:@[\w./-]+)?$")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def hub_id(text: str) -> Optional[Tuple[str, Optional[str]]]:
    """(repo id, revision) if ``text`` names a Hub repository: ``hf-hub:ORG/NAME[@REV]``, or a bare
    ``ORG/NAME[@REV]`` (the caller has checked it is not a local path)."""
    explicit = text.startswith(PREFIX)
    body = text[len(PREFIX) :] if explicit else text
    if not REPO_ID.match(body) or (not explicit and body.endswith((".pt", ".pth", ".safetensors", ".bin"))):
        return None
    repo, _, revision = body.partition("@")
    return repo, revision or None


def available() -> bool:
    """Whether huggingface_hub is installed (the ``hub`` extra)."""
    import importlib.util

    return importlib.util.find_spec("huggingface_hub") is not None


def require_hub():
    try:
        import huggingface_hub
    except ImportError:
        raise MissingDependency(
            "weights from the Hugging Face Hub need huggingface_hub: pip install 'resnetkit[hub]'"
        ) from None
    return huggingface_hub


def resolvable(endpoint: Optional[str]) -> bool:
    """Whether the Hub's host name resolves. When it does not (no network, no DNS), huggingface_hub
    would retry for about 25 s before using its cache; asking the cache at once gives the same answer."""
    import socket
    from urllib.parse import urlparse

    host = urlparse(endpoint or "https://huggingface.co").hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
        return True
    except (socket.gaierror, UnicodeError):
        return False


def client_options() -> Dict[str, Any]:
    """What the client reads from the environment, read now (its constants are fixed at import)."""
    from ..weights.download import is_offline

    endpoint = os.environ.get("HF_ENDPOINT") or None
    offline = is_offline() or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    return {
        "endpoint": endpoint,
        "cache_dir": os.environ.get("HF_HUB_CACHE") or None,
        "local_files_only": offline or not resolvable(endpoint),
    }


def _explain(exc: BaseException, repo: str, revision: Optional[str], what: str, looks_local: bool) -> Exception:
    from huggingface_hub import errors

    where = f"{repo}@{revision}" if revision else repo
    local = f"no such file or directory {repo}, and " if looks_local else ""
    if isinstance(exc, errors.GatedRepoError):
        return DownloadError(
            f"{where} is a gated repository: accept its terms on its Hub page, then log in (huggingface-cli login, "
            "or HF_TOKEN)"
        )
    if isinstance(exc, errors.RepositoryNotFoundError):
        return DownloadError(
            f"weights {where}: {local}no Hugging Face Hub repository of that name (a private one needs a login: "
            "huggingface-cli login, or HF_TOKEN)"
        )
    if isinstance(exc, errors.RevisionNotFoundError):
        return DownloadError(f"{repo} has no revision {revision!r} on the Hub; give a branch, tag or commit it has")
    if isinstance(exc, errors.LocalEntryNotFoundError):
        return OfflineError(
            f"weights {where}: {local}cannot download it from the Hugging Face Hub (offline mode, or no network) and "
            f"it is not in the Hugging Face cache; run once with the network, or: huggingface-cli download {repo}"
        )
    if isinstance(exc, errors.EntryNotFoundError):
        return DownloadError(f"{where} has no {what} on the Hub; it is not a timm or transformers model repository")
    return DownloadError(f"cannot fetch {what} of {where} from the Hub ({exc.__class__.__name__}: {exc})")


def server_failure(exc: BaseException) -> Optional[str]:
    """'500 Internal Server Error' when the Hub answered a request with a server error (the client
    retries those, then reports them as if it were offline), else None."""
    seen = set()
    e: Optional[BaseException] = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        response = getattr(e, "response", None)
        status = getattr(response, "status_code", None)
        if isinstance(status, int) and status >= 500:
            reason = getattr(response, "reason_phrase", "") or getattr(response, "reason", "") or ""
            return f"{status} {reason}".strip()
        e = e.__cause__ or e.__context__
    return None


def endpoint_name() -> str:
    """The Hub this process talks to, as it can be shown (credentials in HF_ENDPOINT hidden)."""
    return redact(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")


def fetch(
    repo: str, revision: Optional[str], filename: str, looks_local: bool = False, required: bool = True
) -> Optional[Path]:
    """One file of a repository, through huggingface_hub's cache; None if absent and not ``required``.
    The client's own retry warnings are held back (they would break the one-line error, and print
    HF_ENDPOINT with any credentials in it)."""
    hub = require_hub()
    from huggingface_hub import errors

    from ..quiet import loggers_quiet

    download = hub.hf_hub_download  # imported now: the client sets its loggers' levels when first imported
    try:
        with loggers_quiet("huggingface_hub"):
            return Path(download(repo, filename, revision=revision, **client_options()))
    except errors.EntryNotFoundError as exc:
        failure = server_failure(exc)
        if failure:
            raise _hub_down(failure, repo, filename) from None
        if required:
            raise _explain(exc, repo, revision, filename, looks_local) from None
        return None  # absent here (or, offline, not in the cache): the caller tries the next name
    except (
        errors.HfHubHTTPError,
        errors.RepositoryNotFoundError,
        errors.RevisionNotFoundError,
        errors.LocalEntryNotFoundError,
    ) as exc:
        failure = server_failure(exc)
        if failure:
            raise _hub_down(failure, repo, filename) from None
        raise _explain(exc, repo, revision, filename, looks_local) from None
    except OSError as exc:  # a connection that fails without an HTTP answer
        raise OfflineError(
            f"cannot reach the Hugging Face Hub ({endpoint_name()}) for {repo} ({redact(str(exc))}); check the "
            "network or HF_ENDPOINT"
        ) from None


def _hub_down(failure: str, repo: str, filename: str) -> DownloadError:
    return DownloadError(
        f"the Hugging Face Hub ({endpoint_name()}) answered {failure} for {filename} of {repo}, after the client's "
        "retries, and the file is not in the Hugging Face cache: the server is failing, not your network; try again "
        "later, or check HF_ENDPOINT"
    )


def _config_error(where: str, what: str) -> BadFile:
    return BadFile(
        f"{where}: its config.json {what}; the model would be fed the wrong input, so it was refused: fix the "
        "repository's config.json (or load the weights file with --arch)"
    )


def _positive_int(value: Any, name: str, where: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _config_error(where, f"gives {name} {value!r}, not an integer >= {low}")
    return value


def timm_card(config: Dict[str, Any], where: str) -> ModelCard:
    """The card of a timm repository's config.json (pretrained_cfg: timm's preprocessing, as timm's
    ``resolve_data_config`` + ``create_transform`` apply it: input size, crop_pct, crop_mode,
    interpolation, mean, std). Every field is checked: BadFile names the one that cannot be right."""
    if not isinstance(config, dict):
        raise _config_error(where, "is not a JSON object")
    arch = config.get("architecture")
    if not isinstance(arch, str):
        raise _config_error(where, f"names the architecture {arch!r}, not a model name")
    cfg = config.get("pretrained_cfg") or {}
    if not isinstance(cfg, dict):
        raise _config_error(where, "has a pretrained_cfg that is not a JSON object")
    num_classes = _positive_int(config.get("num_classes", cfg.get("num_classes", 1000)), "num_classes", where, 0)
    input_size = cfg.get("input_size") or [3, 224, 224]
    if not isinstance(input_size, (list, tuple)) or len(input_size) != 3:
        raise _config_error(where, f"gives input_size {input_size!r}, not [channels, height, width]")
    in_chans, height, width = (_positive_int(v, "input_size", where) for v in input_size)
    if height != width:
        raise _config_error(where, f"gives a non-square input_size {list(input_size)}; resnetkit crops squares")
    crop_pct = cfg.get("crop_pct", 0.875)
    if isinstance(crop_pct, bool) or not isinstance(crop_pct, (int, float)) or not 0 < crop_pct <= 1:
        raise _config_error(where, f"gives crop_pct {crop_pct!r}, not a number in (0, 1]")
    try:
        pre = Preprocess(
            resize_size=int(math.floor(height / crop_pct)),
            crop_size=height,
            interpolation=cfg.get("interpolation", "bicubic"),
            mean=cfg.get("mean", IMAGENET_MEAN),
            std=cfg.get("std", IMAGENET_STD),
            crop_mode=cfg.get("crop_mode") or "center",
        )
    except InvalidOption as exc:
        raise _config_error(where, f"does not parse ({str(exc).replace('preprocess.', '')})") from None
    names = config.get("label_names")
    if names is not None and (not isinstance(names, list) or len(names) != num_classes):
        count = len(names) if isinstance(names, list) else "no list of"
        raise _config_error(where, f"has {count} label_names for {num_classes} classes")
    if not names and num_classes == 1000:
        from .classes import imagenet_classes

        names = imagenet_classes()
    try:
        return ModelCard(
            arch=arch, num_classes=num_classes, classes=tuple(str(n) for n in names) if names else None,
            in_chans=in_chans, preprocess=pre, source=where, tag=cfg.get("tag") if isinstance(cfg.get("tag"), str) else None,
        )  # fmt: skip
    except InvalidOption as exc:
        raise _config_error(where, f"does not parse ({exc})") from None


def fetch_weights_file(text: str) -> Path:
    """The weights file of a Hub repository, in the Hugging Face cache (downloaded if it is not), and
    its config.json beside it: what ``weights download`` fetches ahead of time."""
    parsed = hub_id(text)
    if parsed is None:
        raise BadFile(f"{text}: not a Hugging Face Hub repository id (ORG/NAME or hf-hub:ORG/NAME)")
    repo, revision = parsed
    fetch(repo, revision, "config.json")
    for name in WEIGHT_FILES:
        found = fetch(repo, revision, name, required=False)
        if found is not None:
            return found
    raise DownloadError(f"{text} has neither {' nor '.join(WEIGHT_FILES)}; it holds no weights resnetkit reads")


def load(text: str, looks_local: bool = False):
    """The LoadedWeights of a Hub repository (see the module docstring)."""
    from .io import read_weights_file
    from .loaded import LoadedWeights
    from .loading import classifier_weight

    parsed = hub_id(text)
    if parsed is None:
        raise BadFile(f"{text}: not a Hugging Face Hub repository id (ORG/NAME or hf-hub:ORG/NAME)")
    repo, revision = parsed
    where = PREFIX + repo + (f"@{revision}" if revision else "")
    config_path = fetch(repo, revision, "config.json", looks_local)
    try:
        config = json.loads(config_path.read_text())  # type: ignore[union-attr]
    except ValueError as exc:
        raise BadFile(f"{where}: its config.json is not valid JSON ({exc})") from None
    weights = None
    for name in WEIGHT_FILES:  # whichever the repository has (or, offline, the cache holds)
        weights = fetch(repo, revision, name, looks_local, required=False)
        if weights is not None:
            break
    if weights is None:
        if client_options()["local_files_only"]:
            raise OfflineError(
                f"weights {where}: neither {' nor '.join(WEIGHT_FILES)} is in the Hugging Face cache and the Hub "
                f"cannot be reached (offline mode, or no network); run once with the network, or: "
                f"huggingface-cli download {repo}"
            )
        raise DownloadError(f"{where} has neither {' nor '.join(WEIGHT_FILES)}; it holds no weights resnetkit reads")
    if not isinstance(config, dict):
        raise _config_error(where, "is not a JSON object")
    if "architecture" in config:  # timm's layout: our keys, timm's preprocessing
        card = timm_card(config, where)
        state, _ = read_weights_file(weights)
        fc = classifier_weight(state)
        if fc is not None and int(fc.shape[0]) != card.num_classes:
            raise _config_error(where, f"says {card.num_classes} classes but the weights' classifier has {fc.shape[0]}")
        return LoadedWeights(state, card, where)
    if config.get("model_type") == "resnet":  # transformers': renamed, the config checked
        from .hf import PREPROCESSOR_FILE

        fetch(repo, revision, PREPROCESSOR_FILE, looks_local, required=False)  # beside config.json in the cache
        state, meta = read_weights_file(weights, config=config_path)
        return LoadedWeights.read(state, meta, where)
    raise BadFile(
        f"{where}: its config.json is neither timm's (architecture) nor a transformers ResNet's (model_type resnet)"
    )


# ---- publishing a run ---------------------------------------------------------------------------------
