"""The training loop: one process or many (torchrun), exact resume, atomic checkpoints, and an
interrupt (Ctrl-C, SIGTERM or ``max_steps``) that stops between steps, so a resume is exact."""

from __future__ import annotations

import dataclasses
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..data.datasets import Split, TensorImages, collate, load_digits, load_folder
from ..data.sampling import BatchOrder
from ..data.transforms import Preprocess, train_transform
from ..errors import BadFile, InvalidOption, MissingDependency
from . import distributed as D
from .checkpoint import load_checkpoint, set_rng_state
from .config import TrainConfig
from .evaluate import EvalResult, autocast_context, eval_batches, evaluate
from .rundir import RunDirectory
from .schedule import make_scheduler
from .setup import build_model, has_batch_norm, make_ema, make_mixer, make_optimizer

# Below this input size the last stage sees 1x1 feature maps (see Trainer.__init__).
MIN_BF16_CPU_INPUT = 32

# Settings that do not change what is computed, so a resumed run may set them anew.
RESUME_OVERRIDABLE = ("epochs", "quiet", "workers", "save_every_steps", "tensorboard", "max_steps")


@dataclass
class TrainResult:
    run_dir: Path
    history: List[dict]
    best_acc1: float
    skipped_images: int
    train_seconds: float
    interrupted: bool = False  # stopped early (a signal or max_steps); the checkpoint is resumable
    config: Optional[TrainConfig] = None
    finished_before: bool = False  # a resumed run that had already done all its epochs
    stop_reason: str = ""  # "signal" or "max_steps" when interrupted


@dataclass
class EpochTotals:
    """Running sums over one epoch's training steps."""

    loss_sum: float = 0.0
    correct: int = 0
    images: int = 0
    data_seconds: float = 0.0
    step_seconds: float = 0.0

    def as_list(self) -> List[float]:
        return [self.loss_sum, self.correct, self.images, self.data_seconds, self.step_seconds]

    @classmethod
    def from_list(cls, values) -> EpochTotals:
        loss, correct, images, data, step = values
        return cls(float(loss), int(correct), int(images), float(data), float(step))


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


def load_data(cfg: TrainConfig) -> Split:
    if cfg.data is None:
        return load_digits(image_size=cfg.image_size)
    preprocess = Preprocess(cfg.eval_resize, cfg.eval_crop, cfg.interpolation)
    return load_folder(
        Path(cfg.data),
        train_transform(
            cfg.train_crop, cfg.interpolation, auto_augment=cfg.auto_augment, random_erase=cfg.random_erase
        ),
        preprocess.transform(),
        preprocess,
        val_split=cfg.val_split,
        seed=cfg.seed,
        train_short_side=cfg.train_crop,
    )


