"""What a training run is built from: the data, the model, its parameter groups, optimizer, schedule,
EMA, batch mixing and batch order - made by one function, ``build_components``, held by one object."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from ..data.datasets import FolderRecipe, Split, collate, load_digits, load_folder
from ..data.sampling import BatchOrder
from ..data.transforms import Preprocess, train_transform
from ..errors import InvalidOption, MissingDependency, ResnetkitError
from ..models import NORM_LAYERS
from ..weights.factory import get_model, load_weights
from . import distributed as D
from .config import RECIPES, TrainConfig, milestones, size_schedule
from .schedule import make_scheduler

# Below this input size the last stage sees 1x1 feature maps (see effective_amp).
MIN_BF16_CPU_INPUT = 32


def build_model(cfg: TrainConfig, num_classes: int, progress: bool) -> nn.Module:
    """The configured architecture, with fine-tuning weights loaded (new head) and the backbone
    frozen if asked."""
    extra: Dict[str, Any] = {"drop_path_rate": cfg.drop_path_rate} if cfg.drop_path_rate > 0 else {}
    model = get_model(
        cfg.arch,
        num_classes=num_classes,
        norm_layer=NORM_LAYERS[cfg.norm],
        zero_init_residual=cfg.zero_init_residual,
        **extra,
    )
    if cfg.weights:
        load_weights(model, cfg.weights, head="reset", progress=progress)
    if cfg.freeze_backbone:
        head = model.classifier_name + "."
        for name, p in model.named_parameters():
            if not name.startswith(head):
                p.requires_grad_(False)
    return model


def load_teacher(cfg: TrainConfig, data: Split, info: D.DistInfo, progress: bool) -> Optional[nn.Module]:
    """The distillation teacher ``cfg.teacher`` names, in eval mode on the run's device, checked
    against the data: the same classes, and the same input normalisation (it sees the student's
    batches)."""
    if not cfg.teacher:
        return None
    from ..weights.factory import model_from_weights
    from ..weights.resolve import resolve

    try:
        teacher = model_from_weights(resolve(cfg.teacher, progress=progress)).eval()
    except ResnetkitError as exc:  # the same error, saying which weights it is about
        raise type(exc)(f"teacher: {exc}", field=exc.field or "teacher", related=exc.related) from None
    teacher.requires_grad_(False)
    card = teacher.card
    if card.num_classes != len(data.classes):
        raise InvalidOption(
            f"teacher {cfg.teacher} has {card.num_classes} classes but the data has {len(data.classes)}; "
            "distil from a teacher trained on these classes (fine-tune one first with --weights)",
            field="teacher",
        )
    ours, theirs = data.preprocess, card.preprocess
    if (tuple(ours.mean), tuple(ours.std)) != (tuple(theirs.mean), tuple(theirs.std)):
        raise InvalidOption(
            f"teacher {cfg.teacher} was trained on inputs normalised with mean {tuple(theirs.mean)} / std "
            f"{tuple(theirs.std)}, the data here with {tuple(ours.mean)} / {tuple(ours.std)}: it would see "
            "the wrong images; use a teacher trained with this normalisation",
            field="teacher",
        )
    teacher.to(info.device)
    if cfg.channels_last:
        teacher.to(memory_format=torch.channels_last)
    return teacher


def has_batch_norm(model: nn.Module) -> bool:
    """True when the model normalises with batch statistics in training (a batch of 1 fails there)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def layer_ids(model: nn.Module) -> Tuple[Callable[[str], int], int]:
    """(parameter name -> depth, the head's depth): the stem 0, each stage 1..K in order, the rest
    (final norm, classifier) K + 1 - from the model's timm-style ``group_matcher(coarse=True)``."""
    import re

    matcher = model.group_matcher(coarse=True)  # type: ignore[operator]
    stem, blocks = re.compile(matcher["stem"]), re.compile(matcher["blocks"])
    stages = sorted({int(m.group(1)) for n, _ in model.named_parameters() if (m := blocks.match(n))})
    rank = {stage: i + 1 for i, stage in enumerate(stages)}
    head = len(stages) + 1

    def depth(name: str) -> int:
        if stem.match(name):
            return 0
        found = blocks.match(name)
        return rank[int(found.group(1))] if found else head

    return depth, head


