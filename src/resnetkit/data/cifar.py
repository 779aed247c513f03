"""CIFAR-10 and CIFAR-100 from the python-pickle batches their authors distribute
(https://www.cs.toronto.edu/~kriz/cifar.html: cifar-10-python.tar.gz, cifar-100-python.tar.gz), as
``--data cifar10:DIR`` / ``cifar100:DIR``: DIR is the unpacked folder (``cifar-10-batches-py``,
``cifar-100-python``) or the folder holding it.

Read here rather than by torchvision's CIFAR10: that class pins the files' md5 sums and loads them
with an unrestricted pickle. These are pickles, and a pickle can run code when loaded, so they are
loaded by an unpickler that builds numpy arrays, lists, dicts and strings and nothing else: a file
that asks for anything more is refused in one line.

The training split is the 50,000 training images, the validation split the 10,000 test images (as
the paper and every CIFAR table report). Images are normalised with the training set's per-channel
mean and std; training augmentation is the paper's: 4 pixels of zero padding on each side, a random
32 x 32 crop, and a random horizontal flip (TensorImages.shifted_batch).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from ..errors import BadFile
from .datasets import Split, TensorImages
from .transforms import Preprocess

# kind -> (folder the archive unpacks to, training files, test file, meta file, label key, names key)
LAYOUTS: Dict[str, Tuple[str, Tuple[str, ...], str, str, str, str]] = {
    "cifar10": (
        "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta",
        "labels", "label_names",
    ),
    "cifar100": ("cifar-100-python", ("train",), "test", "meta", "fine_labels", "fine_label_names"),
}  # fmt: skip
ARCHIVES = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}
PREFIXES = tuple(f"{kind}:" for kind in LAYOUTS)
# Per-channel mean and std of the CIFAR-10 training images (pixel / 255), the values every CIFAR
# recipe normalises with; CIFAR-100's differ by < 0.03 and use the same.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
SIZE = 32
# What a CIFAR pickle is made of: numpy's array reconstruction (under numpy 1.x and 2.x names).
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


def parse(data: Optional[str]) -> Optional[Tuple[str, Path]]:
    """("cifar10" | "cifar100", DIR) for a ``--data cifar10:DIR`` value; None for anything else."""
    if not data:
        return None
    for kind in LAYOUTS:
        if data.startswith(f"{kind}:"):
            return kind, Path(data[len(kind) + 1 :]).expanduser()
    return None


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it asks to load {module}.{name}, which a CIFAR batch never does")


def _load(path: Path) -> Dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BadFile(
            f"{path}: missing; a CIFAR folder holds the python batches as unpacked from the cifar-*-python.tar.gz "
            "archive"
        ) from None
    try:
        value = _ArraysOnly(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # pickle raises many kinds on a damaged or hostile file
        raise BadFile(f"{path}: not a CIFAR python batch ({exc}); download and unpack the archive again") from None
    if not isinstance(value, dict):
        raise BadFile(f"{path}: not a CIFAR python batch (no dictionary inside); download and unpack it again")
    return {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in value.items()}


def _folder(kind: str, root: Path) -> Path:
    name = LAYOUTS[kind][0]
    for candidate in (root, root / name):
        if (candidate / LAYOUTS[kind][3]).is_file():
            return candidate
    raise BadFile(
        f"{root}: no {kind} batches there (looked for {LAYOUTS[kind][3]} in it and in {root / name}); "
        f"unpack {ARCHIVES[kind]} (https://www.cs.toronto.edu/~kriz/cifar.html) into it"
    )


def _images_and_labels(batch: Dict[str, Any], label_key: str, path: Path, classes: int):
    data, labels = batch.get("data"), batch.get(label_key)
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3 * SIZE * SIZE or data.dtype != np.uint8:
        raise BadFile(f"{path}: its data is not N x 3072 uint8 pixels; download and unpack the archive again")
    labels_array = np.asarray(labels, dtype=np.int64) if isinstance(labels, (list, np.ndarray)) else None
    if labels_array is None or labels_array.shape != (len(data),):
        raise BadFile(f"{path}: it has {len(data)} images but not as many {label_key}; download it again")
    if len(labels_array) and (labels_array.min() < 0 or labels_array.max() >= classes):
        raise BadFile(f"{path}: a label is outside 0..{classes - 1}; download it again")
    return data, labels_array


def _tensor(pixels: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(pixels.reshape(-1, 3, SIZE, SIZE)).to(torch.float32).div_(255)
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def _names(meta: Dict[str, Any], key: str, path: Path) -> List[str]:
    names = meta.get(key)
    if not isinstance(names, list) or not names:
        raise BadFile(f"{path}: no {key} in it; download and unpack the archive again")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def load_cifar(kind: str, root: Path) -> Split:
    """The ``kind`` data set in ``root``: its training and test images, in memory."""
    folder = _folder(kind, root)
    _, train_files, test_file, meta_file, label_key, names_key = LAYOUTS[kind]
    classes = _names(_load(folder / meta_file), names_key, folder / meta_file)
    parts = [_images_and_labels(_load(folder / f), label_key, folder / f, len(classes)) for f in train_files]
    train_x = np.concatenate([p[0] for p in parts])
    train_y = np.concatenate([p[1] for p in parts])
    test_x, test_y = _images_and_labels(_load(folder / test_file), label_key, folder / test_file, len(classes))
    fill = tuple(-m / s for m, s in zip(MEAN, STD))  # black, normalised: the paper pads with zeros
    preprocess = Preprocess(resize_size=SIZE, crop_size=SIZE, interpolation="bilinear", mean=MEAN, std=STD)
    return Split(
        train=TensorImages(_tensor(train_x), torch.from_numpy(train_y), flip=True, fill=fill),
        val=TensorImages(_tensor(test_x), torch.from_numpy(test_y)),
        classes=classes,
        preprocess=preprocess,
        source=f"{kind}:{root}",
        in_memory=True,
    )


def write_batches(kind: str, root: Path, train: np.ndarray, train_labels, test: np.ndarray, test_labels,
                  names: List[str]) -> Path:  # fmt: skip
    """Write a data set in the authors' python-batch layout under ``root`` (how tests, and anyone
    converting their own 32 x 32 images, make one): pixels (N, 3072) uint8 in CHW order."""
    name, train_files, test_file, meta_file, label_key, names_key = LAYOUTS[kind]
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    chunks = np.array_split(np.arange(len(train)), len(train_files))

    def dump(path: Path, value: dict) -> None:
        path.write_bytes(pickle.dumps({k.encode(): v for k, v in value.items()}, protocol=2))

    for file, idx in zip(train_files, chunks):
        dump(folder / file, {"data": train[idx], label_key: [int(v) for v in np.asarray(train_labels)[idx]]})
    dump(folder / test_file, {"data": test, label_key: [int(v) for v in test_labels]})
    dump(folder / meta_file, {names_key: [n.encode() for n in names]})
    return folder
