"""`predict --cam`: a Grad-CAM overlay per image, written beside the predictions."""

from __future__ import annotations

from pathlib import Path

from ..data.decode import load_image
from ..fileio import atomic_path, make_dir


def write_cam(model, path: Path, folder: Path, device) -> Path:
    """The Grad-CAM overlay of one image, saved as FOLDER/NAME_cam.png: the part of the image the model
    saw (its center crop), at the image's own resolution and at least 256 px on the short side."""
    from ..inspect.cam import grad_cam, overlay_on_original

    pre = model.card.preprocess
    original = load_image(path, pre.resize_size)
    x = pre.transform(model.card.in_chans)(original)[None].to(device)
    overlay = overlay_on_original(original, grad_cam(model, x)[0], pre.resize_size, pre.crop_size)
    make_dir(folder, "--cam folder")
    out = folder / f"{path.stem}_cam.png"
    with atomic_path(out, "Grad-CAM image") as tmp:
        overlay.save(tmp, format="PNG")
    return out
