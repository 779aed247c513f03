"""`resnetkit train`: train or fine-tune; with no --data, resnet18 on the bundled digits set."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any, Dict

from ..engine.config import CHOICES, RECIPES, TrainConfig, effective_defaults

HELP = {
    "arch": "architecture (see `resnetkit models`)",
    "weights": "fine-tune from a catalog name, weights file, run directory or Hub id (the head is replaced)",
    "freeze_backbone": "train the classifier only",
    "backbone_lr_scale": "backbone learning rate = lr x this (discriminative fine-tuning)",
    "layer_decay": "layer-wise lr decay (timm's, by stage): the classifier at --lr, the last stage at lr x D, "
    "the one before at lr x D^2, ..., the stem at lr x D^(stages + 1)",
    "norm": "normalization layer: batch, group (small batches), frozen (fixed statistics)",
    "sync_bn": "SyncBatchNorm across torchrun processes (GPU only)",
    "zero_init_residual": "start every block as the identity (last norm weight 0)",
    "teacher": "knowledge distillation: a teacher's weights (run directory, file, catalog name, Hub id) with "
    "the data's classes; run in eval mode under the run's --amp",
    "kd_alpha": "distillation: loss = (1 - alpha) x label loss + alpha x distillation loss",
    "kd_temperature": "distillation: softmax temperature T (the KL term is scaled by T^2)",
    "task": "multiclass: one label an image; multilabel: any number (BCE, mAP, per-class thresholds); with no "
    "--data, multilabel trains on the bundled digits grid (1-3 digits an image)",
    "data": "ImageFolder root: DIR/train/<class>/* and DIR/val/<class>/*, or DIR/<class>/* with --val-split; "
    "or cifar10:DIR / cifar100:DIR (the python batches of cifar-10-python.tar.gz / cifar-100-python.tar.gz); "
    "WebDataset shards 'DIR/train-{000..099}.tar' (local or http(s); KEY.jpg|png|webp + KEY.cls or KEY.json; "
    "needs resnetkit[shards]); multilabel: the folder --labels' image paths are relative to",
    "val_data": "WebDataset shards: the validation shards, 'DIR/val-{000..009}.tar'",
    "classes": "WebDataset shards: a file of class names, one a line, in label order (default: the labels the "
    "shards use: .cls indices named by number, or the sorted names of KEY.json labels)",
    "shuffle_buffer": "WebDataset shards: samples each loader worker shuffles among",
    "labels": "multilabel: a CSV with the header image,labels (optionally ,split: train or val), the labels "
    "separated by spaces or commas (default DATA/labels.csv)",
    "val_split": "fraction of a single folder held out for validation",
    "image_size": "digits only: image side in pixels",
    "pad_crop": "digits only: pad by N pixels (edge) and randomly crop back, per sample",
    "train_crop": "RandomResizedCrop size for folder data",
    "train_size_schedule": "progressive resizing START:END (e.g. 160:192): the training images' size, linear from "
    "START at the first epoch to END at the last (folder data: the RandomResizedCrop size; the digits and CIFAR: "
    "resized in memory); evaluation stays at the eval size",
    "eval_resize": "evaluation: resize the short side to this",
    "eval_crop": "evaluation: center crop (<= --eval-resize)",
    "interpolation": "resize interpolation",
    "auto_augment": "augmentation policy: none, ta_wide, randaugment, autoaugment (torchvision's) or a timm "
    "RandAugment string such as rand-m7-mstd0.5-inc1 (needs resnetkit[rsb])",
    "random_erase": "random erasing probability",
    "repeated_aug": "repeated augmentation: each sample N times per epoch",
    "workers": "image decoding processes",
    "epochs": "epochs to train",
    "batch_size": "global batch size (split across torchrun processes): the images of one optimizer step",
    "accum_steps": "gradient accumulation: each process runs its share of a batch as N micro-batches (same "
    "batch, lr and schedule; 1/N of the activation memory). Unlike timm's --grad-accum-steps, --batch-size stays "
    "the effective batch",
    "optimizer": "optimizer",
    "lr": "peak learning rate",
    "momentum": "SGD momentum",
    "nesterov": "Nesterov momentum",
    "weight_decay": "weight decay",
    "norm_weight_decay": "weight decay of norm layers (default: --weight-decay)",
    "schedule": "learning-rate schedule",
    "warmup_epochs": "linear warmup epochs",
    "step_size": "step schedule: epochs between decays",
    "gamma": "step and multistep schedules: decay factor",
    "milestones": "multistep schedule: the epochs at which the lr is multiplied by --gamma, comma-separated (82,123)",
    "label_smoothing": "label smoothing",
    "loss": "ce: softmax cross-entropy; bce: binary cross-entropy per class (ResNet strikes back)",
    "bce_target_threshold": "bce: (mixed, smoothed) targets above this count as 1, the rest 0",
    "drop_path_rate": "stochastic depth: the drop rate of the last block, rising linearly from 0 over the blocks",
    "mixup_alpha": "MixUp alpha (0: off)",
    "cutmix_alpha": "CutMix alpha (0: off)",
    "clip_grad_norm": "clip the gradient norm to this",
    "ema": "keep an exponential moving average of the weights",
    "ema_decay": "EMA decay (torchvision's convention, adjusted for batch and update interval)",
    "ema_steps": "EMA update interval in steps",
    "amp": "mixed precision: bf16 (CPU and GPU), fp16 (GPU), none",
    "channels_last": "channels_last memory format",
    "compile": "torch.compile the model",
    "seed": "random seed",
    "deterministic": "deterministic algorithms: a killed and resumed run ends with identical weights",
    "save_every_steps": "also checkpoint every N optimizer steps (mid-epoch resume)",
    "max_steps": "stop after N optimizer steps in total (resumable), 0: no limit",
    "out": "run directory (default runs/<timestamp>-<arch>)",
    "exist_ok": "replace the run in a non-empty --out (its outputs are removed first)",
    "quiet": "no progress bars, one line per epoch",
    "tensorboard": "also log to DIR/tensorboard",
}

# The names the torchvision reference scripts and timm's train.py use, accepted as well.
ALIASES = {
    "arch": ["--model"],
    "data": ["--data-path", "--data-dir"],
    "out": ["--output-dir", "-o"],
    "schedule": ["--lr-scheduler", "--sched"],
    "optimizer": ["--opt"],
    "batch_size": ["-b"],
    "workers": ["-j"],
    "weight_decay": ["--wd"],
    "warmup_epochs": ["--lr-warmup-epochs", "--warmup"],
    "step_size": ["--lr-step-size"],
    "gamma": ["--lr-gamma"],
    "ema": ["--model-ema"],
    "teacher": ["--kd-model"],
    "ema_decay": ["--model-ema-decay"],
    "ema_steps": ["--model-ema-steps"],
    "auto_augment": ["--auto-augment-policy"],
    "random_erase": ["--random-erasing"],
    "repeated_aug": ["--ra-reps"],
    "clip_grad_norm": ["--clip-grad"],
    "drop_path_rate": ["--drop-path"],
    "bce_target_threshold": ["--bce-target-thresh"],
    "train_crop": ["--train-crop-size"],
    "eval_crop": ["--val-crop-size"],
    "eval_resize": ["--val-resize-size"],
    "mixup_alpha": ["--mixup"],
    "cutmix_alpha": ["--cutmix"],
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _default_text(name: str) -> str:
    values = {recipe: effective_defaults(recipe)[name] for recipe in RECIPES}
    if len({repr(v) for v in values.values()}) == 1:
        return f"default {next(iter(values.values()))!r}"
    return "default " + ", ".join(f"{v!r} ({recipe})" for recipe, v in values.items())


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train or fine-tune a model",
        description=__doc__,
        epilog="Every value of a --recipe preset can be overridden by its flag; defaults are shown per recipe. "
        "Aliases from the torchvision reference scripts and timm: "
        + ", ".join(f"{'/'.join(a)} = {_flag(k)}" for k, a in ALIASES.items())
        + ".",
    )
    p.add_argument(
        "--recipe",
        choices=list(RECIPES),
        default="digits",
        help="preset of defaults: digits (resnet18 on the bundled digits), tv-v1, tv-v2 (torchvision's), cifar "
        "(the ResNet paper's CIFAR recipe: resnet20, SGD 0.1, 164 epochs, steps at 82 and 123; --data cifar10:DIR), "
        "rsb-a1, rsb-a2, rsb-a3 (ResNet strikes back: LAMB, BCE, 600/300/100 epochs; needs resnetkit[rsb]) "
        "(default: digits)",
    )
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR where it stopped")
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name == "recipe":
            continue
        kind = hints[f.name]
        names = [_flag(f.name), *ALIASES.get(f.name, [])]
        text = f"{HELP.get(f.name, f.name.replace('_', ' '))} ({_default_text(f.name)})"
        args: Dict[str, Any] = dict(default=None, dest=f.name, help=text)
        if kind is bool:
            p.add_argument(*names, action=argparse.BooleanOptionalAction, **args)
            continue
        base = typing.get_args(kind)[0] if typing.get_origin(kind) is typing.Union else kind
        if f.name in CHOICES:
            args["choices"] = CHOICES[f.name]
        else:
            args["metavar"] = {int: "N", float: "X", str: f.name.split("_")[0].upper()}.get(base, "VALUE")
        p.add_argument(*names, type=base, **args)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from ..engine.config import make_config
    from ..engine.trainer import train

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if f.name != "recipe"}
    if args.resume:
        given = {k: v for k, v in overrides.items() if v is not None}
        result = train(resume=Path(args.resume), resume_overrides=given)
    else:
        cfg = make_config(args.recipe, **overrides)
        result = train(cfg)
    if result.interrupted:
        return 0 if result.stop_reason == "max_steps" else 130
    if result.finished_before:
        print(f"nothing to do: {result.run_dir} had already finished all its epochs", file=sys.stderr)
        return 0
    last = result.history[-1]
    metric = "mAP" if "val_mAP" in last else "acc@1"
    print(
        f"done: val {metric} {last['val_mAP' if metric == 'mAP' else 'val_acc1']:.2f}% "
        f"(best {result.best_acc1:.2f}%) in {result.train_seconds:.1f}s "
        f"of training; {result.skipped_images} unreadable images skipped; outputs in {result.run_dir}/"
    )
    return 0
