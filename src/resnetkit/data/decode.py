"""Robust image decoding: every mode PIL can open becomes RGB, or a clear error naming the file.

Two decode policies (``policy=``; ``--decode`` on the command line):

- ``resnetkit`` (the default): the EXIF orientation is applied (a phone photo stands upright),
  transparency is composited onto white (what a viewer shows), and 16-bit and float images are scaled
  by their actual range to 8 bits (a 16-bit scan is not clipped to white);
- ``reference``: ``Image.open(path).convert("RGB")``, what torchvision's and timm's examples and
  inference scripts do (the stored orientation; alpha dropped, leaving the colour under it; PIL's own
  conversion of 16-bit and float images), for reproducing a peer's numbers exactly.

Both share the limits (decompression bombs, extreme aspect ratios) and the error messages."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np
from PIL import Image, ImageOps

from ..errors import BadFile, ImageDecodeError
from ..fileio import check_readable_file
from .policy import DECODE_POLICIES, check_policy

# 89 megapixels (PIL's own default). Anything above is refused as a possible decompression bomb
# instead of PIL's mere warning, so a hostile file cannot exhaust memory.
MAX_PIXELS = 89_478_485
# Preprocessing scales the short side to a fixed size, so an extreme aspect ratio turns a tiny
# file into a huge tensor (a 1x3000 PNG resized to 256 px is 196 megapixels). Refused above this.
MAX_RESIZED_PIXELS = 4_194_304

__all__ = ["ImageDecodeError", "decode_image_bytes", "expand_inputs", "load_image", "DECODE_POLICIES"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit grayscale: scale the actual range to 8 bits rather than clipping at 255.
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max()
        arr = arr / hi * 255.0 if hi > 0 else arr
        img = Image.fromarray(arr.astype(np.uint8), mode="L")
    elif mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = arr.min(), arr.max()
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(arr.astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA"):
        # Composite transparency onto white: what a viewer shows, and what web images assume.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def check_resized_size(path: Union[str, os.PathLike], width: int, height: int, short_side: Optional[int]) -> None:
    """Refuse an image whose short side scaled to ``short_side`` would exceed MAX_RESIZED_PIXELS."""
    if not short_side or width < 1 or height < 1:
        return
    scale = short_side / min(width, height)
    resized = (width * scale) * (height * scale)
    if resized > MAX_RESIZED_PIXELS:
        raise ImageDecodeError(
            f"{path}: {width}x{height} pixels has an extreme aspect ratio ({max(width, height) / min(width, height):.0f}:1): "
            f"resizing its short side to {short_side} px would make {resized / 1e6:,.0f} megapixels "
            f"(limit {MAX_RESIZED_PIXELS / 1e6:.1f}); crop it to a normal aspect ratio first"
        )


def load_image(
    path: Union[str, os.PathLike], short_side: Optional[int] = None, draft: bool = False, policy: str = "resnetkit"
) -> Image.Image:
    """Open ``path`` as an RGB PIL image, decoded by ``policy`` (see the module docstring: by
    default with the EXIF orientation applied).

    ``short_side`` is the size preprocessing will scale the short side to: images whose result
    would be unreasonably large (extreme aspect ratios) are refused before decoding. ``draft``: a
    JPEG at least twice that size is decoded at a reduced scale (1/2, 1/4 or 1/8, in the DCT domain,
    never below ``short_side``): several times faster, and what follows (resizing the short side to
    ``short_side``) then starts from fewer pixels - not bit-identical to a full decode. Raises
    ImageDecodeError for a missing, unreadable, empty, truncated, corrupt, non-image or
    oversized file. PIL's global LOAD_TRUNCATED_IMAGES is left as the caller set it (False by
    default: truncated files are refused).
    """
    try:
        path = check_readable_file(path, "image")
    except BadFile as exc:
        raise ImageDecodeError(str(exc)) from None
    if path.stat().st_size == 0:
        raise ImageDecodeError(f"{path}: empty file (0 bytes); re-copy or remove it")
    return _open(path, str(path), short_side, draft, check_policy(policy))


def decode_image_bytes(
    data: bytes, name: str = "upload", short_side: Optional[int] = None, draft: bool = False, policy: str = "resnetkit"
) -> Image.Image:
    """``load_image`` for an image held in memory (an upload): the same limits and messages."""
    if not data:
        raise ImageDecodeError(f"{name}: empty file (0 bytes); send the image's content")
    return _open(io.BytesIO(data), name, short_side, draft, check_policy(policy))


def _draft(img: Image.Image, short_side: Optional[int]) -> None:
    if short_side and img.format == "JPEG" and min(img.size) >= 2 * short_side:
        # Both sides stay >= short_side, so the short side does too, whatever the EXIF rotation.
        img.draft("RGB", (short_side, short_side))


def _open(
    source: Union[Path, io.BytesIO],
    name: str,
    short_side: Optional[int],
    draft: bool = False,
    policy: str = "resnetkit",
) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise ImageDecodeError(
                        f"{name}: {img.width}x{img.height} pixels exceeds the {MAX_PIXELS:,}-pixel limit "
                        "(possible decompression bomb); downscale the image first"
                    )
                check_resized_size(name, img.width, img.height, short_side)
                if draft:
                    _draft(img, short_side)
                img.load()
                if policy == "reference":
                    return img.convert("RGB")
                img = ImageOps.exif_transpose(img)
                return _to_rgb(img)
    except ImageDecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(f"{name}: refused as a possible decompression bomb ({exc})") from None
    except Image.UnidentifiedImageError:
        raise ImageDecodeError(f"{name}: not an image file PIL can identify") from None
    except PermissionError:
        raise ImageDecodeError(f"{name}: permission denied; fix its permissions") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"{name}: corrupt or truncated image ({exc})") from None


def expand_inputs(inputs: Sequence[str]) -> List[Path]:
    """Files as given, plus the image files inside given directories (recursively, sorted).
    Paths that do not exist are kept, so they are reported rather than silently dropped."""
    paths: List[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
            paths.extend(found)
        else:
            paths.append(p)
    return paths
