"""Small image files generated for tests: a tiny labelled ImageFolder and broken files."""

from pathlib import Path

import numpy as np
from PIL import Image


def class_image(cls: int, idx: int, size: int = 40) -> Image.Image:
    """An image whose class is easy to learn: a distinct color and stripe orientation per class."""
    rng = np.random.default_rng(cls * 1000 + idx)
    arr = rng.integers(0, 40, size=(size, size, 3), dtype=np.uint8)
    color = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200], [200, 200, 30]][cls % 4], dtype=np.uint8)
    if cls % 2 == 0:
        arr[::4, :, :] = color
    else:
        arr[:, ::4, :] = color
    return Image.fromarray(arr)


def write_broken_files(directory: Path) -> list:
    directory.mkdir(parents=True, exist_ok=True)
    empty = directory / "empty.jpg"
    empty.write_bytes(b"")
    text = directory / "notes.png"
    text.write_text("this is not an image")
    good = directory / "_good_tmp.png"
    class_image(0, 0).save(good)
    data = good.read_bytes()
    good.unlink()
    truncated = directory / "truncated.png"
    truncated.write_bytes(data[: len(data) // 2])
    return [empty, text, truncated]


def make_image_folder(
    root: Path, classes: int = 3, train_per_class: int = 12, val_per_class: int = 4, broken: bool = False
) -> Path:
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for c in range(classes):
            d = root / split / f"class_{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                class_image(c, i + (0 if split == "train" else 500)).save(d / f"{i:03d}.png")
    if broken:
        write_broken_files(root / "train" / "class_0")
    return root


def write_small_weights(path, crop: int = 32, mean=(0.5,) * 3, std=(0.25,) * 3, seed: int = 0, classes=("a", "b", "c")):
    """A random resnet18 with 3 classes (a, b, c) at ``crop`` px, saved as a training run saves it.
    Seeded (the caller's random state untouched): the same weights, so the same near-ties, every run."""
    import torch

    import resnetkit as rk

    meta = {
        "arch": "resnet18",
        "num_classes": len(classes),
        "classes": list(classes),
        "preprocess": {
            "resize_size": crop * 9 // 8,
            "crop_size": crop,
            "interpolation": "bilinear",
            "mean": list(mean),
            "std": list(std),
        },
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = rk.resnet18(num_classes=len(classes))
    rk.save_safetensors(model.state_dict(), path, meta)
    return path
