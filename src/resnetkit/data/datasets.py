"""Data sets for training and evaluation: the bundled digits set and ImageFolder trees."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import BadFile, InvalidOption
from .decode import IMAGE_EXTENSIONS, ImageDecodeError, load_image
from .sampling import sample_seed, seeded
from .transforms import Preprocess


@dataclass
class Split:
    """A labelled data set split into train and val parts, plus what a model needs to know about it."""

    train: TensorImages | FolderImages
    val: TensorImages | FolderImages
    classes: List[str]
    preprocess: Preprocess  # evaluation preprocessing, saved with the trained weights
    source: str
    in_memory: bool = False


class TensorImages(Dataset):
    """Preprocessed images held in memory as one (N, C, H, W) tensor. Their training augmentation is
    the data set's own: a random translation (``shifted_batch``: the digits pad by repeating the edge,
    CIFAR with black, ``fill``: its normalised value per channel) and, where ``flip``, a random
    horizontal flip."""

    def __init__(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        flip: bool = False,
        fill: Optional[Sequence[float]] = None,
    ) -> None:
        self.images, self.targets = images, targets
        self.flip, self.fill = flip, fill

    def __len__(self) -> int:
        return len(self.targets)

    def batch(self, indices: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return self.images[idx], self.targets[idx]

    def _padded(self, x: torch.Tensor, pad: int) -> torch.Tensor:
        import torch.nn.functional as F

        if self.fill is None:
            return F.pad(x, (pad, pad, pad, pad), mode="replicate")
        fill = torch.tensor(self.fill, dtype=x.dtype).view(1, -1, 1, 1)
        return F.pad(x - fill, (pad, pad, pad, pad)) + fill

    def shifted_batch(
        self, indices: Sequence[int], pad: int, seed: int, epoch: int
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The batch with each image padded by ``pad`` pixels and randomly cropped back (and flipped,
        where the data set flips): seeded by (seed, epoch, sample), so it is the same whatever the
        batch split across ranks, and again after a resume."""
        x, y = self.batch(indices)
        if pad <= 0 and not self.flip:
            return x, y
        h, w = x.shape[-2:]
        padded = self._padded(x, pad) if pad > 0 else x
        out = torch.empty_like(x)
        for k, i in enumerate(indices):
            g = torch.Generator().manual_seed(sample_seed(seed, epoch, i))
            top, left = torch.randint(0, 2 * pad + 1, (2,), generator=g).tolist()
            crop = padded[k, :, top : top + h, left : left + w]
            out[k] = crop.flip(-1) if self.flip and torch.rand((), generator=g) < 0.5 else crop
        return out, y


DIGITS_MEAN, DIGITS_STD = 0.3, 0.4  # of pixel/16 after upsampling, close to the measured 0.30 / 0.41
# Train/val splits use a fixed seed, independent of the training seed, so runs stay comparable.
SPLIT_SEED = 0


def _digits_split(targets: np.ndarray, val_fraction: float = 0.2) -> Tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    tr, va = train_test_split(
        np.arange(len(targets)), test_size=val_fraction, stratify=targets, random_state=SPLIT_SEED
    )
    return np.sort(tr), np.sort(va)


