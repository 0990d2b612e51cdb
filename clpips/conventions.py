"""The conventions of this package, stated once and checked at the edges.

* **Images** are ``torch.Tensor`` of shape ``N x 3 x H x W`` (NCHW), RGB, floating
  point, with values in ``[-1, 1]`` (the ``lpips`` convention). Functions that
  accept ``normalize=True`` take ``[0, 1]`` instead and rescale.
* **Distances**: lower = more similar; a distance of 0 means identical images.
* **Ranks**: rank 1 = most similar to the target; a set of ``k`` candidates is
  ranked ``1..k``.
"""
from __future__ import annotations

import torch

#: numerical slack when checking the value range (images rescaled from uint8
#: can land a few ulps outside the nominal interval).
RANGE_TOLERANCE = 1e-5

#: the smallest height and width (pixels) each backbone takes, measured on the LPIPS
#: slices: AlexNet's stride-4 conv1 and two 3x3/2 max-pools leave no pixel below 31;
#: VGG16's four 2x2 max-pools inside LPIPS's five slices, below 16
#: (``tests/test_hardening.py::test_min_size_is_the_measured_one`` checks both bounds)
MIN_SIZE = {"alex": 31, "vgg": 16}


def check_size(size: tuple[int, int], net: str, name: str = "image") -> None:
    """Raise a one-line ValueError naming ``name`` if ``size = (H, W)`` is below ``net``'s :data:`MIN_SIZE`."""
    low = MIN_SIZE.get(net, max(MIN_SIZE.values()))
    height, width = (int(v) for v in size)
    if height < low or width < low:
        raise ValueError(f"{name}: {height} x {width} pixels is smaller than the {low} x {low} that "
                         f"net={net!r} takes (clpips.conventions.MIN_SIZE); use a larger image or --size")


def check_images(x: object, name: str = "images", normalize: bool = False) -> torch.Tensor:
    """``x`` if it is an ``N x 3 x H x W`` floating-point RGB batch in ``[-1, 1]`` (``[0, 1]`` with
    ``normalize``), else a ValueError naming ``name``, what was expected and what was given.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor of shape N x 3 x H x W, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name}: expected 4 dimensions N x 3 x H x W (NCHW), got shape {tuple(x.shape)}")
    if x.shape[1] != 3:
        raise ValueError(f"{name}: expected 3 RGB channels in dimension 1 (NCHW), got shape {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        raise ValueError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}; "
                         "convert uint8 images with clpips.images.to_tensor")
    if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"{name}: empty batch or image, shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    low, high = (0.0, 1.0) if normalize else (-1.0, 1.0)
    lo, hi = float(x.min()), float(x.max())
    if lo < low - RANGE_TOLERANCE or hi > high + RANGE_TOLERANCE:
        if hi > 1.5:
            hint = " (images in [0, 255]? divide by 127.5 and subtract 1)"
        elif not normalize and lo >= 0:
            hint = " (pass normalize=True for images in [0, 1])"
        else:
            hint = ""
        raise ValueError(f"{name}: expected values in [{low:g}, {high:g}], got [{lo:.4g}, {hi:.4g}]{hint}")
    return x
