"""The training loop: one process or many (torchrun), exact resume, atomic checkpoints."""

from __future__ import annotations

import json
import random
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..data.datasets import Split, TensorImages, collate, load_digits, load_folder
from ..data.sampling import BatchOrder, sample_seed
from ..data.transforms import Preprocess, train_transform
from ..errors import ResnetkitError
from ..models import get_model
from ..weights.io import save_safetensors
from ..weights.loading import load_weights
from ..weights.resolve import NORM_LAYERS, read_source
from . import distributed as D
from .checkpoint import load_checkpoint, save_checkpoint, set_rng_state
from .config import TrainConfig
from .evaluate import EvalResult, autocast_context, evaluate
from .report import write_curves, write_metrics_csv
from .schedule import lr_factor


# Below this input size the last stage sees 1x1 feature maps (see Trainer.__init__).
MIN_BF16_CPU_INPUT = 32

# Settings that do not change what is computed, so a resumed run may set them anew.
RESUME_OVERRIDABLE = ("epochs", "quiet", "workers", "save_every_steps", "tensorboard")


@dataclass
class TrainResult:
    run_dir: Path
    history: List[dict]
    best_acc1: float
    skipped_images: int
    train_seconds: float
    interrupted: bool = False
    config: Optional[TrainConfig] = None


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def default_run_dir(cfg: TrainConfig) -> Path:
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.arch}"


def load_data(cfg: TrainConfig) -> Split:
    if cfg.data is None:
        return load_digits(image_size=cfg.image_size)
    preprocess = Preprocess(cfg.eval_resize, cfg.eval_crop, cfg.interpolation)
    return load_folder(
        Path(cfg.data),
        train_transform(cfg.train_crop, cfg.interpolation, auto_augment=cfg.auto_augment, random_erase=cfg.random_erase),
        preprocess.transform(),
        preprocess,
        val_split=cfg.val_split,
        seed=cfg.seed,
    )


def build_model(cfg: TrainConfig, num_classes: int, progress: bool) -> nn.Module:
    model = get_model(
        cfg.arch, num_classes=num_classes, norm_layer=NORM_LAYERS[cfg.norm], zero_init_residual=cfg.zero_init_residual
    )
    if cfg.weights:
        loaded = read_source(cfg.weights, progress=progress)
        load_weights(model, loaded.state, head="reset", source=loaded.source)
    if cfg.freeze_backbone:
        for name, p in model.named_parameters():
            if not name.startswith("fc."):
                p.requires_grad_(False)
    return model


