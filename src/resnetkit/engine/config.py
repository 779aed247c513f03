"""Training configuration and the recipe presets (every value can be overridden by a flag)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Optional


@dataclass
class TrainConfig:
    # model
    arch: str = "resnet18"
    weights: Optional[str] = None  # fine-tune from a catalog name, file or run directory
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
    # speed
    amp: str = "bf16"  # bf16 | fp16 (GPU) | none
    channels_last: bool = True
    compile: bool = False
    # bookkeeping
    seed: int = 0
    deterministic: bool = False
    save_every_steps: int = 0  # 0: checkpoint at the end of each epoch only
    out: Optional[str] = None
    quiet: bool = False
    tensorboard: bool = False
    recipe: str = "digits"

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}")
        return cls(**d)


RECIPES: Dict[str, Dict[str, Any]] = {
    # The offline default: resnet18 on sklearn's digits at 32x32.
    "digits": dict(
        arch="resnet18", epochs=20, batch_size=64, optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True,
        weight_decay=5e-4, schedule="onecycle", warmup_epochs=0, label_smoothing=0.1, amp="bf16",
        channels_last=True, pad_crop=2,
    ),
    # torchvision's original ImageNet recipe.
    "tv-v1": dict(
        epochs=90, batch_size=256, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4, schedule="step",
        step_size=30, gamma=0.1, train_crop=224, eval_resize=256, eval_crop=224, auto_augment="none",
    ),
    # torchvision's "new training recipe" (ResNet-50 at 80.858 % top-1).
    "tv-v2": dict(
        epochs=600, batch_size=1024, optimizer="sgd", lr=0.5, momentum=0.9, weight_decay=2e-5,
        norm_weight_decay=0.0, schedule="cosine", warmup_epochs=5, label_smoothing=0.1, mixup_alpha=0.2,
        cutmix_alpha=1.0, auto_augment="ta_wide", random_erase=0.1, train_crop=176, eval_resize=232,
        eval_crop=224, ema=True, ema_decay=0.99998, repeated_aug=4,
    ),
}

CHOICES = {
    "optimizer": ("sgd", "adamw"),
    "schedule": ("step", "cosine", "onecycle", "constant"),
    "amp": ("bf16", "fp16", "none"),
    "norm": ("batch", "group", "frozen"),
    "auto_augment": ("none", "ta_wide", "randaugment", "autoaugment"),
    "recipe": tuple(RECIPES),
}


def make_config(recipe: str = "digits", **overrides: Any) -> TrainConfig:
    """Defaults, then the recipe's values, then explicit overrides (``None`` means not given)."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    values = dict(RECIPES[recipe])
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["recipe"] = recipe
    cfg = TrainConfig.from_dict(values)
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    for key, allowed in CHOICES.items():
        if getattr(cfg, key) not in allowed:
            raise ValueError(f"--{key.replace('_', '-')} {getattr(cfg, key)!r} is not one of {', '.join(allowed)}")
    positive = ("epochs", "batch_size", "lr", "image_size", "train_crop", "eval_resize", "eval_crop", "repeated_aug")
    for key in positive:
        if getattr(cfg, key) <= 0:
            raise ValueError(f"--{key.replace('_', '-')} must be > 0, got {getattr(cfg, key)}")
    if not 0 <= cfg.label_smoothing < 1:
        raise ValueError(f"--label-smoothing must be in [0, 1), got {cfg.label_smoothing}")
    if cfg.warmup_epochs < 0 or (cfg.warmup_epochs > 0 and cfg.warmup_epochs >= cfg.epochs):
        raise ValueError(
            f"--warmup-epochs {cfg.warmup_epochs} must be >= 0 and less than --epochs {cfg.epochs}; lower it"
        )
    if cfg.workers < 0:
        raise ValueError(f"--workers must be >= 0, got {cfg.workers}")
    if not 0 < cfg.backbone_lr_scale <= 1:
        raise ValueError(f"--backbone-lr-scale must be in (0, 1], got {cfg.backbone_lr_scale}")

