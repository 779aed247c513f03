"""Training configuration and the recipe presets (every value can be overridden by a flag)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from ..errors import InvalidOption


@dataclass
class TrainConfig:
    # model
    arch: str = "resnet18"
    weights: Optional[str] = None  # fine-tune from a catalog name, file, run directory or Hub id
    freeze_backbone: bool = False
    backbone_lr_scale: float = 1.0  # discriminative learning rate: backbone lr = lr * this
    layer_decay: Optional[float] = None  # layer-wise lr decay: stage k of K gets lr * decay ** (K + 1 - k)
    norm: str = "batch"  # batch | group | frozen
    sync_bn: bool = False
    zero_init_residual: bool = False
    drop_path_rate: float = 0.0  # stochastic depth: the last block's drop rate (linear from 0 over the blocks)
    teacher: Optional[str] = None  # knowledge distillation from these weights (any source --weights takes)
    kd_alpha: float = 0.5  # the loss: (1 - alpha) x the label loss + alpha x the distillation loss
    kd_temperature: float = 4.0  # softmax temperature of the distillation loss (scaled by T^2, Hinton et al.)
    # data
    task: str = "multiclass"  # multiclass (one label an image) | multilabel (any number: BCE, mAP, thresholds)
    data: Optional[str] = None  # None: the bundled sklearn digits (multilabel: the digits grid)
    labels: Optional[str] = None  # multilabel: the image,labels CSV (default DATA/labels.csv)
    val_data: Optional[str] = None  # WebDataset shards: the validation shards ('DIR/val-{000..009}.tar')
    classes: Optional[str] = None  # WebDataset shards: class names, one a line (default: from the shards' labels)
    shuffle_buffer: int = 1000  # WebDataset shards: samples each loader worker shuffles among
    val_split: Optional[float] = None
    image_size: int = 32  # digits only
    pad_crop: int = 0  # digits only: random translation by up to this many pixels
    train_crop: int = 224
    train_size_schedule: str = ""  # progressive resizing "START:END": the training size, linear over the epochs
    eval_resize: int = 256
    eval_crop: int = 224
    interpolation: str = "bilinear"
    auto_augment: str = "none"
    random_erase: float = 0.0
    repeated_aug: int = 1
    workers: int = 2
    # optimisation
    epochs: int = 20
    batch_size: int = 64  # global, across all processes: the images of one optimizer step
    accum_steps: int = 1  # each process's share of a batch runs as this many micro-batches (gradients summed)
    optimizer: str = "sgd"  # sgd | adamw | lamb
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    norm_weight_decay: Optional[float] = None  # None: same as weight_decay
    schedule: str = "step"  # step | multistep | cosine | onecycle | constant
    warmup_epochs: float = 0.0
    step_size: int = 30
    gamma: float = 0.1
    milestones: str = ""  # multistep: the epochs at which the lr is multiplied by gamma, "82,123"
    label_smoothing: float = 0.0
    loss: str = "ce"  # ce (softmax cross-entropy) | bce (one-vs-all binary cross-entropy, ResNet strikes back)
    bce_target_threshold: Optional[float] = None  # bce: mixed targets above this become 1, the rest 0
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    clip_grad_norm: Optional[float] = None
    ema: bool = False
    ema_decay: float = 0.9999
    ema_steps: int = 32  # EMA update interval in optimizer steps (torchvision's reference)
    # speed
    amp: str = "bf16"  # bf16 | fp16 (GPU) | none
    channels_last: bool = True
    compile: bool = False
    # bookkeeping
    seed: int = 0
    deterministic: bool = False
    save_every_steps: int = 0  # 0: checkpoint at the end of each epoch only
    max_steps: int = 0  # stop (checkpoint saved, resumable) after this many optimizer steps in total; 0: no limit
    out: Optional[str] = None
    exist_ok: bool = False
    quiet: bool = False
    tensorboard: bool = False
    recipe: str = "digits"

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise InvalidOption(f"unknown config keys {sorted(unknown)}", field=sorted(unknown)[0])
        return cls(**d)


# What the three ResNet strikes back procedures share (their recipes below add what differs).
RSB_COMMON: Dict[str, Any] = dict(
    arch="resnet50", batch_size=2048, optimizer="lamb", norm_weight_decay=0.0, schedule="cosine", warmup_epochs=5,
    loss="bce", bce_target_threshold=0.2, cutmix_alpha=1.0, eval_resize=235, eval_crop=224, interpolation="bicubic",
)  # fmt: skip

RECIPES: Dict[str, Dict[str, Any]] = {
    # The offline default: resnet18 on sklearn's digits at 32x32.
    "digits": dict(
        arch="resnet18",
        epochs=20,
        batch_size=64,
        optimizer="sgd",
        lr=0.1,
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        schedule="onecycle",
        warmup_epochs=0,
        label_smoothing=0.1,
        amp="bf16",
        channels_last=True,
        pad_crop=2,
    ),
    # torchvision's original ImageNet recipe.
    "tv-v1": dict(
        epochs=90,
        batch_size=256,
        optimizer="sgd",
        lr=0.1,
        momentum=0.9,
        weight_decay=1e-4,
        schedule="step",
        step_size=30,
        gamma=0.1,
        train_crop=224,
        eval_resize=256,
        eval_crop=224,
        auto_augment="none",
    ),
    # torchvision's "new training recipe" (ResNet-50 at 80.858 % top-1).
    "tv-v2": dict(
        epochs=600,
        batch_size=1024,
        optimizer="sgd",
        lr=0.5,
        momentum=0.9,
        weight_decay=2e-5,
        norm_weight_decay=0.0,
        schedule="cosine",
        warmup_epochs=5,
        label_smoothing=0.1,
        mixup_alpha=0.2,
        cutmix_alpha=1.0,
        auto_augment="ta_wide",
        random_erase=0.1,
        train_crop=176,
        eval_resize=232,
        eval_crop=224,
        ema=True,
        ema_decay=0.99998,
        repeated_aug=4,
    ),
    # The paper's CIFAR-10 recipe for its CIFAR ResNets (He et al. 2016, "Deep Residual Learning for
    # Image Recognition", section 4.2): SGD lr 0.1, momentum 0.9, weight decay 1e-4, batch 128, the lr
    # divided by 10 at 32k and 48k iterations, stopped at 64k (~ 164 epochs of 50k images, steps at
    # 82 and 123); 4-pixel zero padding, a random 32 x 32 crop and a horizontal flip
    # (data/cifar.py). The paper trains on 45k images and validates on 5k; resnetkit trains on the
    # 50k and reports the 10k test images, as the paper's table does. Its test errors: resnet20
    # 8.75 %, resnet32 7.51 %, resnet44 7.17 %, resnet56 6.97 %, resnet110 6.43 % (best of 5 runs; the
    # mean 6.61 +- 0.16). Not run here (no GPU, no CIFAR download): the target, not a claim.
    "cifar": dict(
        arch="resnet20",
        epochs=164,
        batch_size=128,
        optimizer="sgd",
        lr=0.1,
        momentum=0.9,
        nesterov=False,
        weight_decay=1e-4,
        schedule="multistep",
        milestones="82,123",
        gamma=0.1,
        pad_crop=4,
        label_smoothing=0.0,
    ),
    # ResNet strikes back (Wightman, Touvron, Jegou 2021, "ResNet strikes back: An improved training
    # procedure in timm", Table 1; timm's documentation of its resnet50.a1/a2/a3_in1k weights):
    # ResNet-50, LAMB, BCE loss with targets thresholded at 0.2, cosine schedule with 5 warmup epochs,
    # batch 2048, no weight decay on norm layers, RandAugment (timm's "rand-mM-mstd0.5-inc1"),
    # MixUp/CutMix, stochastic depth, test at 224 with crop ratio 0.95 (resize 235, bicubic).
    # Their published ImageNet top-1: A1 80.4 %, A2 79.8 %, A3 78.1 %.
    "rsb-a1": dict(
        RSB_COMMON, epochs=600, lr=5e-3, weight_decay=0.01, label_smoothing=0.1, mixup_alpha=0.2,
        auto_augment="rand-m7-mstd0.5-inc1", repeated_aug=3, drop_path_rate=0.05, train_crop=224,
    ),
    "rsb-a2": dict(
        RSB_COMMON, epochs=300, lr=5e-3, weight_decay=0.02, label_smoothing=0.0, mixup_alpha=0.1,
        auto_augment="rand-m7-mstd0.5-inc1", repeated_aug=3, drop_path_rate=0.05, train_crop=224,
    ),
    "rsb-a3": dict(
        RSB_COMMON, epochs=100, lr=8e-3, weight_decay=0.02, label_smoothing=0.0, mixup_alpha=0.1,
        auto_augment="rand-m6-mstd0.5-inc1", repeated_aug=1, drop_path_rate=0.0, train_crop=160,
    ),
}  # fmt: skip

# Augmentation policies: torchvision's, or a timm RandAugment configuration string ("rand-m9-mstd0.5").
AUTO_AUGMENT = ("none", "ta_wide", "randaugment", "autoaugment", "rand-M[-mstdS][-incI]")

CHOICES = {
    "task": ("multiclass", "multilabel"),
    "optimizer": ("sgd", "adamw", "lamb"),
    "loss": ("ce", "bce"),
    "schedule": ("step", "multistep", "cosine", "onecycle", "constant"),
    "amp": ("bf16", "fp16", "none"),
    "norm": ("batch", "group", "frozen"),
    "interpolation": ("bilinear", "bicubic", "nearest"),
    "recipe": tuple(RECIPES),
}


def size_schedule(cfg: TrainConfig) -> Optional[Tuple[int, int]]:
    """(start, end) of ``train_size_schedule`` (InvalidOption naming the flag when it is not two sizes)."""
    text = cfg.train_size_schedule.strip()
    if not text:
        return None
    parts = text.split(":")
    try:
        start, end = (int(p) for p in parts) if len(parts) == 2 else (0, 0)
    except ValueError:
        start = end = 0
    if min(start, end) < 8:
        raise InvalidOption(
            f"train_size_schedule {cfg.train_size_schedule!r} is not START:END, two sizes >= 8 pixels (e.g. 160:192)",
            field="train_size_schedule",
        )
    return start, end


def train_size(cfg: TrainConfig, epoch: int) -> Optional[int]:
    """The training image size of ``epoch`` (0-based) under the progressive-resizing schedule: linear
    from START at the first epoch to END at the last, rounded to whole pixels; None without one."""
    ends = size_schedule(cfg)
    if ends is None:
        return None
    start, end = ends
    t = min(1.0, epoch / max(1, cfg.epochs - 1))
    return int(round(start + (end - start) * t))


def milestones(cfg: TrainConfig) -> Tuple[int, ...]:
    """The multistep schedule's epochs, ascending (InvalidOption naming the flag otherwise)."""
    if not cfg.milestones.strip():
        return ()
    try:
        epochs = tuple(int(part) for part in cfg.milestones.split(","))
    except ValueError:
        raise InvalidOption(
            f"milestones {cfg.milestones!r} is not a list of epochs; write them comma-separated, e.g. 82,123",
            field="milestones",
        ) from None
    if any(e < 1 for e in epochs) or list(epochs) != sorted(set(epochs)):
        raise InvalidOption(
            f"milestones {cfg.milestones!r} must be increasing epochs >= 1, e.g. 82,123", field="milestones"
        )
    return epochs


