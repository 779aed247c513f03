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


def digit_pngs(size: int = 16):
    """scikit-learn's digits as (split, index, label, PNG bytes), in the bundled train/val split."""
    import io

    from sklearn.datasets import load_digits

    from resnetkit.data.datasets import _digits_split

    bunch = load_digits()
    for split, indices in zip(("train", "val"), _digits_split(bunch.target)):
        for i in indices:
            image = Image.fromarray((bunch.images[i] * 255 / 16).astype(np.uint8), mode="L").convert("RGB")
            buf = io.BytesIO()
            image.resize((size, size), Image.Resampling.BILINEAR).save(buf, format="PNG")
            yield split, int(i), int(bunch.target[i]), buf.getvalue()


def write_digit_folder(root: Path, size: int = 16) -> Path:
    """The digits as an ImageFolder: root/train/<digit>/*.png and root/val/<digit>/*.png."""
    for split, i, label, data in digit_pngs(size):
        folder = root / split / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:04d}.png").write_bytes(data)
    return root


def write_digit_shards(root: Path, shards: dict, size: int = 16, label: str = "cls") -> Path:
    """The digits as WebDataset shards, ``shards`` of each split ({"train": 4, "val": 2}):
    root/train-000.tar ... with KEY.png and KEY.cls (or KEY.json {"label": "digit-N"})."""
    import io
    import json
    import tarfile

    root.mkdir(parents=True, exist_ok=True)
    samples = {"train": [], "val": []}
    for split, i, digit, data in digit_pngs(size):
        samples[split].append((f"d{i:04d}", digit, data))
    for split, count in shards.items():
        for s in range(count):
            with tarfile.open(root / f"{split}-{s:03d}.tar", "w") as tar:
                for key, digit, data in samples[split][s::count]:
                    meta = str(digit).encode() if label == "cls" else json.dumps({"label": f"digit-{digit}"}).encode()
                    for ext, payload in (("png", data), (label, meta)):
                        info = tarfile.TarInfo(f"{key}.{ext}")
                        info.size = len(payload)
                        tar.addfile(info, io.BytesIO(payload))
    return root