def param_groups(model: nn.Module, cfg: TrainConfig) -> List[dict]:
    """Split parameters by weight decay (norm layers and biases may get their own) and by learning
    rate (backbone scaled by ``backbone_lr_scale`` for discriminative fine-tuning)."""
    norm_types = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
    norm_params = {id(p) for m in model.modules() if isinstance(m, norm_types) for p in m.parameters(recurse=False)}
    groups: Dict[Tuple[float, float], List[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_norm = id(p) in norm_params
        wd = cfg.norm_weight_decay if (is_norm and cfg.norm_weight_decay is not None) else cfg.weight_decay
        scale = 1.0 if name.startswith("fc.") else cfg.backbone_lr_scale
        groups.setdefault((wd, scale), []).append(p)
    return [
        {"params": ps, "weight_decay": wd, "lr_scale": scale, "lr": cfg.lr * scale} for (wd, scale), ps in groups.items()
    ]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    if not groups:
        raise ResnetkitError("no trainable parameters (is everything frozen?)")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def autocast(cfg: TrainConfig, device: torch.device):
    return autocast_context(cfg.amp, device)


def _mixer(cfg: TrainConfig, num_classes: int) -> Optional[Callable]:
    from torchvision.transforms import v2 as T

    ops = []
    if cfg.mixup_alpha > 0:
        ops.append(T.MixUp(alpha=cfg.mixup_alpha, num_classes=num_classes))
    if cfg.cutmix_alpha > 0:
        ops.append(T.CutMix(alpha=cfg.cutmix_alpha, num_classes=num_classes))
    if not ops:
        return None
    return ops[0] if len(ops) == 1 else T.RandomChoice(ops)


class Trainer:
    """Runs a configured training job; ``run()`` returns when all epochs are done."""

    def __init__(
        self,
        cfg: Optional[TrainConfig] = None,
        resume: Optional[Path] = None,
        resume_overrides: Optional[dict] = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.info = D.setup()
        self.log = log if self.info.is_main else (lambda *_: None)
        self.resume_state = None
        if resume is not None:
            resume = Path(resume)
            ckpt_path = resume / "last.pt" if resume.is_dir() else resume
            if not ckpt_path.is_file():
                raise ResnetkitError(f"--resume {resume}: no last.pt there; pass the run directory of an earlier run")
            self.resume_state = load_checkpoint(ckpt_path)
            cfg = TrainConfig.from_dict(self.resume_state["config"])
            for key, value in (resume_overrides or {}).items():
                if key not in RESUME_OVERRIDABLE:
                    raise ResnetkitError(
                        f"--{key.replace('_', '-')} cannot change on --resume (it would change the result); "
                        f"allowed: {', '.join('--' + k.replace('_', '-') for k in RESUME_OVERRIDABLE)}"
                    )
                setattr(cfg, key, value)
            cfg.out = str(ckpt_path.parent)
        if cfg is None:
            raise ValueError("Trainer needs a config or a run to resume")
        self.cfg = cfg
        self.run_dir = Path(cfg.out) if cfg.out else default_run_dir(cfg)
        cfg.out = str(self.run_dir)
        seed_everything(cfg.seed, cfg.deterministic)
        self.device = self.info.device
        input_size = cfg.image_size if cfg.data is None else cfg.train_crop
        if cfg.amp == "bf16" and self.device.type == "cpu" and input_size < MIN_BF16_CPU_INPUT:
            # PyTorch's CPU bf16 convolution backward leaves the weight gradient of a strided 3x3
            # conv uninitialised for taps that only see padding, which happens once the last stage
            # gets a 1-pixel input: the weights fill with garbage. fp32 is correct there.
            self.log(f"note: input {input_size}px < {MIN_BF16_CPU_INPUT}px: training in fp32 "
                     "(bf16 convolution gradients on CPU are wrong at 1-pixel feature maps)")
            cfg.amp = "none"

        self.data = load_data(cfg)
        self.num_classes = len(self.data.classes)
        model = build_model(cfg, self.num_classes, progress=self.info.is_main)
        model.arch = cfg.arch
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
        self.ema = None
        if cfg.ema:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
        self.scaler = torch.amp.GradScaler("cuda") if (cfg.amp == "fp16" and self.device.type == "cuda") else None

        self.ddp_model: nn.Module = model
        if self.info.enabled:
            self.ddp_model = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.step_model = torch.compile(self.ddp_model) if cfg.compile else self.ddp_model

        self.order = BatchOrder(
            len(self.data.train), cfg.batch_size, seed=cfg.seed, shuffle=True, drop_last=True,
            rank=self.info.rank, world=self.info.world, repeats=cfg.repeated_aug,
        )
        self.steps_per_epoch = self.order.num_batches()
        self.mixer = _mixer(cfg, self.num_classes)
        self.loader = None
        if not self.data.in_memory:
            self.loader = DataLoader(
                self.data.train, batch_sampler=self.order, num_workers=cfg.workers, collate_fn=collate,
                pin_memory=self.device.type == "cuda", persistent_workers=cfg.workers > 0,
            )

        self.history: List[dict] = []
        self.best_acc1 = -1.0
        self.epoch, self.batch_in_epoch, self.global_step = 0, 0, 0
        self.epoch_sums = [0.0, 0.0, 0.0, 0.0, 0.0]  # loss*n, correct, n, data seconds, step seconds
        self.skipped: Dict[str, str] = {}
        if self.resume_state is not None:
            self._restore(self.resume_state)

    # ---- state ---------------------------------------------------------------------------------

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
        if not self.info.is_main:
            return
        save_checkpoint(
            self.run_dir / name,
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            ema=self.ema.state_dict() if self.ema is not None else None,
            scaler=self.scaler.state_dict() if self.scaler is not None else None,
            epoch=self.epoch,
            batch=self.batch_in_epoch,
            global_step=self.global_step,
            epoch_sums=list(self.epoch_sums),
            history=self.history,
            best_acc1=self.best_acc1,
            skipped=self.skipped,
            config=self.cfg.to_dict(),
            meta=self.meta(),
        )

    def _restore(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.ema is not None and ckpt.get("ema") is not None:
            self.ema.load_state_dict(ckpt["ema"])
        if self.scaler is not None and ckpt.get("scaler") is not None:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.batch_in_epoch, self.global_step = ckpt["epoch"], ckpt["batch"], ckpt["global_step"]
        self.epoch_sums = list(ckpt["epoch_sums"])
        self.history = list(ckpt["history"])
        self.best_acc1 = ckpt["best_acc1"]
        self.skipped = dict(ckpt.get("skipped") or {})
        set_rng_state(ckpt["rng"])
        self.log(f"resumed {self.run_dir} at epoch {self.epoch + 1}, batch {self.batch_in_epoch}/{self.steps_per_epoch}")

    # ---- steps ---------------------------------------------------------------------------------

    def _batches(self) -> Iterable[Tuple[torch.Tensor, torch.Tensor, list]]:
        self.order.set_epoch(self.epoch, self.batch_in_epoch)
        if self.loader is not None:
            yield from self.loader
            return
        data: TensorImages = self.data.train  # type: ignore[assignment]
        shift = None
        if self.cfg.pad_crop > 0:
            from torchvision.transforms import v2 as T

            size = data.images.shape[-2:]
            shift = T.RandomCrop(size, padding=self.cfg.pad_crop, padding_mode="edge")
        for chunk in self.order:
            indices = [i for _, i in chunk]
            x, y = data.batch(indices)
            if shift is not None:
                # Per-sample random translation seeded by (seed, epoch, sample): the same whatever
                # the batch split across ranks, and again after a resume.
                with torch.random.fork_rng(devices=[]):
                    shifted = []
                    for img, i in zip(x, indices):
                        torch.manual_seed(sample_seed(self.cfg.seed, self.epoch, i))
                        shifted.append(shift(img))
                    x = torch.stack(shifted)
            yield x, y, []

    def _set_lr(self) -> float:
        cfg = self.cfg
        f = lr_factor(self.global_step, self.steps_per_epoch, cfg.epochs, cfg.schedule, cfg.warmup_epochs,
                      cfg.step_size, cfg.gamma)
        for g in self.optimizer.param_groups:
            g["lr"] = cfg.lr * g.get("lr_scale", 1.0) * f
        return cfg.lr * f

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
        with autocast(cfg, self.device):
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
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        correct = int((logits.detach().argmax(1) == y).sum())
        return float(loss.detach()) * len(y), correct

    def _note_skipped(self, messages: list) -> None:
        for msg in messages:
            if msg not in self.skipped:
                self.skipped[msg] = msg
                warnings.warn(f"skipped unreadable image: {msg}", stacklevel=2)

    # ---- epochs --------------------------------------------------------------------------------

    def _train_epoch(self) -> None:
        cfg = self.cfg
        bar = tqdm(
            total=self.steps_per_epoch, initial=self.batch_in_epoch, desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
            # None: shown on a terminal only, so logs and pipes get the per-epoch lines alone.
            disable=True if (cfg.quiet or not self.info.is_main) else None, leave=False, dynamic_ncols=True,
            file=sys.stderr,
        )
        t_data = time.perf_counter()
        for x, y, skipped in self._batches():
            t_ready = time.perf_counter()
            self._note_skipped(skipped)
            lr = self._set_lr()
            if len(y):
                loss_sum, correct = self._step(x, y)
            else:
                loss_sum, correct = 0.0, 0
            t_done = time.perf_counter()
            s = self.epoch_sums
            s[0] += loss_sum
            s[1] += correct
            s[2] += len(y)
            s[3] += t_ready - t_data
            s[4] += t_done - t_data
            self.batch_in_epoch += 1
            self.global_step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{s[0] / max(1, s[2]):.3f}", lr=f"{lr:.3g}",
                            img_s=f"{s[2] * self.info.world / max(1e-9, s[4]):.0f}")
            if cfg.save_every_steps and self.global_step % cfg.save_every_steps == 0:
                self._save("last.pt")
            t_data = time.perf_counter()
        bar.close()

    def _eval_loader(self, split_dataset, batch_size: int):
        from ..data.sampling import shard

        indices = shard(len(split_dataset), self.info.rank, self.info.world)
        batches = [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
        if self.data.in_memory:
            return (split_dataset.batch(b) + ([],) for b in batches)
        return DataLoader(split_dataset, batch_sampler=batches, num_workers=self.cfg.workers, collate_fn=collate)

    def _evaluate(self, model: nn.Module) -> EvalResult:
        per_rank = max(1, self.cfg.batch_size // self.info.world)
        return evaluate(
            model, self._eval_loader(self.data.val, per_rank), self.num_classes, self.device,
            amp=self.cfg.amp, channels_last=self.cfg.channels_last, label_smoothing=0.0, dist_info=self.info,
            on_skipped=self._note_skipped,
        )

    def _end_epoch(self, epoch_seconds: float) -> dict:
        s = D.all_sum(self.epoch_sums, self.info)
        result = self._evaluate(self.model)
        row = {
            "epoch": self.epoch + 1,
            "train_loss": s[0] / max(1, s[2]),
            "train_acc": 100.0 * s[1] / max(1, s[2]),
            "val_loss": result.loss,
            "val_acc1": result.acc1,
            "val_acc5": result.acc5,
            "lr": self.optimizer.param_groups[0]["lr"],
            "images_per_s": s[2] / max(1e-9, s[4] / self.info.world),
            "data_share": s[3] / max(1e-9, s[4]),
            "epoch_seconds": epoch_seconds,
        }
        if self.ema is not None:
            row["ema_val_acc1"] = self._evaluate(self.ema.module).acc1
        return row

    def run(self) -> TrainResult:
        cfg = self.cfg
        if self.info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
            (self.run_dir / "classes.json").write_text(json.dumps(self.data.classes, indent=1) + "\n")
        self.log(
            f"training {cfg.arch} on {self.data.source}: {len(self.data.train)} train / {len(self.data.val)} val images, "
            f"{self.num_classes} classes, {cfg.epochs} epochs, batch {cfg.batch_size}"
            + (f" over {self.info.world} processes" if self.info.enabled else "")
            + f", amp {cfg.amp}, channels_last {cfg.channels_last} -> {self.run_dir}"
        )
        writer = self._tensorboard()
        train_seconds = sum(r.get("epoch_seconds", 0.0) for r in self.history)
        interrupted = False
        try:
            while self.epoch < cfg.epochs:
                t0 = time.perf_counter()
                if self.batch_in_epoch < self.steps_per_epoch:
                    self._train_epoch()
                row = self._end_epoch(time.perf_counter() - t0)
                train_seconds += row["epoch_seconds"]
                self.history.append(row)
                improved = row["val_acc1"] > self.best_acc1
                self.best_acc1 = max(self.best_acc1, row["val_acc1"])
                self.epoch += 1
                self.batch_in_epoch = 0
                self.epoch_sums = [0.0] * 5
                self._save("last.pt")
                if improved:
                    self._save("best.pt")
                self._write_reports(writer)
                self.log(
                    f"epoch {row['epoch']:>3}/{cfg.epochs}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.2f}%  "
                    f"val loss {row['val_loss']:.4f} acc@1 {row['val_acc1']:.2f}% acc@5 {row['val_acc5']:.2f}%  "
                    f"lr {row['lr']:.3g}  {row['images_per_s']:.0f} img/s  {row['epoch_seconds']:.1f}s"
                )
        except KeyboardInterrupt:
            interrupted = True
            self._save("last.pt")
            self.log(f"interrupted: checkpoint saved; continue with: resnetkit train --resume {self.run_dir}")
        finally:
            if writer is not None:
                writer.close()
        if not interrupted and self.info.is_main:
            save_safetensors(self.model.state_dict(), self.run_dir / "model.safetensors", self.meta())
            if self.ema is not None:
                save_safetensors(self.ema.module.state_dict(), self.run_dir / "model_ema.safetensors", self.meta())
        D.barrier(self.info)
        return TrainResult(
            self.run_dir, self.history, self.best_acc1, len(self.skipped), train_seconds, interrupted, self.cfg
        )

    def _write_reports(self, writer) -> None:
        if not self.info.is_main:
            return
        write_metrics_csv(self.history, self.run_dir / "metrics.csv")
        write_curves(self.history, self.run_dir / "curves.png")
        if writer is not None:
            row = self.history[-1]
            for k, v in row.items():
                if k != "epoch":
                    writer.add_scalar(k, v, row["epoch"])

    def _tensorboard(self):
        if not (self.cfg.tensorboard and self.info.is_main):
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ResnetkitError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
        return SummaryWriter(str(self.run_dir / "tensorboard"))

    def close(self) -> None:
        D.teardown(self.info)


def train(
    cfg: Optional[TrainConfig] = None,
    resume: Optional[Path] = None,
    resume_overrides: Optional[dict] = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train as configured, or continue the run directory ``resume`` (optionally with new
    ``epochs``/``quiet``/``workers``/...), and return where the outputs are."""
    trainer = Trainer(cfg, resume=resume, resume_overrides=resume_overrides, log=log)
    try:
        return trainer.run()
    finally:
        trainer.close()

