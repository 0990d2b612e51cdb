"""Pair features: equal to the metric's own vectors, cached by image content."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clpips.features import pair_features
from clpips.images import load_image, match_sizes


class Folder:
    def __init__(self, root: Path):
        self.root = root

    def image_path(self, ref: str) -> Path:
        return self.root / ref


@pytest.fixture()
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CLPIPS_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for i, shape in enumerate([(48, 48), (48, 48), (48, 48), (60, 40)]):
        Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    return Folder(tmp_path)


PAIRS = [("0.png", "1.png"), ("0.png", "2.png"), ("1.png", "2.png"), ("0.png", "3.png"), ("0.png", "1.png")]


def test_features_equal_metric_vectors(folder, alex):
    feats = pair_features(folder, PAIRS, metric=alex, progress=False)
    assert feats.matrix.shape == (4, 1152)  # the duplicate pair is computed once
    for t, c in PAIRS:
        ti, ci = match_sizes(load_image(folder.image_path(t)), load_image(folder.image_path(c)))
        with torch.no_grad():
            direct = alex.feature_vector(ti, ci)[0]
        assert torch.allclose(feats.matrix[feats.index[(t, c)]], direct, atol=1e-7)
        assert float(feats.matrix[feats.index[(t, c)]] @ alex.weight_vector()) == pytest.approx(
            float(alex(ti, ci)), abs=1e-6)


def test_features_second_call_extracts_nothing(folder, alex):
    first = pair_features(folder, PAIRS, metric=alex, progress=False)
    second = pair_features(folder, PAIRS, metric=alex, progress=False)
    assert first.extracted == 4 and second.extracted == 0
    assert torch.equal(first.matrix, second.matrix)


def test_features_cache_keyed_by_content(folder, alex):
    first = pair_features(folder, PAIRS[:1], metric=alex, progress=False)
    Image.fromarray(np.zeros((48, 48, 3), dtype=np.uint8)).save(folder.root / "1.png")
    again = pair_features(folder, PAIRS[:1], metric=alex, progress=False)
    assert again.extracted == 1
    assert not torch.equal(first.matrix, again.matrix)


def test_features_fixed_size_is_a_separate_cache(folder, alex):
    pair_features(folder, PAIRS, metric=alex, progress=False)
    fixed = pair_features(folder, PAIRS, metric=alex, size=(32, 32), progress=False)
    assert fixed.extracted == 4


def test_features_unknown_pair_is_named(folder, alex):
    feats = pair_features(folder, PAIRS[:1], metric=alex, progress=False)
    with pytest.raises(KeyError, match="2.png"):
        feats.rows(["0.png"], ["2.png"])


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_features_memory_estimate_matches_activations(net, alex):
    """The chunking budget's bytes-per-pixel is what the backbone really holds (within 10%)."""
    from clpips.features import CHANNELS, LAYER_STRIDES
    import clpips

    metric = alex if net == "alex" else clpips.CLPIPS(net=net)
    with torch.no_grad():
        feats = metric.layer_features(torch.zeros(1, 3, 256, 256))
    actual = sum(f.numel() for f in feats) * 4 / 256 ** 2
    estimate = 4 * sum(c / s ** 2 for c, s in zip(CHANNELS[net], LAYER_STRIDES[net]))
    assert estimate == pytest.approx(actual, rel=0.1)
