"""Reading image files into the package's tensor convention, and matching sizes.

Any format Pillow reads is accepted; EXIF orientation is applied; grayscale,
palette and RGBA images are converted to RGB (alpha composited on white).

Size rule for a pair of different sizes: by default the candidate is resized to
the target's size (``size="target"``); ``size=(H, W)`` resizes both to a fixed
size. Resizing is bilinear with antialiasing.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

SizeRule = Union[str, tuple[int, int]]


class ImageReadError(ValueError):
    """An image file is missing or cannot be decoded."""


def open_rgb(path: str | os.PathLike) -> Image.Image:
    """Open ``path`` as an RGB PIL image with its EXIF orientation applied."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such image file")
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            img.load()
    except (UnidentifiedImageError, OSError) as err:
        raise ImageReadError(f"{path}: cannot decode image ({err})") from None
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


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
    """Apply the size rule to a (target, candidate) pair of NCHW tensors."""
    if isinstance(size, str):
        if size != "target":
            raise ValueError(f"size must be 'target' or a (height, width) pair, got {size!r}")
        return target, resize(candidate, tuple(target.shape[-2:]))
    if len(size) != 2 or min(size) < 16:
        raise ValueError(f"size must be a (height, width) pair of at least 16 pixels, got {size!r}")
    return resize(target, size), resize(candidate, size)