def param_groups(model: nn.Module, cfg: TrainConfig) -> List[dict]:
    """Split parameters by weight decay (norm layers may get their own) and by learning rate:
    the backbone scaled by ``backbone_lr_scale`` (discriminative fine-tuning) and, with
    ``layer_decay``, each depth by layer_decay ** (head depth - its depth) (timm's layer-wise decay,
    by stage: the classifier at lr, the last stage at lr x decay, ..., the stem at lr x decay^(K+1))."""
    norm_types = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
    norm_params = {id(p) for m in model.modules() if isinstance(m, norm_types) for p in m.parameters(recurse=False)}
    groups: Dict[Tuple[float, float], List[nn.Parameter]] = {}
    head = getattr(model, "classifier_name", "fc") + "."
    depth, top = layer_ids(model) if cfg.layer_decay is not None else (lambda name: 0, 0)
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_norm = id(p) in norm_params
        wd = cfg.norm_weight_decay if (is_norm and cfg.norm_weight_decay is not None) else cfg.weight_decay
        scale = 1.0 if name.startswith(head) else cfg.backbone_lr_scale
        if cfg.layer_decay is not None:
            scale *= cfg.layer_decay ** (top - depth(name))
        groups.setdefault((wd, scale), []).append(p)
    return [{"params": ps, "weight_decay": wd, "lr": cfg.lr * scale} for (wd, scale), ps in groups.items()]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    if not groups:
        raise InvalidOption("no trainable parameters (is everything frozen?)")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if cfg.optimizer == "lamb":
        # LAMB (You et al. 2020) is not in torch.optim; timm's is the one ResNet strikes back trained with.
        try:
            from timm.optim import Lamb
        except ImportError:
            raise MissingDependency(
                "optimizer lamb needs timm's implementation: pip install 'resnetkit[rsb]'", field="optimizer"
            ) from None
        return Lamb(groups, lr=cfg.lr)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def ema_decay_per_update(cfg: TrainConfig) -> float:
    """torchvision's reference adjustment: ``ema_decay`` is stated per image-epoch unit, so the
    decay applied every ``ema_steps`` steps is 1 - (1 - decay) * global_batch * ema_steps / epochs."""
    adjust = cfg.batch_size * cfg.ema_steps / cfg.epochs
    alpha = min(1.0, (1.0 - cfg.ema_decay) * adjust)
    return 1.0 - alpha


def make_ema(model: nn.Module, cfg: TrainConfig):
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay_per_update(cfg)), use_buffers=True)


def make_mixer(cfg: TrainConfig, num_classes: int) -> Optional[Callable]:
    """MixUp / CutMix (one of them at random per batch when both are on), from torchvision."""
    if cfg.mixup_alpha <= 0 and cfg.cutmix_alpha <= 0:
        return None
    from torchvision.transforms import v2 as T

    ops = []
    if cfg.mixup_alpha > 0:
        ops.append(T.MixUp(alpha=cfg.mixup_alpha, num_classes=num_classes))
    if cfg.cutmix_alpha > 0:
        ops.append(T.CutMix(alpha=cfg.cutmix_alpha, num_classes=num_classes))
    return ops[0] if len(ops) == 1 else T.RandomChoice(ops)


def set_crop_size(dataset: Any, size: int) -> None:
    """Set the RandomResizedCrop of a folder data set's training transform to ``size`` (progressive
    resizing); the DataLoader's workers take it when they start, at the next epoch."""
    from torchvision.transforms import v2 as T

    crops = [t for t in getattr(dataset.transform, "transforms", []) if isinstance(t, T.RandomResizedCrop)]
    if not crops:
        raise InvalidOption(
            "train_size_schedule needs a RandomResizedCrop in the training transform", field="train_size_schedule"
        )
    for crop in crops:
        crop.size = (size, size)


def labels_file(cfg: TrainConfig) -> Path:
    """The multi-label CSV of a run: --labels, else labels.csv in the data folder."""
    assert cfg.data is not None
    return Path(cfg.labels) if cfg.labels else Path(cfg.data) / "labels.csv"


def load_data(cfg: TrainConfig) -> Split:
    multilabel = cfg.task == "multilabel"
    if cfg.data is None:
        if multilabel:
            from ..data.multilabel import load_digits_grid

            return load_digits_grid(image_size=cfg.image_size)
        return load_digits(image_size=cfg.image_size)
    from ..data.cifar import load_cifar, parse
    from ..data.shards import is_shards

    cifar = parse(cfg.data)
    if cifar is not None:
        return load_cifar(*cifar)
    preprocess = Preprocess(cfg.eval_resize, cfg.eval_crop, cfg.interpolation)
    if is_shards(cfg.data):
        return load_shard_data(cfg, preprocess)
    recipe = FolderRecipe(
        train_transform(
            cfg.train_crop, cfg.interpolation, auto_augment=cfg.auto_augment, random_erase=cfg.random_erase
        ),
        preprocess.transform(),
        preprocess,
        val_split=cfg.val_split,
        seed=cfg.seed,
        train_short_side=cfg.train_crop,
    )
    if multilabel:
        from ..data.multilabel import load_multilabel_folder

        return load_multilabel_folder(Path(cfg.data), labels_file(cfg), recipe)
    return load_folder(Path(cfg.data), recipe)


