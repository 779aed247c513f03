"""`predict --cam`: a Grad-CAM overlay per image, written beside the predictions."""

from __future__ import annotations

from pathlib import Path

from ..data.decode import load_image
from ..fileio import atomic_path, make_dir


def write_cam(model, path: Path, folder: Path, device) -> Path:
    """The Grad-CAM overlay of one image (the crop the model saw), saved as FOLDER/NAME_cam.png."""
    from ..inspect.cam import cam_overlays

    pre = model.card.preprocess
    x = pre.transform(model.card.in_chans)(load_image(path, pre.resize_size))[None].to(device)
    overlay = cam_overlays(model, x, pre.mean, pre.std)[0]
    make_dir(folder, "--cam folder")
    out = folder / f"{path.stem}_cam.png"
    with atomic_path(out, "Grad-CAM image") as tmp:
        overlay.save(tmp, format="PNG")
    return out
