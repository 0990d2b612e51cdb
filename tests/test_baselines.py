"""Baseline metrics: hand-computed values, scikit-image agreement, zero for identical images, orientation."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.ndimage import gaussian_filter

from clpips.book import baselines
from clpips.book.baselines import (BASELINES, add_baselines, l2_distance, lpips_distance, pixel_distances, psnr,
                              psnr_distance, ssim, ssim_distance)
from clpips.images import load_image, match_sizes, to_tensor
from tolerance import UNIT_ROUNDOFF, assert_same_computation, assert_within, dot_bound, typical_dot_bound


U64 = UNIT_ROUNDOFF[np.dtype(np.float64)]


def l2_rel(n: int) -> float:
    """Relative |difference| of two float64 means of ``n`` squared pixel differences (positive terms, images
    in [0, 1] taken exactly to float64): a square, a sum (gamma_n), a division each, in each program."""
    return dot_bound(1.0, n + 2, np.float64)


def psnr_abs(n: int, value: float) -> float:
    """|difference| of two float64 PSNRs ``10 log10(1 / MSE)`` of ``n`` values: ``10 / ln 10`` times the MSE's
    relative one (:func:`l2_rel`), plus the logarithm's and the product's roundings of ``value``."""
    return 10 / math.log(10) * l2_rel(n) + 4 * U64 * abs(value)


def ssim_abs(taps: int = 22) -> float:
    """|difference| of two float64 SSIMs of images in [0, 1]: every local mean, square or product mean is a
    Gaussian filter (two passes of 11 taps at sigma 1.5), within g = gamma_taps of exact (values <= 1); a
    variance or covariance (a filtered square minus a product of means) within 3 g + 2 u. SSIM's two factors
    (2 mx my + c1) / (mx^2 + my^2 + c1) and (2 cxy + c2) / (vx + vy + c2) lie in [-1, 1] with denominators
    >= c1 = 1e-4 and c2 = 9e-4: they move by at most 8 g / c1 and 4 (3 g + 2 u) / c2, per pixel and so for
    the mean; two programs, twice that."""
    g = dot_bound(1.0, taps, np.float64, computations=1)
    return 2 * (8 * g / 0.01 ** 2 + 4 * (3 * g + 2 * U64) / 0.03 ** 2)


def _random_images(n=2, h=32, w=40, seed=0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.cat([to_tensor(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for _ in range(n)])


def _noisy(x: torch.Tensor, sigma: float, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=gen)).clamp(-1, 1)


# --------------------------------------------------------------------------- hand-computed values
@pytest.mark.float_sensitive
def test_l2_and_psnr_hand_computed():
    # two 1-pixel... 2 x 2 images: x all -1 (black), y with known values on the [0, 1] scale
    x = torch.full((1, 3, 2, 2), -1.0)
    y01 = np.array([0.0, 0.5, 1.0, 0.25] * 3, dtype=float).reshape(1, 3, 2, 2)
    y = torch.tensor(y01 * 2 - 1, dtype=torch.float32)
    mse = np.mean((y01 - 0.0) ** 2)           # = (0 + 0.25 + 1 + 0.0625) / 4
    assert mse == pytest.approx(0.328125)
    # float32 from exactly representable inputs: the mean of 12 squares errs by at most gamma_13 mse (the
    # division adds one rounding); log10 turns a relative error e into 10 / ln 10 * e decibels, plus its own
    # rounding and the final products' (tolerance.py)
    rel = dot_bound(1.0, 13, torch.float32, computations=1)
    u = UNIT_ROUNDOFF[torch.float32]
    assert abs(float(l2_distance(x, y)) - mse) <= rel * mse
    exact = 10 * math.log10(1 / mse)
    db = 10 / math.log(10) * (rel + 2 * u) + 4 * u * exact
    assert abs(float(psnr(x, y)) - exact) <= db
    assert abs(float(psnr_distance(x, y)) - 1 / exact) <= (db / exact + 2 * u) / exact


def test_psnr_matches_skimage():
    from skimage.metrics import peak_signal_noise_ratio
    x = _random_images(3)
    y = _noisy(x, 0.2)
    ours = psnr(x, y).numpy()
    ref = [peak_signal_noise_ratio(((a.double() + 1) / 2).permute(1, 2, 0).numpy(),
                                   ((b.double() + 1) / 2).permute(1, 2, 0).numpy(), data_range=1.0)
           for a, b in zip(x, y)]
    np.testing.assert_allclose(ours, ref, rtol=0, atol=psnr_abs(3 * 32 * 40, max(ref)))


def test_l2_batch_is_per_image():
    x = _random_images(3)
    y = _random_images(3, seed=5)
    x01, y01 = ((x.double() + 1) / 2).numpy(), ((y.double() + 1) / 2).numpy()
    np.testing.assert_allclose(l2_distance(x, y).numpy(), ((x01 - y01) ** 2).mean(axis=(1, 2, 3)),
                               rtol=l2_rel(3 * 32 * 40))


# --------------------------------------------------------------------------- SSIM
def test_ssim_matches_skimage_call():
    from skimage.metrics import structural_similarity
    x = _random_images(2, 48, 48)
    y = _noisy(x, 0.3)
    ours = ssim(x, y).numpy()
    for i in range(2):
        a = ((x[i].double() + 1) / 2).permute(1, 2, 0).numpy()
        b = ((y[i].double() + 1) / 2).permute(1, 2, 0).numpy()
        ref = structural_similarity(a, b, data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False)
        assert ours[i] == pytest.approx(ref, abs=ssim_abs())


def _ssim_wang(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. (2004) SSIM written out: Gaussian sigma 1.5 (11 x 11), K1=0.01, K2=0.03, L=1,
    per channel, border of 5 pixels cropped, mean over pixels and channels."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    values = []
    for ch in range(a.shape[2]):
        x, y = a[..., ch], b[..., ch]
        f = lambda z: gaussian_filter(z, sigma=1.5, truncate=3.5, mode="reflect")  # noqa: E731
        mx, my = f(x), f(y)
        vx, vy, cxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
        values.append(s[5:-5, 5:-5].mean())
    return float(np.mean(values))


def test_ssim_is_wang_et_al():
    x = _random_images(1, 40, 40, seed=3)
    y = _noisy(x, 0.25, seed=4)
    a = ((x[0].double() + 1) / 2).permute(1, 2, 0).numpy()
    b = ((y[0].double() + 1) / 2).permute(1, 2, 0).numpy()
    assert float(ssim(x, y)) == pytest.approx(_ssim_wang(a, b), abs=ssim_abs())


# --------------------------------------------------------------------------- conventions
@pytest.mark.parametrize("fn", [l2_distance, psnr_distance, ssim_distance])
def test_identical_images_zero_pixel(fn):
    x = _random_images(2)
    np.testing.assert_array_equal(fn(x, x.clone()).numpy(), 0.0)


def test_identical_images_zero_lpips_variants():
    x = _random_images(1, 64, 64)
    for net, linear in (("vgg", "lpips"), ("alex", "ones")):
        # one network on equal inputs: equal features, so every squared difference is 0 exactly
        assert float(lpips_distance(x, x.clone(), net=net, linear=linear)) == 0.0


@pytest.mark.parametrize("fn", [l2_distance, psnr_distance, ssim_distance,
                                lambda x, y: lpips_distance(x, y, "vgg", "lpips"),
                                lambda x, y: lpips_distance(x, y, "alex", "ones")])
def test_orientation_lower_is_more_similar(fn):
    x = _random_images(1, 64, 64, seed=7)
    near, far = _noisy(x, 0.05, seed=8), _noisy(x, 0.6, seed=9)
    d_near, d_far = float(fn(x, near)), float(fn(x, far))
    assert 0 < d_near < d_far


def test_psnr_orders_like_l2():
    x = _random_images(1, 32, 32).expand(6, -1, -1, -1)
    y = torch.cat([_noisy(x[:1], s, seed=i) for i, s in enumerate([0.4, 0.05, 0.2, 0.1, 0.8, 0.3])])
    assert np.array_equal(np.argsort(l2_distance(x, y).numpy()), np.argsort(psnr_distance(x, y).numpy()))


def test_inputs_checked():
    x = _random_images(1)
    with pytest.raises(ValueError, match="same shape"):
        l2_distance(x, x[..., :-1])
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        ssim_distance(x * 3, x)


def test_labels_cover_baselines():
    assert set(BASELINES) <= set(baselines.LABELS)
    assert baselines.label("lpips_vgg") == baselines.LABELS["lpips_vgg"] and baselines.label("x") == "x"


# --------------------------------------------------------------------------- a ranking table
class _Folder:
    """A minimal dataset: image references are file names under ``root``."""

    def __init__(self, root: Path):
        self.root = root

    def image_path(self, ref: str) -> Path:
        return self.root / ref


@pytest.fixture()
def study(tmp_path, monkeypatch):
    """Four random images (one of another size, to exercise resizing), two sets ranked by two raters;
    feature caches in a temporary folder, the converted backbone weights where they are."""
    from clpips.paths import cache_dir
    from PIL import Image
    weights = cache_dir() / "weights"
    if weights.is_dir():
        monkeypatch.setenv("CLPIPS_BACKBONE_WEIGHTS", str(weights))
    monkeypatch.setenv("CLPIPS_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for i, shape in enumerate([(64, 64), (64, 64), (64, 64), (80, 56)]):
        Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    rows = []
    for set_id, target, cands in (("s1", "0.png", ["1.png", "2.png", "3.png"]),
                                  ("s2", "1.png", ["0.png", "2.png", "3.png"])):
        for rater, order in (("alice", [1, 2, 3]), ("bob", [3, 1, 2])):
            rows += [{"set_id": set_id, "target": target, "candidate": c, "rater": rater, "rank": r}
                     for c, r in zip(cands, order)]
    return _Folder(tmp_path), pd.DataFrame(rows)


def test_pixel_distances_each_pair_once(study):
    data, table = study
    pairs = list(table[["target", "candidate"]].itertuples(index=False, name=None))
    dist = pixel_distances(data, pairs)
    assert len(dist) == len(set(pairs)) == 6 and list(dist.columns) == ["l2", "psnr", "ssim"]
    t, c = "0.png", "3.png"  # the candidate is resized to the target's size
    ti, ci = match_sizes(load_image(data.image_path(t)), load_image(data.image_path(c)))
    # the same float64 functions, batched otherwise: the bounds above
    assert dist.loc[(t, c), "l2"] == pytest.approx(float(l2_distance(ti, ci)), rel=l2_rel(ti.numel()))
    assert dist.loc[(t, c), "ssim"] == pytest.approx(float(ssim_distance(ti, ci)), abs=ssim_abs())


@pytest.mark.float_sensitive
def test_add_baselines_matches_direct_computation(study):
    data, table = study
    scored = add_baselines(table, data)
    assert set(BASELINES) <= set(scored.columns) and len(scored) == len(table)
    assert "ranking" in scored.columns
    for _, row in scored.iloc[[0, 2]].iterrows():
        ti, ci = match_sizes(load_image(data.image_path(row["target"])), load_image(data.image_path(row["candidate"])))
        # the cached features' path and a direct forward pass: the same network, batched otherwise (tolerance.py)
        assert_same_computation(row["lpips_vgg"], lpips_distance(ti, ci, "vgg", "lpips").double().reshape(()),
                                "lpips_vgg", dtype=torch.float32)
        assert_same_computation(row["lpips_ones"], lpips_distance(ti, ci, "alex", "ones").double().reshape(()),
                                "lpips_ones", dtype=torch.float32)
        assert row["psnr"] == pytest.approx(float(psnr_distance(ti, ci)), abs=psnr_abs(ti.numel(), row["psnr"]))
    # the same pair in two rankings gets the same distance
    assert (scored.groupby(["target", "candidate"])[list(BASELINES)].nunique() == 1).all().all()


@pytest.mark.float_sensitive
def test_add_baselines_caches_every_pair_of_the_dataset(study):
    """Scoring some rows with a backbone runs it over their images once and caches every pair of the
    dataset's table: a later call for the rest extracts nothing (chapter 06 after chapter 04)."""
    from clpips.features import pair_features
    data, table = study
    data.table = table
    held_out = table[table["set_id"] == "s1"]
    scored = add_baselines(held_out, data, ["lpips_vgg"])
    every = list(dict.fromkeys(table[["target", "candidate"]].itertuples(index=False, name=None)))
    assert len(every) > held_out[["target", "candidate"]].drop_duplicates().shape[0]
    later = pair_features(data, every, net="vgg")
    assert later.extracted == 0
    # and the scores are those of the cached vectors
    rows = later.rows(scored["target"], scored["candidate"])
    from clpips.model import initial_weight_vector
    w = initial_weight_vector("vgg", "lpips")
    expected = (later.matrix[rows] @ w).numpy()
    terms = (later.matrix[rows].abs() @ w.abs()).numpy()          # sum |phi_i w_i| of each product
    n = later.matrix.shape[1]
    assert_within(scored["lpips_vgg"].to_numpy(), expected, dot_bound(terms, n, torch.float32),
                  typical_dot_bound(terms, n, torch.float32), "scores of the cached vectors")


def test_add_baselines_rejects_unknown(study):
    data, table = study
    with pytest.raises(ValueError, match="unknown baseline"):
        add_baselines(table, data, ["lpips_squeeze"])
