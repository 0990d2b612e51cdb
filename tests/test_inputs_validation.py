"""Bad image input gives a ValueError saying what was expected."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from clpips.images import ImageReadError, load_image, match_sizes, open_rgb


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