def load_shard_data(cfg: TrainConfig, preprocess: Preprocess) -> Split:
    """WebDataset shards: the training stream (its class names from --classes or its labels) and the
    validation stream over --val-data, with the same classes."""
    from ..data.shards import load_shards

    assert cfg.data is not None and cfg.val_data is not None
    augment = train_transform(
        cfg.train_crop, cfg.interpolation, auto_augment=cfg.auto_augment, random_erase=cfg.random_erase
    )
    train, classes = load_shards(cfg.data, cfg.classes, augment, cfg.seed, cfg.train_crop, buffer=cfg.shuffle_buffer)
    val, _ = load_shards(
        cfg.val_data, None, preprocess.transform(), cfg.seed, preprocess.resize_size, train=False,
        names=(classes, train.mapping),
    )  # fmt: skip
    return Split(train=train, val=val, classes=classes, preprocess=preprocess, source=cfg.data)  # type: ignore[arg-type]


def effective_amp(cfg: TrainConfig, device: torch.device, log: Callable[[str], None]) -> str:
    """The mixed precision the run uses: ``cfg.amp``, except bf16 on CPU below 32 px, which is wrong:
    PyTorch's CPU bf16 convolution backward leaves the weight gradient of a strided 3x3 conv
    uninitialised for taps that only see padding, which happens once the last stage gets a 1-pixel
    input, and the weights fill with garbage. fp32 is correct there."""
    from ..data.cifar import SIZE, parse

    input_size = cfg.image_size if cfg.data is None else SIZE if parse(cfg.data) else cfg.train_crop
    scheduled = size_schedule(cfg)
    if scheduled is not None:
        input_size = min(input_size, *scheduled)
    if cfg.amp == "bf16" and device.type == "cpu" and input_size < MIN_BF16_CPU_INPUT:
        log(
            f"note: input {input_size}px < {MIN_BF16_CPU_INPUT}px: training in fp32 "
            "(bf16 convolution gradients on CPU are wrong at 1-pixel feature maps)"
        )
        return "none"
    return cfg.amp


MIN_SCHEDULED_STEPS = 60  # measured on digits (23 steps an epoch): 1 epoch 10.8 %, 2: 15.6 %, 3: 93.1 % top-1


def warn_short_run(cfg: TrainConfig, steps_per_epoch: int, log: Callable[[str], None]) -> None:
    """One line when a run is too short for its schedule to train anything: at the recipe's peak lr,
    BatchNorm's running statistics have not caught up with weights that move this fast, and the model
    evaluates at chance although its training accuracy rises."""
    total = steps_per_epoch * cfg.epochs
    if cfg.schedule == "constant" or total >= MIN_SCHEDULED_STEPS:
        return
    need = -(-MIN_SCHEDULED_STEPS // max(1, steps_per_epoch))
    log(
        f"warning: {cfg.epochs} epoch(s) of {steps_per_epoch} steps is {total} optimizer steps, too few for the "
        f"{cfg.schedule} schedule at lr {cfg.lr:g} to settle: expect validation accuracy near chance; train "
        f"--epochs {need} or more (recipe {cfg.recipe}: {RECIPES[cfg.recipe].get('epochs', TrainConfig.epochs)})"
    )


def _ignore_sigint_in_worker(_: int) -> None:
    # Ctrl-C goes to the whole process group; the main process stops cleanly between steps, so
    # loader workers must not die from it first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclass
class Components:
    """Everything a run trains with. ``state_dict()`` is what a checkpoint keeps of them."""

    data: Split
    model: nn.Module
    ddp_model: nn.Module  # the model, wrapped by DDP under torchrun
    step_model: Any  # what a training step calls (compiled with --compile)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    ema: Optional[Any]  # torch.optim.swa_utils.AveragedModel
    scaler: Optional[Any]
    mixer: Optional[Callable]
    order: Any  # a BatchOrder, or the ShardStream itself (set_epoch, num_batches)
    loader: Optional[Any]  # a DataLoader for folder data; None when the data is in memory
    amp: str
    batch_norm: bool
    teacher: Optional[nn.Module] = None  # distillation: eval mode, never trained, never saved

    @property
    def num_classes(self) -> int:
        return len(self.data.classes)

    @property
    def steps_per_epoch(self) -> int:
        return self.order.num_batches()

    def state_dict(self) -> Dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
        }

    def load_state_dict(self, d: Dict[str, Any]) -> None:
        self.model.load_state_dict(d["model"])
        self.optimizer.load_state_dict(d["optimizer"])
        if d.get("scheduler") is not None:
            self.scheduler.load_state_dict(d["scheduler"])
        if self.ema is not None and d.get("ema") is not None:
            self.ema.load_state_dict(d["ema"])
        if self.scaler is not None and d.get("scaler") is not None:
            self.scaler.load_state_dict(d["scaler"])


