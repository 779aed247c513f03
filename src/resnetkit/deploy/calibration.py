"""int8 calibration data: images from tensors or image folders, checked (at least 32, (N, C, H, W))."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, Iterable, List, Sequence, Union

import torch

from ..card import Preprocess
from ..data.decode import expand_inputs, load_image
from ..errors import BadFile, ImageDecodeError, InvalidOption

MIN_CALIBRATION_IMAGES = 32


def calibration_batches(
    source: Union[str, Path, torch.Tensor, Sequence[torch.Tensor]],
    preprocess: Preprocess,
    batch_size: int = 16,
    in_chans: int = 3,
) -> List[torch.Tensor]:
    """Calibration images as batches: from a tensor (N, C, H, W), a list of tensors, or a folder of
    image files (decoded with the model's preprocessing; unreadable files are skipped)."""
    if isinstance(source, torch.Tensor):
        images = list(source)
    elif isinstance(source, (list, tuple)) and source and isinstance(source[0], torch.Tensor):
        images = [t for batch in source for t in (batch if batch.dim() == 4 else [batch])]
    else:
        folder = Path(source)  # type: ignore[arg-type]  # the remaining case: a path
        if not folder.exists():
            raise BadFile(f"calibration folder {folder} does not exist")
        transform = preprocess.transform(in_chans)
        images = []
        for path in expand_inputs([str(folder)]):
            try:
                images.append(transform(load_image(path, preprocess.resize_size)))
            except ImageDecodeError:
                continue
    if len(images) < MIN_CALIBRATION_IMAGES:
        raise BadFile(
            f"calibration needs at least {MIN_CALIBRATION_IMAGES} readable images, got {len(images)} from {source}; "
            "add representative images from your data"
        )
    return [torch.stack(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]


def lazy_calibration(
    source: Union[str, Path, torch.Tensor], preprocess: Preprocess, in_chans: int = 3
) -> Callable[[], torch.Tensor]:
    """The calibration images of ``source`` (a folder or a tensor) as a function that decodes them
    when called, with an ``identity`` that names the set without decoding it: a hash of the folder's
    files (path, size, modification time) or of the tensor, and of the preprocessing. The cache of
    optimized models keys int8 models by it, so a warm start neither decodes nor quantizes."""
    h = hashlib.sha256(f"{preprocess!r}|{in_chans}|".encode())
    if isinstance(source, torch.Tensor):
        t = source.detach().cpu().contiguous()
        h.update(f"tensor|{t.dtype}|{tuple(t.shape)}|".encode() + t.reshape(-1).view(torch.uint8).numpy().tobytes())
    else:
        for path in expand_inputs([str(source)]) if Path(source).exists() else []:
            try:
                st = os.stat(path)
            except OSError:
                continue
            h.update(f"{path}|{st.st_size}|{st.st_mtime_ns}\n".encode())

    def images() -> torch.Tensor:
        return torch.cat(calibration_batches(source, preprocess, in_chans=in_chans))

    images.identity = h.hexdigest()  # type: ignore[attr-defined]
    return images


def check_calibration(calibration: Union[torch.Tensor, Iterable[torch.Tensor], None]) -> List[torch.Tensor]:
    """Calibration images as a list of (N, C, H, W) batches, at least 32 images in all."""
    if calibration is None:
        raise InvalidOption(
            f"int8 needs calibration images: a folder or a tensor of at least {MIN_CALIBRATION_IMAGES} images"
        )
    if isinstance(calibration, torch.Tensor):
        if calibration.dim() != 4:
            raise InvalidOption(
                f"calibration images must be a (N, C, H, W) tensor, got shape {list(calibration.shape)}"
            )
        calibration = calibration.split(16)
    batches = [b if b.dim() == 4 else b.unsqueeze(0) for b in calibration]
    count = sum(len(b) for b in batches)
    if count < MIN_CALIBRATION_IMAGES:
        raise InvalidOption(
            f"calibration needs at least {MIN_CALIBRATION_IMAGES} images, got {count}; add representative images"
        )
    # uint8 crops (for a model with preprocessing fused in) stay uint8; images become float32.
    return [
        b.detach().cpu().contiguous() if b.dtype == torch.uint8 else b.detach().to("cpu", torch.float32).contiguous()
        for b in batches
    ]
