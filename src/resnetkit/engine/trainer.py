"""The training loop: one process or many (torchrun), exact resume, atomic checkpoints, and an
interrupt (Ctrl-C, SIGTERM or ``max_steps``) that stops between steps, so a resume is exact.

A run is three objects: its directory (``RunDirectory``, locked by one writer for the life of the
run), its components (``Components``: data, model, optimizer, ...; built by one function) and its
``TrainState`` (where it is and what it has seen). A checkpoint is the components' and the state's
``state_dict()`` plus the configuration, which never changes after the run starts."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..card import ModelCard
from ..data.datasets import TensorImages
from ..errors import MissingDependency
from . import distributed as D
from .checkpoint import set_rng_state
from .config import TrainConfig, train_size
from .evaluate import EvalResult, autocast_context, eval_batches, evaluate
from .multilabel import MultilabelResult, evaluate_multilabel
from .opening import deterministic_algorithms, open_run, seed_everything
from .setup import Components, build_components, set_crop_size
from .state import TrainState


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


class Trainer:
    """A configured training job: ``fit()`` returns when all epochs are done or a stop was asked.

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
        self.stop_requested, self.stop_reason = False, ""
        self.thresholds: Optional[List[float]] = None  # multilabel: tuned on the validation data at the end
        self.last_eval: Optional[EvalResult | MultilabelResult] = None
        self.rundir, self.cfg, checkpoint = open_run(cfg, resume, resume_overrides or {}, self.info, self.log)
        try:
            seed_everything(self.cfg.seed)
            self.parts: Components = build_components(self.cfg, self.info, self.log)
            self.state = TrainState()
            self.resumed = checkpoint is not None
            if checkpoint is not None:
                self._restore(checkpoint)
        except BaseException:
            self.rundir.release()
            raise

    @property
    def global_step(self) -> int:
        return self.state.step

    @property
    def model(self) -> nn.Module:
        return self.parts.model

    def card(self) -> ModelCard:
        """The card of the weights this run trains."""
        data = self.parts.data
        return ModelCard(
            arch=self.cfg.arch,
            num_classes=self.parts.num_classes,
            classes=tuple(data.classes),
            preprocess=data.preprocess,
            norm=self.cfg.norm,
            source="resnetkit train",
            data=data.source,
            task=self.cfg.task,
            thresholds=tuple(self.thresholds) if self.thresholds is not None else None,
        )

    # ---- checkpoints -------------------------------------------------------------------------------

    def _save(self, name: str) -> None:
        self.rundir.save_checkpoint(
            name,
            **self.parts.state_dict(),
            **self.state.state_dict(),
            config=self.cfg.to_dict(),
            meta=self.card().to_dict(),
        )

    def _restore(self, checkpoint: dict) -> None:
        self.parts.load_state_dict(checkpoint)
        self.state.load_state_dict(checkpoint)
        set_rng_state(checkpoint["rng"])
        if self.state.epoch >= self.cfg.epochs:
            self.log(
                f"{self.rundir.path}: the run has finished all {self.cfg.epochs} epochs; "
                f"pass --epochs N (N > {self.cfg.epochs}) to train it further"
            )
        else:
            self.log(
                f"resumed {self.rundir.path} at epoch {self.state.epoch + 1}/{self.cfg.epochs}, "
                f"batch {self.state.batch}/{self.parts.steps_per_epoch}"
            )

    # ---- steps -------------------------------------------------------------------------------------

    def request_stop(self, reason: str = "signal") -> None:
        """Stop after the current step: the checkpoint then holds a consistent state (resumable)."""
        self.stop_requested = True
        self.stop_reason = self.stop_reason or reason

    def _batches(self, state: TrainState) -> Iterable[Tuple[torch.Tensor, torch.Tensor, list]]:
        parts = self.parts
        parts.order.set_epoch(state.epoch, state.batch)
        size = train_size(self.cfg, state.epoch)  # progressive resizing: a function of the epoch (resumes exactly)
        if parts.loader is not None:
            if size is not None:
                set_crop_size(parts.data.train, size)
            yield from parts.loader
            return
        data: TensorImages = parts.data.train  # type: ignore[assignment]
        for chunk in parts.order:
            x, y = data.shifted_batch([i for _, i in chunk], self.cfg.pad_crop, self.cfg.seed, state.epoch)
            if size is not None and size != x.shape[-1]:
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            yield x, y, []

    def _step(self, x: torch.Tensor, y: torch.Tensor, step: int) -> Tuple[float, int]:
        cfg, parts = self.cfg, self.parts
        device = self.info.device
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        target = y
        if parts.mixer is not None:
            # Mixing randomness is a function of (seed, step), so a resumed run mixes identically.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed * 7_919 + step * 104_729 + self.info.rank)
                x, target = parts.mixer(x, y)
        parts.ddp_model.train()
        parts.optimizer.zero_grad(set_to_none=True)
        loss_sum, correct = 0.0, 0
        # Gradient accumulation: the batch runs as micro-batches whose losses are weighted by their
        # share of the batch, so the summed gradient is the whole batch's mean-loss gradient. Under
        # DDP only the last micro-batch synchronises gradients.
        # A batch shrunk by skipped files keeps at least 2 images per micro-batch under BatchNorm.
        n = min(cfg.accum_steps, max(1, len(y) // (2 if parts.batch_norm else 1)))
        chunks = list(zip(x.tensor_split(n), target.tensor_split(n), y.tensor_split(n)))
        no_sync = getattr(parts.ddp_model, "no_sync", None)  # DDP's: skip the all-reduce
        for i, (xs, ts, ys) in enumerate(chunks):
            last = i == len(chunks) - 1
            with contextlib.nullcontext() if (last or no_sync is None) else no_sync():
                with autocast_context(parts.amp, device):
                    logits = parts.step_model(xs)
                    loss = self._loss(logits.float(), ts)
                if parts.teacher is not None:
                    loss = (1 - cfg.kd_alpha) * loss + cfg.kd_alpha * self._distillation(xs, logits)
                share = loss * (len(ys) / len(y))
                if parts.scaler is not None:
                    parts.scaler.scale(share).backward()
                else:
                    share.backward()
            loss_sum += float(loss.detach()) * len(ys)
            correct += self._correct(logits.detach(), ys)
        if parts.scaler is not None:
            parts.scaler.unscale_(parts.optimizer)
        if cfg.clip_grad_norm:
            nn.utils.clip_grad_norm_(parts.model.parameters(), cfg.clip_grad_norm)
        if parts.scaler is not None:
            parts.scaler.step(parts.optimizer)
            parts.scaler.update()
        else:
            parts.optimizer.step()
        self._update_ema(step)
        return loss_sum, correct

    @staticmethod
    def _correct(logits: torch.Tensor, y: torch.Tensor) -> int:
        """Right answers in a batch: the top class, or (multi-label) the exact label set at 0.5."""
        if y.dim() == 1:
            return int((logits.argmax(1) == y).sum())
        return int(((logits > 0) == (y > 0.5)).all(1).sum())

    def _loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The label loss: softmax cross-entropy, or (``loss bce``) binary cross-entropy of each class
        against its target - smoothed, then thresholded (mixed targets above ``bce_target_threshold``
        count as 1, the rest 0), as ResNet strikes back trains."""
        cfg = self.cfg
        if cfg.loss == "ce":
            return F.cross_entropy(logits, target, label_smoothing=cfg.label_smoothing)
        classes = logits.shape[1]
        soft = F.one_hot(target, classes).float() if target.dim() == 1 else target.float()
        if cfg.label_smoothing:
            soft = soft * (1 - cfg.label_smoothing) + cfg.label_smoothing / classes
        if cfg.bce_target_threshold is not None:
            soft = (soft > cfg.bce_target_threshold).float()
        return F.binary_cross_entropy_with_logits(logits, soft)

    def _distillation(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Hinton et al.'s soft-target loss: KL(teacher || student) of the temperature-T softmaxes,
        times T^2 (so its gradients keep their size as T changes). The teacher runs in eval mode
        under the run's autocast (bf16 by default), without gradients."""
        teacher, t = self.parts.teacher, self.cfg.kd_temperature
        assert teacher is not None
        with torch.no_grad(), autocast_context(self.parts.amp, self.info.device):
            target = teacher(x).float()
        student = F.log_softmax(logits.float() / t, dim=1)
        return F.kl_div(student, F.log_softmax(target / t, dim=1), log_target=True, reduction="batchmean") * t * t

    def _update_ema(self, step: int) -> None:
        ema = self.parts.ema
        if ema is not None and (step + 1) % self.cfg.ema_steps == 0:
            ema.update_parameters(self.parts.model)
            if self.state.epoch < self.cfg.warmup_epochs:
                # torchvision's reference: the average restarts until the warmup is over.
                ema.n_averaged.fill_(0)

    def _note_skipped(self, messages: list) -> None:
        for message in self.state.note_skipped(messages):
            self.log(f"skipped unreadable image: {message}")

    def _train_batch(self, state: TrainState, x, y, skipped, t_start: float, t_ready: float) -> None:
        self._note_skipped(skipped)
        trained = len(y) >= 2 or (len(y) == 1 and not self.parts.batch_norm)
        if trained:
            loss_sum, correct = self._step(x, y, state.step)
        else:
            # Skipped files or an unlucky remainder can leave 0 or 1 image in a batch; BatchNorm
            # cannot train on one image, so this batch is dropped (as timm and torchvision drop
            # incomplete batches). The schedule still advances, so a resume stays exact.
            loss_sum, correct = 0.0, 0
            state.tiny_batches += len(y) == 1
        state.totals.add(loss_sum, correct, len(y) if trained else 0, t_ready - t_start, time.perf_counter() - t_start)
        state.batch += 1
        state.step += 1
        self.parts.scheduler.step()

    def train_one_epoch(self, state: TrainState) -> None:
        """Train on the rest of ``state``'s epoch (from ``state.batch``), stopping early between steps
        on a signal, ``max_steps`` or ``request_stop()``, and checkpointing every ``save_every_steps``."""
        cfg, parts = self.cfg, self.parts
        bar = tqdm(
            total=parts.steps_per_epoch,
            initial=state.batch,
            desc=f"epoch {state.epoch + 1}/{cfg.epochs}",
            # None: shown on a terminal only, so logs and pipes get the per-epoch lines alone.
            disable=True if (cfg.quiet or not self.info.is_main) else None,
            leave=False,
            dynamic_ncols=True,
            file=sys.stderr,
        )
        t_start = time.perf_counter()
        for x, y, skipped in self._batches(state):
            self._train_batch(state, x, y, skipped, t_start, time.perf_counter())
            t = state.totals
            bar.update(1)
            bar.set_postfix(
                loss=f"{t.loss_sum / max(1, t.images):.3f}",
                lr=f"{parts.scheduler.get_last_lr()[0]:.3g}",
                img_s=f"{t.images * self.info.world / max(1e-9, t.step_seconds):.0f}",
            )
            if self.on_step is not None:
                self.on_step(self)
            if cfg.max_steps and state.step >= cfg.max_steps:
                self.request_stop("max_steps")
            if self.stop_requested:
                break
            if cfg.save_every_steps and state.step % cfg.save_every_steps == 0:
                self._save("last.pt")
                if not cfg.quiet:
                    self.log(f"checkpoint: step {state.step} saved to {self.rundir.path / 'last.pt'}")
            t_start = time.perf_counter()
        bar.close()

    # ---- epochs ------------------------------------------------------------------------------------

    def _evaluate(self, model: nn.Module) -> EvalResult | MultilabelResult:
        per_rank = max(1, self.cfg.batch_size // self.info.world)
        batches = eval_batches(self.parts.data.val, per_rank, self.cfg.workers, self.info.rank, self.info.world)
        if self.cfg.task == "multilabel":
            return evaluate_multilabel(
                model, batches, self.parts.num_classes, self.info.device, amp=self.parts.amp,
                channels_last=self.cfg.channels_last, dist_info=self.info, on_skipped=self._note_skipped,
            )  # fmt: skip
        return evaluate(
            model,
            batches,
            self.parts.num_classes,
            self.info.device,
            amp=self.parts.amp,
            channels_last=self.cfg.channels_last,
            label_smoothing=0.0,
            dist_info=self.info,
            on_skipped=self._note_skipped,
        )

    def _epoch_row(self, epoch_seconds: float) -> dict:
        loss_sum, correct, images, data_s, step_s = D.all_sum(self.state.totals.as_list(), self.info)
        result = self._evaluate(self.parts.model)
        self.last_eval = result  # the final model's, once the last epoch ends (_finish tunes thresholds on it)
        row = {
            "epoch": self.state.epoch + 1,
            "train_loss": loss_sum / max(1, images),
            "train_acc": 100.0 * correct / max(1, images),
            "val_loss": result.loss,
            **_val_metrics(result),
            "lr": self.parts.optimizer.param_groups[0]["lr"],
            "images_per_s": images / max(1e-9, step_s / self.info.world),
            "data_share": data_s / max(1e-9, step_s),
            "epoch_seconds": epoch_seconds,
        }
        if self.parts.ema is not None:
            ema = self._evaluate(self.parts.ema.module)
            row["ema_val_mAP" if isinstance(ema, MultilabelResult) else "ema_val_acc1"] = ema.score
        return row

    def _end_epoch(self, row: dict, writer) -> None:
        improved = self.state.end_epoch(row, row[score_key(self.cfg.task)])
        self._save("last.pt")
        if improved:
            self._save("best.pt")
        self.rundir.write_reports(self.state.history)
        if writer is not None:
            for k, v in row.items():
                if k != "epoch":
                    writer.add_scalar(k, v, row["epoch"])
        val = (
            f"mAP {row['val_mAP']:.2f}% exact {row['val_exact_match']:.2f}%"
            if "val_mAP" in row
            else f"acc@1 {row['val_acc1']:.2f}% acc@5 {row['val_acc5']:.2f}%"
        )
        self.log(
            f"epoch {row['epoch']:>3}/{self.cfg.epochs}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.2f}%  "
            f"val loss {row['val_loss']:.4f} {val}  "
            f"lr {row['lr']:.3g}  {row['images_per_s']:.0f} img/s  {row['epoch_seconds']:.1f}s"
        )

    def _handle_signal(self, signum, frame) -> None:
        if self.stop_requested and self.stop_reason == "signal":  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.log(f"\n{signal.Signals(signum).name}: finishing the current step, then saving (again to stop at once)")
        self.request_stop()

    def fit(self) -> TrainResult:
        """Train to the end (or to a stop), then write the final weights and summary."""
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._handle_signal)
        try:
            with deterministic_algorithms(self.cfg.deterministic):
                return self._fit()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _announce(self) -> None:
        cfg, data, info = self.cfg, self.parts.data, self.info
        self.log(
            f"training {cfg.arch} on {data.source}: {len(data.train)} train / {len(data.val)} val images, "
            f"{self.parts.num_classes} classes, {cfg.epochs} epochs, batch {cfg.batch_size}"
            + (f" over {info.world} processes" if info.enabled else "")
            + f", amp {self.parts.amp}, channels_last {cfg.channels_last} -> {self.rundir.path}"
        )

    def _fit(self) -> TrainResult:
        cfg, state = self.cfg, self.state
        finished_before = self.resumed and state.epoch >= cfg.epochs
        if not self.resumed:
            self.rundir.write_start(cfg.to_dict(), self.parts.data.classes)
        if not finished_before:
            self._announce()
        writer = self._tensorboard()
        try:
            while state.epoch < cfg.epochs and not self.stop_requested:
                t0 = time.perf_counter()
                if state.batch < self.parts.steps_per_epoch:
                    self.train_one_epoch(state)
                if not self.stop_requested:
                    self._end_epoch(self._epoch_row(time.perf_counter() - t0), writer)
        except KeyboardInterrupt:
            # A second signal: the step in flight is abandoned; the last checkpoint on disk stays as it was.
            self.log(
                "stopped at once; the last saved checkpoint is kept; continue with: "
                f"resnetkit train --resume {self.rundir.path}"
            )
            D.barrier(self.info)
            return self._result(interrupted=True, finished_before=False)
        finally:
            if writer is not None:
                writer.close()
        if self.stop_requested:
            self._save("last.pt")
            self.log(
                f"stopped after step {state.step} (epoch {state.epoch + 1}, batch {state.batch}): "
                f"checkpoint saved; continue with: resnetkit train --resume {self.rundir.path}"
            )
        elif not finished_before:
            self._finish()
        D.barrier(self.info)
        return self._result(self.stop_requested, finished_before)

    def _finish(self) -> None:
        """The final weights (with their card), the summary and, for the digits, sample images."""
        state = self.state
        if self.cfg.task == "multilabel":  # per-class thresholds for predict and serve, tuned on the val data
            assert isinstance(self.last_eval, MultilabelResult)  # the last epoch's evaluation of these weights
            self.thresholds = self.last_eval.tuned
        card = self.card()
        metric = score_key(self.cfg.task)[len("val_") :]
        self.rundir.write_weights("model.safetensors", self.parts.model.state_dict(), card)
        if self.parts.ema is not None:
            self.rundir.write_weights("model_ema.safetensors", self.parts.ema.module.state_dict(), card)
        self.rundir.write_json(
            "summary.json",
            {
                "run_dir": str(self.rundir.path),
                f"final_val_{metric}": round(state.history[-1][f"val_{metric}"], 3),
                f"best_val_{metric}": round(state.best_acc1, 3),
                "train_seconds": round(state.train_seconds, 1),
                "skipped_images": len(state.skipped),
                "dropped_single_image_batches": state.tiny_batches,
                "amp": self.parts.amp,
            },
        )
        if self.cfg.data is None:
            self.rundir.write_samples(multilabel=self.cfg.task == "multilabel", image_size=self.cfg.image_size)
        if state.tiny_batches:
            self.log(
                f"note: {state.tiny_batches} training batch(es) of a single image were dropped "
                "(BatchNorm cannot train on one image)"
            )

    def _result(self, interrupted: bool, finished_before: bool) -> TrainResult:
        state = self.state
        return TrainResult(
            run_dir=self.rundir.path,
            history=state.history,
            best_acc1=state.best_acc1,
            skipped_images=len(state.skipped),
            train_seconds=state.train_seconds,
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
            raise MissingDependency(
                "tensorboard needs the tensorboard package: pip install tensorboard", field="tensorboard"
            ) from None
        return SummaryWriter(str(self.rundir.path / "tensorboard"))

    def close(self) -> None:
        self.rundir.release()
        D.teardown(self.info)


def score_key(task: str) -> str:
    """The validation metric a run keeps its best checkpoint by: top-1 accuracy, or mAP (multi-label)."""
    return "val_mAP" if task == "multilabel" else "val_acc1"


def _val_metrics(result: EvalResult | MultilabelResult) -> dict:
    if isinstance(result, MultilabelResult):
        return {"val_mAP": result.mAP, "val_exact_match": result.exact_match}
    return {"val_acc1": result.acc1, "val_acc5": result.acc5}


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
        return trainer.fit()
    finally:
        trainer.close()