def _check_batch(cfg: TrainConfig, info: D.DistInfo, batch_norm: bool) -> None:
    per_rank = cfg.batch_size // info.world
    if cfg.accum_steps > 1 and per_rank // cfg.accum_steps < (2 if batch_norm else 1):
        raise InvalidOption(
            f"accum_steps {cfg.accum_steps} splits {per_rank} image(s) per process into micro-batches of "
            f"{per_rank // cfg.accum_steps}; "
            + ("BatchNorm needs at least 2 per micro-batch" if batch_norm else "each needs at least 1")
            + f": use accum_steps <= {max(1, per_rank // (2 if batch_norm else 1))} or a larger batch_size",
            field="accum_steps",
            related=("batch_size",),
        )
    if cfg.batch_size % info.world:
        raise InvalidOption(
            f"batch_size {cfg.batch_size} is not divisible by the {info.world} processes (it is the global "
            f"batch, split evenly); pick a multiple of {info.world}",
            field="batch_size",
        )
    if batch_norm and cfg.batch_size // info.world < 2:
        raise InvalidOption(
            f"batch_size {cfg.batch_size} gives {cfg.batch_size // info.world} image(s) per process, but "
            f"BatchNorm needs at least 2 to compute batch statistics; use batch_size >= {2 * info.world}, "
            "or norm group / frozen for tiny batches",
            field="batch_size",
            related=("norm",),
        )


def _distribute(model: nn.Module, cfg: TrainConfig, info: D.DistInfo, log: Callable[[str], None]) -> nn.Module:
    if cfg.sync_bn and info.enabled:
        if info.device.type == "cpu":
            log("note: SyncBatchNorm needs a GPU in PyTorch; using per-process BatchNorm on CPU")
        else:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def _batch_order(cfg: TrainConfig, data: Split, info: D.DistInfo) -> Any:
    """The run's batch order: a BatchOrder over the data set's indices, or a shard stream itself."""
    from ..data.shards import ShardStream

    if isinstance(data.train, ShardStream):
        return data.train.arrange(cfg.batch_size, info.rank, info.world, cfg.workers)
    return BatchOrder(
        len(data.train), cfg.batch_size, seed=cfg.seed, shuffle=True, drop_last=True,
        rank=info.rank, world=info.world, repeats=cfg.repeated_aug,
    )  # fmt: skip


def _loader(cfg: TrainConfig, data: Split, order: Any, info: D.DistInfo):
    """The DataLoader of data on disk. A stream makes its own batches, in its order; its workers are
    started anew each epoch (they take the epoch and the batch to start at), as they are when a size
    schedule changes the crop between epochs."""
    from torch.utils.data import DataLoader

    streamed = order is data.train
    batching: Dict[str, Any] = dict(batch_size=None) if streamed else dict(batch_sampler=order, collate_fn=collate)
    return DataLoader(
        data.train, **batching, num_workers=cfg.workers, pin_memory=info.device.type == "cuda",
        persistent_workers=cfg.workers > 0 and not cfg.train_size_schedule and not streamed,
        worker_init_fn=_ignore_sigint_in_worker if cfg.workers > 0 else None,
    )  # fmt: skip


def build_components(cfg: TrainConfig, info: D.DistInfo, log: Callable[[str], None]) -> Components:
    """The data, model, optimizer, schedule, EMA, scaler, mixer, batch order and loader of ``cfg``."""
    data = load_data(cfg)
    model = build_model(cfg, len(data.classes), progress=info.is_main)
    batch_norm = has_batch_norm(model)
    _check_batch(cfg, info, batch_norm)
    model.to(info.device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    model = _distribute(model, cfg, info, log)
    optimizer = make_optimizer(model, cfg)
    ddp_model: nn.Module = model
    if info.enabled:
        ids = [info.device.index] if info.device.type == "cuda" else None
        ddp_model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    order = _batch_order(cfg, data, info)
    warn_short_run(cfg, order.num_batches(), log)
    scheduler = make_scheduler(
        optimizer,
        order.num_batches(),
        cfg.epochs,
        cfg.schedule,
        cfg.warmup_epochs,
        cfg.step_size,
        cfg.gamma,
        milestones(cfg),
    )
    return Components(
        data=data,
        model=model,
        ddp_model=ddp_model,
        step_model=torch.compile(ddp_model) if cfg.compile else ddp_model,
        optimizer=optimizer,
        scheduler=scheduler,
        ema=make_ema(model, cfg) if cfg.ema else None,
        scaler=torch.amp.GradScaler("cuda") if (cfg.amp == "fp16" and info.device.type == "cuda") else None,
        mixer=make_mixer(cfg, len(data.classes)),
        order=order,
        loader=None if data.in_memory else _loader(cfg, data, order, info),
        amp=effective_amp(cfg, info.device, log),
        batch_norm=batch_norm,
        teacher=load_teacher(cfg, data, info, progress=info.is_main),
    )
