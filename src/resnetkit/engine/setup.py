"""What a training run is built from: the model, its parameter groups, optimizer, EMA and batch mixing."""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from ..errors import InvalidOption
from ..models import NORM_LAYERS
from ..weights.factory import get_model, load_weights
from .config import TrainConfig


def build_model(cfg: TrainConfig, num_classes: int, progress: bool) -> nn.Module:
    """The configured architecture, with fine-tuning weights loaded (new head) and the backbone
    frozen if asked."""
    model = get_model(
        cfg.arch, num_classes=num_classes, norm_layer=NORM_LAYERS[cfg.norm], zero_init_residual=cfg.zero_init_residual
    )
    if cfg.weights:
        load_weights(model, cfg.weights, head="reset", progress=progress)
    if cfg.freeze_backbone:
        for name, p in model.named_parameters():
            if not name.startswith("fc."):
                p.requires_grad_(False)
    return model


def has_batch_norm(model: nn.Module) -> bool:
    """True when the model normalises with batch statistics in training (a batch of 1 fails there)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def param_groups(model: nn.Module, cfg: TrainConfig) -> List[dict]:
    """Split parameters by weight decay (norm layers may get their own) and by learning rate
    (backbone scaled by ``backbone_lr_scale`` for discriminative fine-tuning)."""
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
        {"params": ps, "weight_decay": wd, "lr_scale": scale, "lr": cfg.lr * scale}
        for (wd, scale), ps in groups.items()
    ]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    if not groups:
        raise InvalidOption("no trainable parameters (is everything frozen?)")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def ema_decay_per_update(cfg: TrainConfig, world: int) -> float:
    """torchvision's reference adjustment: ``ema_decay`` is stated per image-epoch unit, so the
    decay applied every ``ema_steps`` steps is 1 - (1 - decay) * global_batch * ema_steps / epochs."""
    adjust = cfg.batch_size * cfg.ema_steps / cfg.epochs
    alpha = min(1.0, (1.0 - cfg.ema_decay) * adjust)
    return 1.0 - alpha


def make_ema(model: nn.Module, cfg: TrainConfig, world: int):
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay_per_update(cfg, world)), use_buffers=True)


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