def load_digits(image_size: int = 32, val_fraction: float = 0.2) -> Split:
    """scikit-learn's bundled handwritten digits (1,797 8x8 images, 10 classes), split stratified
    80/20 with a fixed seed, upsampled bilinearly to ``image_size`` and repeated to 3 channels."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    x = torch.nn.functional.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    x = ((x - DIGITS_MEAN) / DIGITS_STD).repeat(1, 3, 1, 1).contiguous()
    y = torch.from_numpy(bunch.target.astype(np.int64))
    idx_train, idx_val = (torch.from_numpy(i) for i in _digits_split(bunch.target, val_fraction))
    preprocess = Preprocess(
        resize_size=image_size,
        crop_size=image_size,
        interpolation="bilinear",
        mean=(DIGITS_MEAN,) * 3,
        std=(DIGITS_STD,) * 3,
    )
    return Split(
        train=TensorImages(x[idx_train], y[idx_train]),
        val=TensorImages(x[idx_val], y[idx_val]),
        classes=[str(c) for c in bunch.target_names],
        preprocess=preprocess,
        source="sklearn digits",
        in_memory=True,
    )


def digits_val_images(directory: Path, count: int = 8) -> List[Path]:
    """Write ``count`` validation digits as 32x32 PNG files (for trying ``predict`` on real files)."""
    from PIL import Image
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    _, idx_val = _digits_split(bunch.target)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in idx_val[:count]:
        img = Image.fromarray((bunch.images[i] * 255 / 16).astype(np.uint8), mode="L").resize(
            (32, 32), Image.Resampling.BILINEAR
        )
        path = directory / f"val{i:04d}_label{bunch.target[i]}.png"
        img.save(path)
        paths.append(path)
    return paths


def find_images(root: Path, require_every_class: bool = False) -> List[Tuple[str, int]]:
    """(path, class index) pairs of an ImageFolder tree, sorted; classes are the sub-folder names.
    ``require_every_class`` refuses class folders without image files (a class that cannot be learned)."""
    classes = class_names(root)
    samples: List[Tuple[str, int]] = []
    empty: List[str] = []
    for ci, name in enumerate(classes):
        found = [p for p in sorted((root / name).rglob("*")) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
        if not found:
            empty.append(name)
        samples.extend((str(p), ci) for p in found)
    if require_every_class and empty:
        raise BadFile(
            f"{root}: class folder(s) {', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''} hold no image files "
            f"({', '.join(IMAGE_EXTENSIONS)}); add images or remove the folder(s)"
        )
    return samples


def class_names(root: Path) -> List[str]:
    if not root.exists():
        raise BadFile(f"data folder {root} does not exist; pass --data DIR with DIR/<class>/*.jpg")
    if not root.is_dir():
        raise BadFile(f"data path {root} is a file, not a folder; pass --data DIR with DIR/<class>/*.jpg")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise BadFile(f"{root} has no class sub-folders; expected {root}/<class>/<image files>")
    return classes


class FolderImages(Dataset):
    """Images on disk. Items are decoded on demand; an undecodable file yields ``None`` (and is
    skipped by ``collate``) instead of killing the run.

    An index may be ``(epoch, i)``: the transform's randomness is then seeded from
    (seed, epoch, i), which makes augmentation independent of worker count and resumable.
    """

    def __init__(
        self,
        samples: Sequence[Tuple[str, int | torch.Tensor]],
        transform: Callable,
        seed: int = 0,
        short_side: Optional[int] = None,
        policy: str = "resnetkit",
    ) -> None:
        self.samples, self.transform, self.seed = samples, transform, seed
        self.short_side = short_side  # what preprocessing scales the short side to (extreme aspect guard)
        self.policy = policy  # the decode policy (data.decode)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index):
        epoch, i = index if isinstance(index, tuple) else (None, index)
        path, target = self.samples[i]
        try:
            image = load_image(path, self.short_side, policy=self.policy)
        except ImageDecodeError as exc:
            return None, str(exc)
        if epoch is None:
            return self.transform(image), target
        return seeded(self.transform, image, sample_seed(self.seed, epoch, i)), target


def collate(items):
    """Stack the decodable items (targets: class indices, or multi-hot vectors); report the others by message."""
    good = [it for it in items if it[0] is not None]
    skipped = [it[1] for it in items if it[0] is None]
    if good:
        images = torch.stack([g[0] for g in good])
        if isinstance(good[0][1], torch.Tensor):
            targets = torch.stack([g[1] for g in good])
        else:
            targets = torch.as_tensor([g[1] for g in good], dtype=torch.long)
    else:
        images, targets = torch.empty(0), torch.empty(0, dtype=torch.long)
    return images, targets, skipped


@dataclass(frozen=True)
class FolderRecipe:
    """How a folder's images become a ``Split``: the transforms, the evaluation preprocessing, the
    validation share of a single folder, the augmentation seed (the train/val split itself always uses
    SPLIT_SEED) and the size training images are decoded for."""

    train_transform: Callable
    eval_transform: Callable
    preprocess: Preprocess
    val_split: Optional[float] = None
    seed: int = 0
    train_short_side: Optional[int] = None

    def split(self, train: Sequence[Tuple[str, int | torch.Tensor]], val, classes: List[str], source: str) -> Split:
        return Split(
            train=FolderImages(train, self.train_transform, self.seed, short_side=self.train_short_side),
            val=FolderImages(val, self.eval_transform, self.seed, short_side=self.preprocess.resize_size),
            classes=classes,
            preprocess=self.preprocess,
            source=source,
        )


def load_folder(root: Path, recipe: FolderRecipe) -> Split:
    """ImageFolder layout: ``root/train/<class>/*`` and ``root/val/<class>/*``, or one folder of
    class folders split with ``recipe.val_split`` (stratified, fixed seed)."""
    root = Path(root)
    val_split = recipe.val_split
    if (root / "train").is_dir() and val_split is None:
        val_dir = root / "val"
        if not val_dir.is_dir():
            raise BadFile(f"{root}/train exists but {root}/val does not; add it or pass --val-split 0.1")
        classes = class_names(root / "train")
        val_classes = class_names(val_dir)
        if val_classes != classes:
            raise BadFile(
                f"class folders of {root}/train and {root}/val differ "
                f"({len(classes)} vs {len(val_classes)}); they must have the same names"
            )
        train_samples, val_samples = find_images(root / "train", require_every_class=True), find_images(val_dir)
    else:
        base = root / "train" if (root / "train").is_dir() else root
        classes = class_names(base)
        fraction = 0.1 if val_split is None else val_split
        if not 0 < fraction < 1:
            raise InvalidOption(f"val_split must be between 0 and 1 (exclusive), got {fraction}", field="val_split")
        samples = find_images(base, require_every_class=True)
        from sklearn.model_selection import train_test_split

        labels = [t for _, t in samples]
        try:
            tr, va = train_test_split(range(len(samples)), test_size=fraction, stratify=labels, random_state=SPLIT_SEED)
        except ValueError:
            tr, va = train_test_split(range(len(samples)), test_size=fraction, random_state=SPLIT_SEED)
        train_samples = [samples[i] for i in sorted(tr)]
        val_samples = [samples[i] for i in sorted(va)]
    if not train_samples:
        raise BadFile(f"no image files found under {root} (extensions: {', '.join(IMAGE_EXTENSIONS)})")
    if len(classes) < 2:
        raise BadFile(
            f"{root} has a single class folder ({classes[0]}): a classifier needs at least 2 classes; "
            f"expected {root}/<class>/<images> with one folder per class"
        )
    return recipe.split(train_samples, val_samples, classes, str(root))
