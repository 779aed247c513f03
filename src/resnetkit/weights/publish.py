"""Publishing a training run on the Hugging Face Hub (`resnetkit weights push`): the weights with their
card, a timm ``config.json`` and a README model card with the run's metrics, so that timm and resnetkit
both load the repository. Apart from hub.py (reading) because it reads the run through resolve.py,
which itself reads Hub ids through hub.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional

from ..card import ModelCard
from ..errors import BadFile, DownloadError, InvalidOption, OfflineError
from ..targets import EXPORTED_SUFFIXES
from .hub import client_options, endpoint_name, require_hub, server_failure


def timm_config(card: ModelCard) -> Dict[str, Any]:
    """The config.json timm's loader reads (``timm.create_model("hf-hub:ORG/NAME", pretrained=True)``)."""
    import torch

    from ..models import build_architecture

    if card.arch is None:
        raise BadFile(f"{card.source}: its card names no architecture; publish weights written by resnetkit")
    with torch.device("meta"):
        model = build_architecture(card.arch, num_classes=card.num_classes, in_chans=card.in_chans)
    pre = card.pretrained_cfg(first_conv=model.first_conv)
    size = card.input_size
    reduction = model.feature_info[-1]["reduction"]
    return {
        "architecture": card.arch,
        "num_classes": card.num_classes,
        "num_features": model.num_features,
        "global_pool": "avg",
        "label_names": list(card.classes) if card.classes else None,
        "pretrained_cfg": {
            "custom_load": False,
            "input_size": [card.in_chans, size, size],
            "fixed_input_size": False,
            "interpolation": pre["interpolation"],
            "crop_pct": round(pre["crop_pct"], 4),
            "crop_mode": "center",
            "mean": list(pre["mean"]),
            "std": list(pre["std"]),
            "num_classes": card.num_classes,
            "pool_size": [-(-size // reduction)] * 2,
            "first_conv": pre["first_conv"],
            "classifier": model.classifier_name,
        },
    }


def model_card_text(card: ModelCard, repo: str, facts: Dict[str, Any]) -> str:
    """README.md of a pushed run: what it is, how it was trained, how well it does, how to load it."""
    lines = ["---", "library_name: timm", "tags:", "- image-classification", "- resnetkit", "- timm", "---", ""]
    task = (
        " (multi-label: a sigmoid per class, thresholds tuned per class in the weights' card)"
        if card.multilabel
        else ""
    )
    lines += [f"# {repo}", "", f"A {card.arch} trained with resnetkit ({card.data or 'its own data'}), "
              f"{card.num_classes} classes{task}.", ""]  # fmt: skip
    if facts.get("metrics"):
        lines += ["| metric | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in facts["metrics"].items()] + [""]
    pre = card.preprocess
    lines += [
        f"Preprocessing: resize the short side to {pre.resize_size}, center crop {pre.crop_size}, "
        f"{pre.interpolation}, mean {list(pre.mean)}, std {list(pre.std)}.",
        "",
        f"Classes: {', '.join(card.classes) if card.classes else 'unnamed'}.",
        "",
        "```python",
        "import resnetkit as rk",
        f'model = rk.create_model("{card.arch}", weights="hf-hub:{repo}")',
        "# or, with timm:",
        "import timm",
        f'model = timm.create_model("hf-hub:{repo}", pretrained=True)',
        "```",
        "",
    ]
    if facts.get("config"):
        lines += ["Training configuration:", "", "```json", json.dumps(facts["config"], indent=1), "```", ""]
    return "\n".join(lines)


def run_facts(run: Path) -> Dict[str, Any]:
    """Metrics and configuration of a training run, for its model card (what the run has)."""
    facts: Dict[str, Any] = {"metrics": {}}
    for name, keys in (
        ("summary.json", ("final_val_acc1", "best_val_acc1", "final_val_mAP", "best_val_mAP", "train_seconds")),
        ("eval.json", ("acc1", "acc5", "mAP", "exact_match", "images")),
    ):
        try:
            data = json.loads((run / name).read_text())
        except (OSError, ValueError):
            continue
        facts["metrics"].update({f"{name.split('.')[0]} {k}": data[k] for k in keys if k in data})
    try:
        facts["config"] = json.loads((run / "config.json").read_text())
    except (OSError, ValueError):
        pass
    return facts


def push(
    run: Path, repo: str, private: bool = False, revision: Optional[str] = None, message: Optional[str] = None
) -> str:
    """Publish a training run (its model.safetensors) as a Hub repository timm and resnetkit both load:
    the weights with their card, a timm config.json and a README model card with the run's metrics.
    Returns the commit's URL."""
    import tempfile

    from .io import save_safetensors

    hub = require_hub()
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo)
        if "/" not in repo:
            raise HFValidationError("a repository id is ORG/NAME")
    except HFValidationError as exc:
        raise InvalidOption(
            f"repository id {repo!r} is not valid ({str(exc).splitlines()[0].rstrip('.')}); give ORG/NAME with "
            "letters, digits, '-', '_' or '.'",
            field="repo",
        ) from None
    from .resolve import resolve

    if not run.exists():
        raise BadFile(f"{run}: no such run directory or weights file")
    if run.suffix.lower() in EXPORTED_SUFFIXES or (run.is_dir() and any(run.glob("*.xml"))):
        raise BadFile(f"{run} is an exported model; publish the weights it was exported from (a run or its weights)")
    loaded = resolve(str(run))  # a run (model.safetensors, else best.pt, else last.pt) or a weights file
    state, card = loaded.state, loaded.card
    if card.arch is None:
        raise BadFile(f"{loaded.source}: its card names no architecture; publish weights written by resnetkit")
    options = client_options()
    api = hub.HfApi(endpoint=options["endpoint"])
    from huggingface_hub import errors

    with tempfile.TemporaryDirectory(prefix="resnetkit-push-") as tmp:
        folder = Path(tmp)
        save_safetensors(state, folder / "model.safetensors", card.but(source=f"hf-hub:{repo}"))
        (folder / "config.json").write_text(json.dumps(timm_config(card), indent=1) + "\n")
        (folder / "README.md").write_text(model_card_text(card, repo, run_facts(run if run.is_dir() else run.parent)))
        from ..quiet import loggers_quiet

        try:
            with loggers_quiet("huggingface_hub"):
                api.create_repo(repo, private=private, exist_ok=True)
                info = api.upload_folder(
                    repo_id=repo, folder_path=str(folder), revision=revision,
                    commit_message=message or f"resnetkit: {card.arch}, {card.num_classes} classes",
                )  # fmt: skip
        except (errors.HfHubHTTPError, errors.RepositoryNotFoundError) as exc:
            failure = server_failure(exc)
            if failure:
                raise DownloadError(
                    f"cannot publish to {repo}: the Hugging Face Hub ({endpoint_name()}) answered {failure}, after "
                    "the client's retries; the server is failing, not your login: try again later"
                ) from None
            raise DownloadError(f"cannot publish to {repo} ({exc.__class__.__name__}: {str(exc).splitlines()[0]}); "
                                "log in with huggingface-cli login (or HF_TOKEN) with write access") from None  # fmt: skip
        except OSError as exc:
            raise OfflineError(f"cannot reach the Hugging Face Hub to publish {repo} ({exc})") from None
    return str(getattr(info, "commit_url", info))
