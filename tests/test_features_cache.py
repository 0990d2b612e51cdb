"""Pair features: equal to the metric's own vectors, cached by image content."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from clpips.features import pair_features
from clpips.images import ImageReadError, load_image, match_sizes
from tolerance import assert_same_computation
from helpers import Folder


@pytest.fixture()
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CLPIPS_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for i, shape in enumerate([(48, 48), (48, 48), (48, 48), (60, 40)]):
        Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    return Folder(tmp_path)


PAIRS = [("0.png", "1.png"), ("0.png", "2.png"), ("1.png", "2.png"), ("0.png", "3.png"), ("0.png", "1.png")]


@pytest.mark.float_sensitive
def test_features_equal_metric_vectors(folder, alex):
    feats = pair_features(folder, PAIRS, metric=alex, progress=False)
    assert feats.matrix.shape == (4, 1152)  # the duplicate pair is computed once
    for t, c in PAIRS:
        ti, ci = match_sizes(load_image(folder.image_path(t)), load_image(folder.image_path(c)))
        with torch.no_grad():
            direct = alex.feature_vector(ti, ci)[0]
        # batched and cached against the pair alone: the same network summed in other orders (tolerance.py)
        assert_same_computation(feats.matrix[feats.index[(t, c)]], direct, f"features of {t, c}")
        assert_same_computation(feats.matrix[feats.index[(t, c)]] @ alex.weight_vector(), alex(ti, ci).flatten()[0],
                                f"distance of {t, c}")


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
    from clpips.features import activation_bytes
    import clpips

    metric = alex if net == "alex" else clpips.CLPIPS(net=net)
    with torch.no_grad():
        feats = metric.layer_features(torch.zeros(1, 3, 256, 256))
    actual = sum(f.numel() for f in feats) * 4
    # not a float tolerance: the budget's model of the activations (a per-pixel estimate) against the count
    assert activation_bytes(net, 256, 256) == pytest.approx(actual, rel=0.1)


@pytest.fixture()
def counted(alex, monkeypatch):
    """``alex`` whose backbone calls are counted (batch sizes), with an empty memory of kept activations."""
    from clpips import features
    monkeypatch.setattr(features, "_KEPT", features._Kept())
    calls: list[int] = []
    real = alex.layer_features
    monkeypatch.setattr(alex, "layer_features", lambda x: calls.append(int(x.shape[0])) or real(x))
    return alex, calls


@pytest.mark.float_sensitive
def test_layer_activations_are_the_backbone_s_and_kept(folder, counted):
    from clpips.features import layer_activations
    alex, calls = counted
    images = {(f"sha{i}", 48, 48): load_image(folder.image_path(f"{i}.png")) for i in range(3)}
    first = layer_activations(alex, images, batch_size=2)
    assert calls == [3]                       # 2 + a last batch of one: one batch of 3
    for key, x in images.items():
        with torch.no_grad():
            direct = type(alex).layer_features(alex, x)          # the backbone on the image alone, uncounted
        assert len(first[key]) == 5 and all(a.shape[0] == 1 for a in first[key])
        for layer, (a, b) in enumerate(zip(first[key], direct)):
            assert_same_computation(a, b, f"layer {layer} of {key}")
    again = layer_activations(alex, {**images, ("sha3", 60, 40): load_image(folder.image_path("3.png"))})
    assert calls == [3, 2]                    # only the new image ran, alone: in a batch of two
    assert all(torch.equal(again[k][0], first[k][0]) for k in images)


def test_layer_activations_keep_within_the_budget(folder, counted, monkeypatch):
    from clpips import features
    alex, calls = counted
    images = {(f"sha{i}", 48, 48): load_image(folder.image_path(f"{i}.png")) for i in range(3)}
    with torch.no_grad():
        one = sum(f.numel() * f.element_size() for f in type(alex).layer_features(alex, images[("sha0", 48, 48)]))
    monkeypatch.setattr(features, "KEEP_BUDGET", 1.5 * one)
    features.layer_activations(alex, images)
    assert len(features._KEPT.layers) == 1 and features._KEPT.bytes <= features.KEEP_BUDGET
    features.layer_activations(alex, images)
    assert calls == [3, 2]                    # the two not kept ran again


def test_features_and_embeddings_share_one_backbone_pass(folder, counted):
    """Pair features, then embeddings of the same images at their own size: the backbone runs once."""
    from clpips.book.aligned import image_embeddings
    alex, calls = counted
    pair_features(folder, PAIRS[:3], metric=alex, progress=False)    # 0, 1, 2 at their own size (48 x 48)
    ran = sum(calls)
    emb = image_embeddings(folder, ["0.png", "1.png", "2.png"], metric=alex)
    assert sum(calls) == ran and emb.extracted == 3


@pytest.mark.float_sensitive
def test_features_progress_counts_an_image_at_two_sizes_twice(folder, alex, monkeypatch, capsys):
    """1.png is the candidate of a 60 x 40 target and of a 48 x 48 one: it runs through the backbone at both
    sizes, so the bar, which starts at the 3 distinct images, ends at 4 of 4 (never 4 of 3)."""
    from clpips import features
    monkeypatch.setattr(features, "_KEPT", features._Kept())
    feats = pair_features(folder, [("3.png", "1.png"), ("0.png", "1.png")], metric=alex, cache=False)
    bar = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert " 4/4 " in bar, bar
    for t, c in feats.keys:
        x, y = match_sizes(load_image(folder.image_path(t)), load_image(folder.image_path(c)))
        with torch.no_grad():
            want = alex.feature_vector(x, y)[0]
        assert_same_computation(feats.matrix[feats.index[(t, c)]], want, f"{t}, {c}")


def test_features_an_undecodable_image_is_named_in_one_line(folder, alex):
    (folder.root / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ImageReadError, match=r"bad\.png: cannot decode image") as err:
        pair_features(folder, [("0.png", "bad.png"), ("bad.png", "1.png")], metric=alex, progress=False)
    assert str(folder.root / "bad.png") in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("content", [{"other": torch.zeros(2)}, [torch.zeros(1, 1152)]])
def test_features_an_entry_holding_something_else_is_named_and_rebuilt(folder, alex, content):
    from clpips import atomic
    from clpips.features import CacheWarning, feature_store
    first = pair_features(folder, PAIRS, metric=alex, progress=False)
    entry = sorted(feature_store("alex", "target").glob("*.pt"))[0]
    atomic.write_checked(entry, atomic.torch_bytes(content))            # its checksum matches: the content is wrong
    with pytest.warns(CacheWarning, match=rf"{entry.name}: cache entry does not hold candidates and their "
                                          r"1152-number finite vectors; removed it, rebuilding"):
        second = pair_features(folder, PAIRS, metric=alex, progress=False)
    assert second.extracted > 0 and torch.equal(second.matrix, first.matrix)