def make_config(recipe: str = "digits", **overrides: Any) -> TrainConfig:
    """Defaults, then the recipe's values, then explicit overrides (``None`` means not given)."""
    if recipe not in RECIPES:
        raise InvalidOption(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}", field="recipe")
    values = dict(RECIPES[recipe])
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["recipe"] = recipe
    if values.get("task") == "multilabel" and overrides.get("loss") is None:
        values["loss"] = "bce"  # multi-label is one binary decision per class
    data = values.get("data")
    if recipe == "cifar" and not (isinstance(data, str) and data.startswith(("cifar10:", "cifar100:"))):
        raise InvalidOption(
            "the cifar recipe trains on CIFAR: pass --data cifar10:DIR or cifar100:DIR",
            field="data",
            related=("recipe",),
        )
    if recipe.startswith("rsb-") and data is None:
        raise InvalidOption(
            f"the {recipe} recipe is an ImageNet recipe (batch 2048): pass --data DIR",
            field="data",
            related=("recipe",),
        )
    return TrainConfig.from_dict(values)


def effective_defaults(recipe: str) -> Dict[str, Any]:
    """The value every setting takes under ``recipe`` when no flag is given (for --help)."""
    base = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    base.update(RECIPES[recipe])
    return base


def _check_range(
    cfg: TrainConfig, key: str, low: float, high: float, low_open: bool = False, high_open: bool = False, hint: str = ""
) -> None:
    value = getattr(cfg, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise InvalidOption(f"{key} must be a number, got {value!r}", field=key)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        upper = "inf" if high == math.inf else f"{high:g}"
        raise InvalidOption(f"{key} must be in {lo}{low:g}, {upper}{hi}, got {value!r}{hint}", field=key)


INF = math.inf
# Integer settings and their smallest valid value.
INTEGER_MINIMUMS = {
    **dict.fromkeys(
        (
            "epochs",
            "batch_size",
            "image_size",
            "train_crop",
            "eval_resize",
            "eval_crop",
            "repeated_aug",
            "step_size",
            "ema_steps",
            "accum_steps",
            "shuffle_buffer",
        ),
        1,
    ),
    **dict.fromkeys(("workers", "save_every_steps", "max_steps", "pad_crop", "seed"), 0),
}


def _check_drop_in_options(cfg: TrainConfig) -> None:
    """The settings the CIFAR, ResNet strikes back and fine-tuning extras add: timm's RandAugment
    strings, the BCE threshold, layer-wise decay, the multistep milestones, the size schedule."""
    if cfg.auto_augment not in AUTO_AUGMENT[:-1] and not cfg.auto_augment.startswith("rand-m"):
        raise InvalidOption(
            f"auto_augment {cfg.auto_augment!r} is not one of {', '.join(AUTO_AUGMENT)} (timm's RandAugment string, "
            "e.g. rand-m7-mstd0.5-inc1)",
            field="auto_augment",
        )
    if cfg.bce_target_threshold is not None:
        _check_range(cfg, "bce_target_threshold", 0, 1, high_open=True)
    if cfg.layer_decay is not None:
        _check_range(cfg, "layer_decay", 0, 1, low_open=True)
    size_schedule(cfg)
    if cfg.schedule == "multistep" and not milestones(cfg):
        raise InvalidOption(
            "schedule multistep needs milestones: the epochs to multiply the lr by gamma at, e.g. 82,123",
            field="milestones",
            related=("schedule",),
        )


def _check_shards(cfg: TrainConfig) -> None:
    """What WebDataset shards need (validation shards) and cannot do (repeated augmentation, a held-out
    share, multi-label CSVs); shard-only settings without shards."""
    from ..data.shards import is_shards

    if not is_shards(cfg.data):
        for key in ("val_data", "classes"):
            if getattr(cfg, key) is not None:
                raise InvalidOption(
                    f"{key} belongs to WebDataset shards: pass --data 'DIR/train-{{000..099}}.tar'", field=key,
                    related=("data",),
                )  # fmt: skip
        return
    problems = [
        (cfg.val_data is None, "val_data", "shards need --val-data 'DIR/val-{000..009}.tar' (validation shards)"),
        (not is_shards(cfg.val_data), "val_data", "--val-data must name .tar shards too"),
        (cfg.repeated_aug > 1, "repeated_aug", "repeated augmentation needs random access: use --repeated-aug 1"),
        (cfg.val_split is not None, "val_split", "shards are not split: give the validation shards with --val-data"),
        (cfg.task == "multilabel", "task", "multi-label training reads a labels CSV over a folder, not shards"),
    ]  # fmt: skip
    for wrong, key, message in problems:
        if wrong:
            raise InvalidOption(f"WebDataset shards: {message}", field=key, related=("data",))


def _check_task(cfg: TrainConfig) -> None:
    """What a multi-label run needs: BCE, a labels file only with it, image-folder data, no softmax teacher."""
    if cfg.task != "multilabel":
        if cfg.labels is not None:
            raise InvalidOption(
                "labels is the multi-label CSV: add --task multilabel", field="labels", related=("task",)
            )
        return
    problems = [
        (cfg.loss != "bce", "loss", "a multi-label model learns one binary decision per class: use --loss bce"),
        (cfg.data is not None and cfg.data.startswith(("cifar10:", "cifar100:")), "data",
         "CIFAR has one label an image: train it with --task multiclass"),
        (cfg.teacher is not None, "teacher", "distillation matches softmax outputs, which a multi-label model has "
         "not: drop --teacher"),
        (cfg.labels is not None and cfg.data is None, "labels", "--labels names the images of --data DIR: add it"),
    ]  # fmt: skip
    for wrong, field, message in problems:
        if wrong:
            raise InvalidOption(f"task multilabel: {message}", field=field, related=("task",))


def validate(cfg: TrainConfig) -> None:
    """Every value in its valid range, or InvalidOption naming the flag and the range."""
    for key, allowed in CHOICES.items():
        if getattr(cfg, key) not in allowed:
            raise InvalidOption(f"{key} {getattr(cfg, key)!r} is not one of {', '.join(allowed)}", field=key)
    for key, low in INTEGER_MINIMUMS.items():
        value = getattr(cfg, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidOption(f"{key} must be an integer >= {low}, got {value!r}", field=key)
    _check_drop_in_options(cfg)
    _check_task(cfg)
    _check_shards(cfg)
    _check_range(cfg, "drop_path_rate", 0, 1, high_open=True)
    _check_range(cfg, "lr", 0, INF, low_open=True)
    _check_range(cfg, "momentum", 0, 1, high_open=True)
    _check_range(cfg, "weight_decay", 0, INF)
    if cfg.norm_weight_decay is not None:
        _check_range(cfg, "norm_weight_decay", 0, INF)
    _check_range(cfg, "gamma", 0, 1, low_open=True)
    _check_range(cfg, "label_smoothing", 0, 1, high_open=True)
    _check_range(cfg, "mixup_alpha", 0, INF, hint=" (0 turns mixup off)")
    _check_range(cfg, "cutmix_alpha", 0, INF, hint=" (0 turns cutmix off)")
    _check_range(cfg, "random_erase", 0, 1, hint=" (a probability)")
    _check_range(cfg, "ema_decay", 0, 1, low_open=True, high_open=True)
    _check_range(cfg, "backbone_lr_scale", 0, 1, low_open=True)
    _check_range(cfg, "warmup_epochs", 0, INF)
    _check_range(cfg, "kd_alpha", 0, 1)
    _check_range(cfg, "kd_temperature", 0, INF, low_open=True)
    if cfg.warmup_epochs > 0 and cfg.warmup_epochs >= cfg.epochs:
        raise InvalidOption(
            f"warmup_epochs {cfg.warmup_epochs} must be less than epochs {cfg.epochs}; lower it",
            field="warmup_epochs",
            related=("epochs",),
        )
    if cfg.clip_grad_norm is not None:
        _check_range(cfg, "clip_grad_norm", 0, INF, low_open=True)
    if cfg.val_split is not None:
        _check_range(cfg, "val_split", 0, 1, low_open=True, high_open=True)
    if cfg.eval_crop > cfg.eval_resize:
        raise InvalidOption(
            f"eval_crop {cfg.eval_crop} is larger than eval_resize {cfg.eval_resize}: the center crop must fit "
            "in the resized image; use a crop <= the resize (e.g. 224 and 256)",
            field="eval_crop",
            related=("eval_resize",),
        )
    if cfg.pad_crop and cfg.data is None and cfg.pad_crop >= cfg.image_size:
        raise InvalidOption(
            f"pad_crop {cfg.pad_crop} must be smaller than image_size {cfg.image_size}",
            field="pad_crop",
            related=("image_size",),
        )
