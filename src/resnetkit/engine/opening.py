"""Opening a run: a new run directory claimed (one writer), or an earlier run's checkpoint and the
configuration it continues with; the process's seeds and determinism for the run's life."""

from __future__ import annotations

import dataclasses
import random
import time
from pathlib import Path
from typing import Callable, Optional, Tuple

import numpy as np
import torch

from ..errors import BadFile, InvalidOption
from . import distributed as D
from .checkpoint import load_checkpoint
from .config import TrainConfig
from .rundir import RunDirectory

# Settings that do not change what is computed, so a resumed run may set them anew.
RESUME_OVERRIDABLE = ("epochs", "quiet", "workers", "save_every_steps", "tensorboard", "max_steps")


class deterministic_algorithms:
    """Turn on deterministic algorithms for the duration of a run, then restore the previous setting."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __enter__(self) -> None:
        self.previous = (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.benchmark,
        )
        if self.enabled:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False

    def __exit__(self, *exc) -> None:
        mode, warn_only, bench = self.previous
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
        torch.backends.cudnn.benchmark = bench


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def default_run_dir(cfg: TrainConfig) -> Path:
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.arch}"


def resumed_config(checkpoint: dict, overrides: dict, out: Path, log: Callable[[str], None]) -> TrainConfig:
    """The configuration a resumed run continues with: the saved one, plus the settings that may
    change on resume."""
    values = dict(checkpoint["config"])
    from ..data.shards import is_shards

    if is_shards(values.get("data")) and overrides.get("workers", values["workers"]) != values["workers"]:
        raise InvalidOption(
            f"workers cannot change on --resume of a WebDataset run: the sample order is dealt to its "
            f"{values['workers']} loader worker(s); resume with --workers {values['workers']}",
            field="workers",
        )
    for key, value in overrides.items():
        if key not in RESUME_OVERRIDABLE:
            raise InvalidOption(
                f"{key} cannot change on --resume (it would change the result); allowed: {', '.join(RESUME_OVERRIDABLE)}",
                field=key,
            )
        values[key] = value
    saved_epochs = checkpoint["config"]["epochs"]
    if values["epochs"] != saved_epochs and values["schedule"] in ("onecycle", "cosine"):
        log(
            f"note: --epochs {values['epochs']} (was {saved_epochs}): the {values['schedule']} schedule spans the "
            "new total, so the learning rate from here on differs from the original run's plan"
        )
    values["out"] = str(out)
    return TrainConfig.from_dict(values)


def open_run(
    cfg: Optional[TrainConfig], resume: Optional[Path], overrides: dict, info: D.DistInfo, log: Callable[[str], None]
) -> Tuple[RunDirectory, TrainConfig, Optional[dict]]:
    """(its directory, locked; the configuration; the checkpoint to resume from or None). The lock
    is taken before anything is read or written, so a second process is refused before it starts."""
    if resume is not None:
        resume = Path(resume)
        folder = resume if resume.is_dir() or not resume.suffix else resume.parent
        rundir = RunDirectory(folder, writer=info.is_main)
        rundir.claim(create=False)
        try:
            checkpoint_path = resume / "last.pt" if resume.is_dir() else resume
            if not checkpoint_path.is_file():
                raise BadFile(
                    f"resume {resume}: no last.pt there; pass the run directory of an earlier run", field="resume"
                )
            checkpoint = load_checkpoint(checkpoint_path)
            return rundir, resumed_config(checkpoint, overrides, folder, log), checkpoint
        except BaseException:
            rundir.release()
            raise
    if cfg is None:
        raise InvalidOption("Trainer needs a config or a run to resume")
    out = Path(cfg.out) if cfg.out else default_run_dir(cfg)
    cfg = dataclasses.replace(cfg, out=str(out))
    rundir = RunDirectory(out, writer=info.is_main)
    rundir.claim()
    try:
        removed = rundir.prepare_new(cfg.exist_ok)
    except BaseException:
        rundir.release()
        raise
    if removed:
        log(f"replacing the previous run: removed the previous run's {', '.join(removed)} from {rundir.path}")
    return rundir, cfg, None
