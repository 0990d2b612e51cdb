"""Bad image input gives a ValueError saying what was expected."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from clpips.images import ImageReadError, image_size, load_image, match_sizes, open_rgb, to_tensor


@pytest.mark.parametrize("bad, message", [
    (np.zeros((1, 3, 8, 8), dtype=np.float32), "expected a torch.Tensor"),
    (torch.zeros(3, 64, 64), "expected 4 dimensions"),
    (torch.zeros(1, 4, 64, 64), "expected 3 RGB channels"),
    (torch.zeros(1, 64, 64, 3), "expected 3 RGB channels"),
    (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), "expected a floating-point tensor"),
    (torch.full((1, 3, 64, 64), 2.0), r"expected values in \[-1, 1\]"),
    (torch.full((1, 3, 64, 64), 200.0), "divide by 127.5"),
    (torch.full((1, 3, 64, 64), float("nan")), "NaN"),
])
def test_inputs_bad_tensor_raises(alex, bad, message):
    good = torch.zeros(1, 3, 64, 64)
    with pytest.raises(ValueError, match=message):
        alex(bad, good)
    with pytest.raises(ValueError, match=message):
        alex(good, bad)


def test_inputs_normalize_rejects_negative(alex):
    x = torch.full((1, 3, 64, 64), -0.5)
    with pytest.raises(ValueError, match=r"expected values in \[0, 1\]"):
        alex(x, x, normalize=True)


def test_inputs_shape_mismatch_names_resize(alex):
    with pytest.raises(ValueError, match="match_sizes"):
        alex(torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 80))


def test_inputs_size_rule_candidate_to_target():
    t, c = torch.zeros(1, 3, 50, 60), torch.zeros(1, 3, 100, 30)
    t2, c2 = match_sizes(t, c)
    assert t2 is t and c2.shape == (1, 3, 50, 60)
    t3, c3 = match_sizes(t, c, (64, 64))
    assert t3.shape == c3.shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="size must be"):
        match_sizes(t, c, "candidate")


def test_inputs_image_modes_become_rgb(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert("L").save(tmp_path / "gray.png")
    rgba = Image.fromarray(rgb).convert("RGBA")
    rgba.putalpha(0)
    rgba.save(tmp_path / "clear.png")
    gray = load_image(tmp_path / "gray.png")
    assert gray.shape == (1, 3, 20, 30)
    assert torch.equal(gray[:, 0], gray[:, 1])
    clear = load_image(tmp_path / "clear.png")
    assert torch.equal(clear, torch.ones_like(clear))  # fully transparent -> white: 255 / 127.5 - 1 = 1 exactly


def test_inputs_exif_orientation_respected(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert open_rgb(tmp_path / "rot.jpg").size == (20, 40)


def test_inputs_unreadable_file(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ImageReadError, match="bad.png: cannot decode image"):
        load_image(tmp_path / "bad.png")
    with pytest.raises(ImageReadError, match="no such image file"):
        load_image(tmp_path / "absent.png")


# --------------------------------------------------------------------------- error branches (one line each)
def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(0, 3, 64, 64), r"in0: empty batch or image, shape \(0, 3, 64, 64\)"),
    (torch.zeros(1, 3, 0, 64), r"in0: empty batch or image, shape \(1, 3, 0, 64\)"),
    (torch.full((1, 3, 64, 64), 1.2), r"in0: expected values in \[-1, 1\], got \[1.2, 1.2\] \(pass normalize=True"),
])
def test_inputs_empty_or_zero_to_one_tensor_named(alex, bad, message):
    with pytest.raises(ValueError, match=message) as err:
        alex(bad, torch.zeros(1, 3, 64, 64))
    _one_line(err)


@pytest.mark.parametrize("value, said", [("lots", "is not a whole number of pixels"), ("0", "must be at least 1"),
                                         ("-5", "must be at least 1")])
def test_inputs_bad_max_pixels_variable_named(tmp_path, monkeypatch, value, said):
    Image.new("RGB", (40, 40)).save(tmp_path / "ok.png")
    monkeypatch.setenv("CLPIPS_MAX_PIXELS", value)
    with pytest.raises(ImageReadError, match=f"CLPIPS_MAX_PIXELS={value!r} {said}") as err:
        load_image(tmp_path / "ok.png")
    _one_line(err)


def test_inputs_float_image_with_nan_named(tmp_path):
    arr = np.full((40, 40), 0.5, dtype=np.float32)
    arr[3, 4] = np.nan
    Image.fromarray(arr, "F").save(tmp_path / "nan.tif")
    with pytest.raises(ImageReadError, match=r"nan\.tif: image \(mode F\) contains NaN or infinite values") as err:
        load_image(tmp_path / "nan.tif")
    _one_line(err)


def test_inputs_image_size_of_a_bad_file_is_open_rgbs_error(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ImageReadError, match=r"bad\.png: cannot decode image") as err:
        image_size(tmp_path / "bad.png")
    _one_line(err)
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ImageReadError, match=r"folder\.png: is a folder, not an image file"):
        image_size(tmp_path / "folder.png")


@pytest.mark.parametrize("bad", [np.zeros((8, 8), dtype=np.uint8), np.zeros((8, 8, 4), dtype=np.uint8),
                                 np.zeros((8, 8, 3), dtype=np.float32)])
def test_inputs_to_tensor_refuses_what_is_not_hw3_uint8(bad):
    with pytest.raises(ValueError, match=rf"expected an H x W x 3 uint8 RGB image, got shape "
                                         rf"{re.escape(str(bad.shape))} dtype {bad.dtype}"):
        to_tensor(bad)


@pytest.mark.parametrize("size", [(10, 64), (64, 15), (64,), (64, 64, 64)])
def test_inputs_fixed_size_below_the_minimum_or_not_a_pair_refused(size):
    x = torch.zeros(1, 3, 64, 64)
    with pytest.raises(ValueError, match=rf"size must be a \(height, width\) pair of at least 16 pixels .*got "
                                         rf"{re.escape(repr(size))}"):
        match_sizes(x, x, size)


def test_inputs_a_mode_that_cannot_become_rgb_is_named(tmp_path, monkeypatch):
    """No image file Pillow 13 writes has such a mode, so the decoder is replaced by one that gives an "La"
    image (luminance with premultiplied alpha), which Pillow cannot convert: one line naming file and mode."""
    import clpips.images as images
    Image.new("RGB", (40, 40)).save(tmp_path / "odd.png")
    monkeypatch.setattr(images.Image, "open", lambda path: Image.new("La", (40, 40)))
    with pytest.raises(ImageReadError, match=r"odd\.png: cannot convert mode La to RGB \(") as err:
        open_rgb(tmp_path / "odd.png")
    _one_line(err)
