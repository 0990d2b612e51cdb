"""Reading image files into the package's tensor convention, and matching sizes.

Any format Pillow reads; EXIF orientation applied; grayscale, palette, CMYK and alpha (composited on
white) become RGB. High bit depths are *scaled*, not clipped (16-bit by 255/65535, float ``F`` in
[0, 1] by 255), so a picture saved at any depth gives the same tensor up to 8-bit rounding. Images
over :func:`max_pixels` (4096 x 4096 by default, ``$CLPIPS_MAX_PIXELS``) are refused before decoding,
as are decompression bombs: 16 megapixels need about 0.7 GB of AlexNet activations (8 GB for VGG).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from clpips.conventions import MIN_SIZE
from clpips.defaults import MAX_PIXELS as DEFAULT_MAX_PIXELS  # the default of max_pixels
from clpips.paths import existing_path

SizeRule = Union[str, tuple[int, int]]


class ImageReadError(ValueError):
    """An image file is missing or cannot be decoded."""


#: full scale of each high-bit-depth Pillow mode (its values are divided by this)
_FULL_SCALE = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535, "F": 1.0}
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def max_pixels() -> int:
    """The most pixels (width x height) an image may have: ``$CLPIPS_MAX_PIXELS`` or :data:`DEFAULT_MAX_PIXELS`."""
    raw = os.environ.get("CLPIPS_MAX_PIXELS", "")
    try:
        value = int(raw) if raw.strip() else DEFAULT_MAX_PIXELS
    except ValueError:
        raise ImageReadError(f"CLPIPS_MAX_PIXELS={raw!r} is not a whole number of pixels") from None
    if value < 1:
        raise ImageReadError(f"CLPIPS_MAX_PIXELS={raw!r} must be at least 1")
    return value


def _scaled_to_8bit(img: Image.Image, path: Path) -> Image.Image:
    """A 16-bit, 32-bit integer or float image as 8-bit ``L``, scaled by its mode's full scale."""
    arr = np.asarray(img).astype(np.float64)
    full = _FULL_SCALE[img.mode]
    if not np.isfinite(arr).all():
        raise ImageReadError(f"{path}: image (mode {img.mode}) contains NaN or infinite values")
    if arr.size and (arr.min() < 0 or arr.max() > full):
        raise ImageReadError(f"{path}: mode {img.mode} values span [{arr.min():g}, {arr.max():g}], outside "
                             f"0..{full:g}; save it as an 8- or 16-bit image")
    return Image.fromarray(np.round(arr * (255.0 / full)).astype(np.uint8), "L")


def open_rgb(path: str | os.PathLike) -> Image.Image:
    """``path`` as an 8-bit RGB PIL image, EXIF orientation applied; an :class:`ImageReadError` naming the file
    when it is missing, a folder, undecodable, out of its mode's range or over :func:`max_pixels`.
    """
    path = existing_path(path)
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image file")
    if not path.is_file():
        raise ImageReadError(f"{path}: no such image file")
    limit = max_pixels()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked below
            with Image.open(path) as img:
                width, height = img.size
                if width * height > limit:
                    raise ImageReadError(f"{path}: {width} x {height} = {width * height:,} pixels is more than the "
                                         f"limit of {limit:,}; downscale it, or raise the limit with "
                                         "CLPIPS_MAX_PIXELS or --max-pixels")
                img = ImageOps.exif_transpose(img)
                img.load()
    except Image.DecompressionBombError as err:
        raise ImageReadError(f"{path}: refused as a decompression bomb ({err})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        if isinstance(err, ImageReadError):
            raise
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ImageReadError(f"{path}: cannot decode image ({reason})") from None
    if img.mode in _FULL_SCALE:
        img = _scaled_to_8bit(img, path)
    mode = img.mode
    try:   # a mode Pillow reads but cannot convert (it fails at the alpha step or at RGB) is named
        if mode in _ALPHA_MODES or (mode == "P" and "transparency" in img.info):
            img = Image.alpha_composite(Image.new("RGBA", img.size, "white"), img.convert("RGBA"))
        return img.convert("RGB")
    except ValueError as err:
        raise ImageReadError(f"{path}: cannot convert mode {mode} to RGB ({err})") from None


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` of an image file as :func:`open_rgb` gives it (EXIF orientation applied), read
    from its header without decoding it; :class:`ImageReadError` as :func:`open_rgb` for a bad file."""
    path = existing_path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # open_rgb checks our own limit
            with Image.open(path) as img:
                width, height = img.size
                turned = img.getexif().get(0x0112) in (5, 6, 7, 8)  # EXIF orientations that swap the sides
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        open_rgb(path)  # raises the one-line error that names what is wrong
        raise
    return (width, height) if turned else (height, width)


def to_tensor(img: Image.Image | np.ndarray) -> torch.Tensor:
    """A PIL image or ``H x W x 3`` uint8 array as a ``1 x 3 x H x W`` tensor in [-1, 1]."""
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 RGB image, got shape {arr.shape} dtype {arr.dtype}")
    x = torch.from_numpy(np.array(arr, copy=True)).permute(2, 0, 1).float()
    return (x / 127.5 - 1.0).unsqueeze(0)


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an image file as a ``1 x 3 x H x W`` tensor in [-1, 1] (scaled as ``x / 127.5 - 1``)."""
    return to_tensor(open_rgb(path))


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, antialiased resize of an NCHW batch to ``size = (H, W)``; a no-op when equal."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    out = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return out.clamp(-1.0, 1.0)


def match_sizes(target: torch.Tensor, candidate: torch.Tensor,
                size: SizeRule = "target") -> tuple[torch.Tensor, torch.Tensor]:
    """A (target, candidate) pair of NCHW tensors at one size: the candidate resized (:func:`resize`) to the
    target's (``size="target"``), or both to ``size=(H, W)``.
    """
    if isinstance(size, str):
        if size != "target":
            raise ValueError(f"size must be 'target' or a (height, width) pair, got {size!r}")
        return target, resize(candidate, tuple(target.shape[-2:]))
    if len(size) != 2 or min(size) < min(MIN_SIZE.values()):
        raise ValueError(f"size must be a (height, width) pair of at least {min(MIN_SIZE.values())} pixels "
                         f"(the minimum per backbone is {MIN_SIZE}), got {size!r}")
    return resize(target, size), resize(candidate, size)