def _ignore_sigint_in_worker(_: int) -> None:
    # Ctrl-C goes to the whole process group; the main process stops cleanly between steps, so
    # loader workers must not die from it first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Trainer:
    """Runs a configured training job; ``run()`` returns when all epochs are done or a stop was asked.

    ``on_step(trainer)`` is called after every optimizer step (tests and tools use it to stop a
    run at an exact step with ``request_stop()``)."""

    def __init__(
        self,
        cfg: Optional[TrainConfig] = None,
        resume: Optional[Path] = None,
        resume_overrides: Optional[dict] = None,
        log: Callable[[str], None] = print,
        on_step: Optional[Callable[[Trainer], None]] = None,
    ) -> None:
        self.info = D.setup()
        self.log = log if self.info.is_main else (lambda *_: None)
        self.on_step = on_step
        self.stop_requested = False
        self.stop_reason = ""
        self.resume_state: Optional[dict] = None
        if resume is not None:
            cfg = self._load_resume(Path(resume), resume_overrides or {})
        if cfg is None:
            raise InvalidOption("Trainer needs a config or a run to resume")
        cfg = dataclasses.replace(cfg)  # never mutate the caller's config
        self.rundir = RunDirectory(Path(cfg.out) if cfg.out else default_run_dir(cfg), writer=self.info.is_main)
        cfg.out = str(self.rundir.path)
        if self.resume_state is None:
            removed = self.rundir.prepare_new(cfg.exist_ok)
            if removed:
                self.log(f"--exist-ok: removed the previous run's {', '.join(removed)} from {self.rundir.path}")
        self.device = self.info.device
        input_size = cfg.image_size if cfg.data is None else cfg.train_crop
        if cfg.amp == "bf16" and self.device.type == "cpu" and input_size < MIN_BF16_CPU_INPUT:
            # PyTorch's CPU bf16 convolution backward leaves the weight gradient of a strided 3x3
            # conv uninitialised for taps that only see padding, which happens once the last stage
            # gets a 1-pixel input: the weights fill with garbage. fp32 is correct there.
            self.log(
                f"note: input {input_size}px < {MIN_BF16_CPU_INPUT}px: training in fp32 "
                "(bf16 convolution gradients on CPU are wrong at 1-pixel feature maps)"
            )
            cfg.amp = "none"
        self.cfg = cfg
        seed_everything(cfg.seed)

        self.data = load_data(cfg)
        self.num_classes = len(self.data.classes)
        model = build_model(cfg, self.num_classes, progress=self.info.is_main)
        self.batch_norm = has_batch_norm(model)
        if self.batch_norm and cfg.batch_size // self.info.world < 2:
            raise InvalidOption(
                f"--batch-size {cfg.batch_size} gives {cfg.batch_size // self.info.world} image(s) per process, but "
                "BatchNorm needs at least 2 to compute batch statistics; use --batch-size >= "
                f"{2 * self.info.world}, or --norm group / --norm frozen for tiny batches"
            )
        model.to(self.device)
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        if cfg.sync_bn and self.info.enabled:
            if self.device.type == "cpu":
                self.log("note: SyncBatchNorm needs a GPU in PyTorch; using per-process BatchNorm on CPU")
            else:
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model
        self.optimizer = make_optimizer(model, cfg)
        self.ema = make_ema(model, cfg, self.info.world) if cfg.ema else None
        self.scaler = torch.amp.GradScaler("cuda") if (cfg.amp == "fp16" and self.device.type == "cuda") else None

        self.ddp_model: nn.Module = model
        if self.info.enabled:
            self.ddp_model = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.step_model = torch.compile(self.ddp_model) if cfg.compile else self.ddp_model

        self.order = BatchOrder(
            len(self.data.train),
            cfg.batch_size,
            seed=cfg.seed,
            shuffle=True,
            drop_last=True,
            rank=self.info.rank,
            world=self.info.world,
            repeats=cfg.repeated_aug,
        )
        self.steps_per_epoch = self.order.num_batches()
        self.scheduler = make_scheduler(
            self.optimizer, self.steps_per_epoch, cfg.epochs, cfg.schedule, cfg.warmup_epochs, cfg.step_size, cfg.gamma
        )
        self.mixer = make_mixer(cfg, self.num_classes)
        self.loader = None
        if not self.data.in_memory:
            self.loader = DataLoader(
                self.data.train,
                batch_sampler=self.order,
                num_workers=cfg.workers,
                collate_fn=collate,
                pin_memory=self.device.type == "cuda",
                persistent_workers=cfg.workers > 0,
                worker_init_fn=_ignore_sigint_in_worker if cfg.workers > 0 else None,
            )

        self.history: List[dict] = []
        self.best_acc1 = -1.0
        self.epoch, self.batch_in_epoch, self.global_step = 0, 0, 0
        self.totals = EpochTotals()
        self.skipped: dict = {}
        self.tiny_batches = 0
        if self.resume_state is not None:
            self._restore(self.resume_state)

    # ---- state ---------------------------------------------------------------------------------

    def _load_resume(self, resume: Path, overrides: dict) -> TrainConfig:
        ckpt_path = resume / "last.pt" if resume.is_dir() else resume
        if not ckpt_path.is_file():
            raise BadFile(f"--resume {resume}: no last.pt there; pass the run directory of an earlier run")
        self.resume_state = load_checkpoint(ckpt_path)
        values = dict(self.resume_state["config"])
        for key, value in overrides.items():
            if key not in RESUME_OVERRIDABLE:
                raise InvalidOption(
                    f"--{key.replace('_', '-')} cannot change on --resume (it would change the result); "
                    f"allowed: {', '.join('--' + k.replace('_', '-') for k in RESUME_OVERRIDABLE)}"
                )
            values[key] = value
        saved_epochs = self.resume_state["config"]["epochs"]
        if values["epochs"] != saved_epochs and values["schedule"] in ("onecycle", "cosine"):
            self.log(
                f"note: --epochs {values['epochs']} (was {saved_epochs}): the {values['schedule']} schedule spans the "
                "new total, so the learning rate from here on differs from the original run's plan"
            )
        values["out"] = str(ckpt_path.parent)
        return TrainConfig.from_dict(values)

    def meta(self) -> dict:
        return {
            "arch": self.cfg.arch,
            "num_classes": self.num_classes,
            "classes": self.data.classes,
            "preprocess": self.data.preprocess.to_dict(),
            "in_chans": 3,
            "norm": self.cfg.norm,
            "source": "resnetkit train",
            "data": self.data.source,
        }

    def _save(self, name: str) -> None:
        self.rundir.save_checkpoint(
            name,
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            ema=self.ema.state_dict() if self.ema is not None else None,
            scaler=self.scaler.state_dict() if self.scaler is not None else None,
            epoch=self.epoch,
            batch=self.batch_in_epoch,
            global_step=self.global_step,
            epoch_sums=self.totals.as_list(),
            history=self.history,
            best_acc1=self.best_acc1,
            skipped=self.skipped,
            config=self.cfg.to_dict(),
            meta=self.meta(),
        )

    def _restore(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scheduler") is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.ema is not None and ckpt.get("ema") is not None:
            self.ema.load_state_dict(ckpt["ema"])
        if self.scaler is not None and ckpt.get("scaler") is not None:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.batch_in_epoch, self.global_step = ckpt["epoch"], ckpt["batch"], ckpt["global_step"]
        self.totals = EpochTotals.from_list(ckpt["epoch_sums"])
        self.history = list(ckpt["history"])
        self.best_acc1 = ckpt["best_acc1"]
        self.skipped = dict(ckpt.get("skipped") or {})
        set_rng_state(ckpt["rng"])
        if self.epoch >= self.cfg.epochs:
            self.log(
                f"{self.rundir.path}: the run has finished all {self.cfg.epochs} epochs; "
                f"pass --epochs N (N > {self.cfg.epochs}) to train it further"
            )
        else:
            self.log(
                f"resumed {self.rundir.path} at epoch {self.epoch + 1}/{self.cfg.epochs}, "
                f"batch {self.batch_in_epoch}/{self.steps_per_epoch}"
            )

    # ---- steps ---------------------------------------------------------------------------------

    def request_stop(self, reason: str = "signal") -> None:
        """Stop after the current step: the checkpoint then holds a consistent state (resumable)."""
        self.stop_requested = True
        self.stop_reason = self.stop_reason or reason

    def _batches(self) -> Iterable[Tuple[torch.Tensor, torch.Tensor, list]]:
        self.order.set_epoch(self.epoch, self.batch_in_epoch)
        if self.loader is not None:
            yield from self.loader
            return
        data: TensorImages = self.data.train  # type: ignore[assignment]
        for chunk in self.order:
            x, y = data.shifted_batch([i for _, i in chunk], self.cfg.pad_crop, self.cfg.seed, self.epoch)
            yield x, y, []

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> Tuple[float, int]:
        cfg = self.cfg
        x = x.to(self.device, non_blocking=True)
        y = y.to(self.device, non_blocking=True)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        target = y
        if self.mixer is not None:
            # Mixing randomness is a function of (seed, step), so a resumed run mixes identically.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed * 7_919 + self.global_step * 104_729 + self.info.rank)
                x, target = self.mixer(x, y)
        self.ddp_model.train()
        with autocast_context(cfg.amp, self.device):
            logits = self.step_model(x)
            loss = F.cross_entropy(logits.float(), target, label_smoothing=cfg.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if cfg.clip_grad_norm:
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.ema is not None and (self.global_step + 1) % cfg.ema_steps == 0:
            self.ema.update_parameters(self.model)
            if self.epoch < cfg.warmup_epochs:
                # torchvision's reference: the average restarts until the warmup is over.
                self.ema.n_averaged.fill_(0)
        correct = int((logits.detach().argmax(1) == y).sum())
        return float(loss.detach()) * len(y), correct

    def _note_skipped(self, messages: list) -> None:
        for msg in messages:
            if msg not in self.skipped:
                self.skipped[msg] = msg
                self.log(f"skipped unreadable image: {msg}")

    # ---- epochs --------------------------------------------------------------------------------

    def _train_epoch(self) -> None:
        cfg = self.cfg
        bar = tqdm(
            total=self.steps_per_epoch,
            initial=self.batch_in_epoch,
            desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
            # None: shown on a terminal only, so logs and pipes get the per-epoch lines alone.
            disable=True if (cfg.quiet or not self.info.is_main) else None,
            leave=False,
            dynamic_ncols=True,
            file=sys.stderr,
        )
        t_data = time.perf_counter()
        for x, y, skipped in self._batches():
            t_ready = time.perf_counter()
            self._note_skipped(skipped)
            trained = len(y) >= 2 or (len(y) == 1 and not self.batch_norm)
            if trained:
                loss_sum, correct = self._step(x, y)
            else:
                # Skipped files or an unlucky remainder can leave 0 or 1 image in a batch; BatchNorm
                # cannot train on one image, so this batch is dropped (as timm and torchvision drop
                # incomplete batches). The schedule still advances, so a resume stays exact.
                loss_sum, correct = 0.0, 0
                if len(y) == 1:
                    self.tiny_batches += 1
            t_done = time.perf_counter()
            t = self.totals
            t.loss_sum += loss_sum
            t.correct += correct
            t.images += len(y) if trained else 0
            t.data_seconds += t_ready - t_data
            t.step_seconds += t_done - t_data
            self.batch_in_epoch += 1
            self.global_step += 1
            self.scheduler.step()
            bar.update(1)
            bar.set_postfix(
                loss=f"{t.loss_sum / max(1, t.images):.3f}",
                lr=f"{self.scheduler.get_last_lr()[0]:.3g}",
                img_s=f"{t.images * self.info.world / max(1e-9, t.step_seconds):.0f}",
            )
            if self.on_step is not None:
                self.on_step(self)
            if cfg.max_steps and self.global_step >= cfg.max_steps:
                self.request_stop("max_steps")
            if self.stop_requested:
                break
            if cfg.save_every_steps and self.global_step % cfg.save_every_steps == 0:
                self._save("last.pt")
                if not cfg.quiet:
                    self.log(f"checkpoint: step {self.global_step} saved to {self.rundir.path / 'last.pt'}")
            t_data = time.perf_counter()
        bar.close()

    def _evaluate(self, model: nn.Module) -> EvalResult:
        per_rank = max(1, self.cfg.batch_size // self.info.world)
        batches = eval_batches(self.data.val, per_rank, self.cfg.workers, self.info.rank, self.info.world)
        return evaluate(
            model,
            batches,
            self.num_classes,
            self.device,
            amp=self.cfg.amp,
            channels_last=self.cfg.channels_last,
            label_smoothing=0.0,
            dist_info=self.info,
            on_skipped=self._note_skipped,
        )

    def _end_epoch(self, epoch_seconds: float) -> dict:
        loss_sum, correct, images, data_s, step_s = D.all_sum(self.totals.as_list(), self.info)
        result = self._evaluate(self.model)
        row = {
            "epoch": self.epoch + 1,
            "train_loss": loss_sum / max(1, images),
            "train_acc": 100.0 * correct / max(1, images),
            "val_loss": result.loss,
            "val_acc1": result.acc1,
            "val_acc5": result.acc5,
            "lr": self.optimizer.param_groups[0]["lr"],
            "images_per_s": images / max(1e-9, step_s / self.info.world),
            "data_share": data_s / max(1e-9, step_s),
            "epoch_seconds": epoch_seconds,
        }
        if self.ema is not None:
            row["ema_val_acc1"] = self._evaluate(self.ema.module).acc1
        return row

    def _handle_signal(self, signum, frame) -> None:
        if self.stop_requested and self.stop_reason == "signal":  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.log(f"\n{signal.Signals(signum).name}: finishing the current step, then saving (again to stop at once)")
        self.request_stop()

    def run(self) -> TrainResult:
        cfg = self.cfg
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._handle_signal)
        try:
            with deterministic_algorithms(cfg.deterministic):
                return self._run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run(self) -> TrainResult:
        cfg = self.cfg
        finished_before = self.resume_state is not None and self.epoch >= cfg.epochs
        if self.resume_state is None:
            self.rundir.write_start(cfg.to_dict(), self.data.classes)
        self.log(
            f"training {cfg.arch} on {self.data.source}: {len(self.data.train)} train / {len(self.data.val)} val images, "
            f"{self.num_classes} classes, {cfg.epochs} epochs, batch {cfg.batch_size}"
            + (f" over {self.info.world} processes" if self.info.enabled else "")
            + f", amp {cfg.amp}, channels_last {cfg.channels_last} -> {self.rundir.path}"
        ) if not finished_before else None
        writer = self._tensorboard()
        train_seconds = sum(r.get("epoch_seconds", 0.0) for r in self.history)
        interrupted = False
        try:
            while self.epoch < cfg.epochs:
                t0 = time.perf_counter()
                if self.batch_in_epoch < self.steps_per_epoch:
                    self._train_epoch()
                if self.stop_requested:
                    interrupted = True
                    break
                row = self._end_epoch(time.perf_counter() - t0)
                train_seconds += row["epoch_seconds"]
                self.history.append(row)
                improved = row["val_acc1"] > self.best_acc1
                self.best_acc1 = max(self.best_acc1, row["val_acc1"])
                self.epoch += 1
                self.batch_in_epoch = 0
                self.totals = EpochTotals()
                self._save("last.pt")
                if improved:
                    self._save("best.pt")
                self.rundir.write_reports(self.history)
                if writer is not None:
                    for k, v in row.items():
                        if k != "epoch":
                            writer.add_scalar(k, v, row["epoch"])
                self.log(
                    f"epoch {row['epoch']:>3}/{cfg.epochs}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.2f}%  "
                    f"val loss {row['val_loss']:.4f} acc@1 {row['val_acc1']:.2f}% acc@5 {row['val_acc5']:.2f}%  "
                    f"lr {row['lr']:.3g}  {row['images_per_s']:.0f} img/s  {row['epoch_seconds']:.1f}s"
                )
        except KeyboardInterrupt:
            # A second signal: the step in flight is abandoned; the last checkpoint on disk stays as it was.
            self.log(
                f"stopped at once; the last saved checkpoint is kept; continue with: resnetkit train --resume {self.rundir.path}"
            )
            D.barrier(self.info)
            return self._result(train_seconds, interrupted=True, finished_before=False)
        finally:
            if writer is not None:
                writer.close()
        if interrupted:
            self._save("last.pt")
            self.log(
                f"stopped after step {self.global_step} (epoch {self.epoch + 1}, batch {self.batch_in_epoch}): "
                f"checkpoint saved; continue with: resnetkit train --resume {self.rundir.path}"
            )
        elif not finished_before:
            self.rundir.write_weights("model.safetensors", self.model.state_dict(), self.meta())
            if self.ema is not None:
                self.rundir.write_weights("model_ema.safetensors", self.ema.module.state_dict(), self.meta())
            last = self.history[-1]
            self.rundir.write_json(
                "summary.json",
                {
                    "run_dir": str(self.rundir.path),
                    "final_val_acc1": round(last["val_acc1"], 3),
                    "best_val_acc1": round(self.best_acc1, 3),
                    "train_seconds": round(train_seconds, 1),
                    "skipped_images": len(self.skipped),
                    "dropped_single_image_batches": self.tiny_batches,
                },
            )
            if cfg.data is None:
                self.rundir.write_samples()
        if self.tiny_batches:
            self.log(
                f"note: {self.tiny_batches} training batch(es) of a single image were dropped "
                "(BatchNorm cannot train on one image)"
            )
        D.barrier(self.info)
        return self._result(train_seconds, interrupted, finished_before)

    def _result(self, train_seconds: float, interrupted: bool, finished_before: bool) -> TrainResult:
        return TrainResult(
            run_dir=self.rundir.path,
            history=self.history,
            best_acc1=self.best_acc1,
            skipped_images=len(self.skipped),
            train_seconds=train_seconds,
            interrupted=interrupted,
            config=self.cfg,
            finished_before=finished_before,
            stop_reason=(self.stop_reason or "signal") if interrupted else "",
        )

    def _tensorboard(self):
        if not (self.cfg.tensorboard and self.info.is_main):
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise MissingDependency("--tensorboard needs the tensorboard package: pip install tensorboard") from None
        return SummaryWriter(str(self.rundir.path / "tensorboard"))

    def close(self) -> None:
        D.teardown(self.info)


def train(
    cfg: Optional[TrainConfig] = None,
    resume: Optional[Path] = None,
    resume_overrides: Optional[dict] = None,
    log: Callable[[str], None] = print,
    on_step: Optional[Callable[[Trainer], None]] = None,
) -> TrainResult:
    """Train as configured, or continue the run directory ``resume`` (optionally with new
    ``epochs``/``quiet``/``workers``/...), and return where the outputs are."""
    trainer = Trainer(cfg, resume=resume, resume_overrides=resume_overrides, log=log, on_step=on_step)
    try:
        return trainer.run()
    finally:
        trainer.close()
