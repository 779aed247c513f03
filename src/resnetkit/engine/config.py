"""Training configuration and the recipe presets (every value can be overridden by a flag)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Dict, Optional

from ..errors import InvalidOption


@dataclass
class TrainConfig:
    # model
    arch: str = "resnet18"
    weights: Optional[str] = None  # fine-tune from a catalog name, file, run directory or Hub id
    freeze_backbone: bool = False
    backbone_lr_scale: float = 1.0  # discriminative learning rate: backbone lr = lr * this
    norm: str = "batch"  # batch | group | frozen
    sync_bn: bool = False
    zero_init_residual: bool = False
    # data
    data: Optional[str] = None  # None: the bundled sklearn digits
    val_split: Optional[float] = None
    image_size: int = 32  # digits only
    pad_crop: int = 0  # digits only: random translation by up to this many pixels
    train_crop: int = 224
    eval_resize: int = 256
    eval_crop: int = 224
    interpolation: str = "bilinear"
    auto_augment: str = "none"
    random_erase: float = 0.0
    repeated_aug: int = 1
    workers: int = 2
    # optimisation
    epochs: int = 20
    batch_size: int = 64  # global, across all processes
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    norm_weight_decay: Optional[float] = None  # None: same as weight_decay
    schedule: str = "step"  # step | cosine | onecycle | constant
    warmup_epochs: float = 0.0
    step_size: int = 30
    gamma: float = 0.1
    label_smoothing: float = 0.0
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
}

CHOICES = {
    "optimizer": ("sgd", "adamw"),
    "schedule": ("step", "cosine", "onecycle", "constant"),
    "amp": ("bf16", "fp16", "none"),
    "norm": ("batch", "group", "frozen"),
    "auto_augment": ("none", "ta_wide", "randaugment", "autoaugment"),
    "interpolation": ("bilinear", "bicubic", "nearest"),
    "recipe": tuple(RECIPES),
}


def make_config(recipe: str = "digits", **overrides: Any) -> TrainConfig:
    """Defaults, then the recipe's values, then explicit overrides (``None`` means not given)."""
    if recipe not in RECIPES:
        raise InvalidOption(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}", field="recipe")
    values = dict(RECIPES[recipe])
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["recipe"] = recipe
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
        ),
        1,
    ),
    **dict.fromkeys(("workers", "save_every_steps", "max_steps", "pad_crop", "seed"), 0),
}


def validate(cfg: TrainConfig) -> None:
    """Every value in its valid range, or InvalidOption naming the flag and the range."""
    for key, allowed in CHOICES.items():
        if getattr(cfg, key) not in allowed:
            raise InvalidOption(f"{key} {getattr(cfg, key)!r} is not one of {', '.join(allowed)}", field=key)
    for key, low in INTEGER_MINIMUMS.items():
        value = getattr(cfg, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidOption(f"{key} must be an integer >= {low}, got {value!r}", field=key)
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
