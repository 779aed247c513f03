"""Multi-label data: images with any number of labels each - a ``labels.csv`` over an image folder,
or the bundled digits laid out on a 2 x 2 grid (1 to 3 digits an image, the labels the digits shown).

``labels.csv`` has the header ``image,labels`` (and optionally ``split``, ``train`` or ``val`` per
row); ``image`` is a path relative to the folder, ``labels`` the image's labels separated by spaces
or commas (empty: none of them). The classes are the sorted set of labels the file names. Targets are multi-hot
float vectors."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import BadFile, InvalidOption
from .datasets import (
    DIGITS_MEAN,
    DIGITS_STD,
    SPLIT_SEED,
    FolderImages,
    FolderRecipe,
    Split,
    TensorImages,
    _digits_split,
)
from .decode import IMAGE_EXTENSIONS
from .transforms import Preprocess

HEADER = ("image", "labels")
SPLITS = ("train", "val")
GRID_CELLS = 2  # the digits grid: 2 x 2 cells
GRID_DIGITS = (1, 3)  # digits an image shows, at least and at most
GRID_IMAGES = {"train": 3000, "val": 600}
DIGITS_GRID = "sklearn digits grid (multi-label)"  # the data a run on it records


def multi_hot(indices: Sequence[int], num_classes: int) -> torch.Tensor:
    target = torch.zeros(num_classes)
    target[list(indices)] = 1.0
    return target


def _rows(path: Path) -> List[Dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's byte-order mark
            reader = csv.DictReader(f)
            header = tuple(h.strip() for h in (reader.fieldnames or ()))
            if header[:2] != HEADER or not set(header[2:]) <= {"split"}:
                raise BadFile(
                    f"labels file {path}: the header is {','.join(header) or '(empty)'}; it must be image,labels "
                    "(optionally ,split): one row per image, its labels separated by spaces"
                )
            return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    except FileNotFoundError:
        raise BadFile(f"labels file {path} does not exist; pass --labels FILE (image,labels rows)") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadFile(f"labels file {path} cannot be read ({exc}); it must be a UTF-8 CSV file") from None


def read_labels(root: Path, path: Path) -> Tuple[List[Tuple[str, Tuple[str, ...], str]], List[str]]:
    """([(image path, its labels, its split or "")], the sorted class names) of a labels file, each
    image checked to exist under ``root``; a problem is refused naming its line."""
    root = Path(root)
    if not root.is_dir():
        raise BadFile(f"data folder {root} does not exist; pass --data DIR (the images) with --labels FILE")
    entries, seen = [], set()
    for line, row in enumerate(_rows(Path(path)), start=2):
        name, split = row.get("image", ""), row.get("split", "")
        if not name:
            raise BadFile(f"labels file {path}, line {line}: no image path")
        if name in seen:
            raise BadFile(f"labels file {path}, line {line}: {name} is listed twice; give each image one row")
        if split not in ("", *SPLITS):
            raise BadFile(f"labels file {path}, line {line}: split {split!r} is not train or val")
        image = root / name
        if Path(name).suffix.lower() not in IMAGE_EXTENSIONS or not image.is_file():
            raise BadFile(
                f"labels file {path}, line {line}: {image} is not an image file here "
                f"({', '.join(IMAGE_EXTENSIONS)}); image paths are relative to --data"
            )
        seen.add(name)
        names = re.split(r"[\s,]+", row.get("labels", "").strip())  # spaces (or commas, as spreadsheets write)
        entries.append((str(image), tuple(sorted({n for n in names if n})), split))
    classes = sorted({label for _, labels, _ in entries for label in labels})
    if not entries:
        raise BadFile(f"labels file {path} lists no images; add image,labels rows")
    if len(classes) < 2:
        raise BadFile(f"labels file {path} names {len(classes)} label(s); a multi-label classifier needs at least 2")
    return entries, classes


def _split_entries(entries, val_split: Optional[float]) -> Tuple[list, list]:
    """Train and val rows: the file's ``split`` column where it gives one, else a random ``val_split``
    share (default 0.1) with the fixed split seed."""
    if any(split for _, _, split in entries) and val_split is None:
        train = [e for e in entries if e[2] != "val"]
        val = [e for e in entries if e[2] == "val"]
    else:
        fraction = 0.1 if val_split is None else val_split
        if not 0 < fraction < 1:
            raise InvalidOption(f"val_split must be between 0 and 1 (exclusive), got {fraction}", field="val_split")
        order = np.random.default_rng(SPLIT_SEED).permutation(len(entries))
        cut = max(1, int(round(len(entries) * fraction)))
        val = [entries[i] for i in sorted(order[:cut])]
        train = [entries[i] for i in sorted(order[cut:])]
    if not train or not val:
        raise BadFile("the labels file leaves no " + ("training" if not train else "validation") + " images")
    return train, val


def load_multilabel_folder(root: Path, labels: Path, recipe: FolderRecipe) -> Split:
    """The images ``labels`` lists under ``root``, with multi-hot targets, split into train and val."""
    entries, classes = read_labels(root, labels)
    index = {name: i for i, name in enumerate(classes)}
    train, val = _split_entries(entries, recipe.val_split)

    def samples(rows):
        return [(image, multi_hot([index[n] for n in names], len(classes))) for image, names, _ in rows]

    return recipe.split(samples(train), samples(val), classes, f"{root} ({Path(labels).name})")


def _grid(images: np.ndarray, targets: np.ndarray, count: int, cell: int, rng: np.random.Generator):
    """``count`` grid images (N, 1, 2 cell, 2 cell) of digits drawn from ``images``, and their multi-hot labels."""
    x = torch.from_numpy(images.astype(np.float32) / 16.0).unsqueeze(1)
    x = torch.nn.functional.interpolate(x, size=(cell, cell), mode="bilinear", align_corners=False)
    side = GRID_CELLS * cell
    out = torch.zeros(count, 1, side, side)
    y = torch.zeros(count, 10)
    for n in range(count):
        k = int(rng.integers(GRID_DIGITS[0], GRID_DIGITS[1] + 1))
        cells = rng.choice(GRID_CELLS * GRID_CELLS, size=k, replace=False)
        for c, pick in zip(cells, rng.integers(0, len(images), size=k)):
            top, left = divmod(int(c), GRID_CELLS)
            out[n, 0, top * cell : (top + 1) * cell, left * cell : (left + 1) * cell] = x[pick, 0]
            y[n, int(targets[pick])] = 1.0
    return out, y


def load_digits_grid(image_size: int = 32) -> Split:
    """The multi-label digits: each image a 2 x 2 grid showing 1 to 3 of scikit-learn's digits (the
    others blank), labelled with the digits it shows. Training grids are made of the digits' training
    split, validation grids of their validation split (no digit image is in both), with a fixed seed."""
    from sklearn.datasets import load_digits as sk_load_digits

    if image_size % GRID_CELLS:
        raise InvalidOption(f"image_size {image_size} must be even for the 2 x 2 digits grid", field="image_size")
    bunch = sk_load_digits()
    rng = np.random.default_rng(SPLIT_SEED)
    parts = {}
    for name, idx in zip(SPLITS, _digits_split(bunch.target)):
        x, y = _grid(bunch.images[idx], bunch.target[idx], GRID_IMAGES[name], image_size // GRID_CELLS, rng)
        parts[name] = TensorImages(((x - DIGITS_MEAN) / DIGITS_STD).repeat(1, 3, 1, 1).contiguous(), y)
    preprocess = Preprocess(image_size, image_size, "bilinear", (DIGITS_MEAN,) * 3, (DIGITS_STD,) * 3)
    return Split(
        train=parts["train"],
        val=parts["val"],
        classes=[str(c) for c in bunch.target_names],
        preprocess=preprocess,
        source=DIGITS_GRID,
        in_memory=True,
    )


def labelled_folder(
    root: Path, labels: Path, classes: Sequence[str], transform: Callable, short_side: int, policy: str
) -> FolderImages:
    """The images a labels file lists (its ``val`` rows, when it has a split column), with multi-hot
    targets over a model's ``classes``; a label the model does not know is refused."""
    entries, named = read_labels(root, labels)
    if any(split for _, _, split in entries):
        entries = [e for e in entries if e[2] == "val"] or entries
    index = {name: i for i, name in enumerate(classes)}
    unknown = [name for name in named if name not in index]
    if unknown:
        raise BadFile(
            f"labels file {labels} names label(s) the model does not have: {', '.join(unknown[:5])}"
            f"{' ...' if len(unknown) > 5 else ''}; its classes are {', '.join(list(classes)[:10])}"
            f"{' ...' if len(classes) > 10 else ''}"
        )
    samples = [(image, multi_hot([index[n] for n in names], len(classes))) for image, names, _ in entries]
    return FolderImages(samples, transform, short_side=short_side, policy=policy)


def digits_grid_images(directory: Path, count: int = 8, image_size: int = 32) -> List[Path]:
    """Write ``count`` validation grids as PNG files named by their labels (for trying ``predict``)."""
    from PIL import Image

    val = load_digits_grid(image_size).val
    assert isinstance(val, TensorImages)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(min(count, len(val))):
        gray = (val.images[n, 0] * DIGITS_STD + DIGITS_MEAN).clamp(0, 1)
        labels = "-".join(str(i) for i in torch.nonzero(val.targets[n]).flatten().tolist())
        path = directory / f"val{n:04d}_labels{labels}.png"
        Image.fromarray((gray.numpy() * 255).round().astype(np.uint8), mode="L").save(path)
        paths.append(path)
    return paths
