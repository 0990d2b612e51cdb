"""Saving and loading fine-tuned linear weights; strict key checks."""
from __future__ import annotations

import json
import sys

import lpips
import pytest
import torch

import clpips
from clpips import model
from clpips.model import initial_weight_vector, sidecar_path
from tolerance import assert_same_computation, dot_bound


@pytest.fixture()
def tuned(alex):
    metric = clpips.CLPIPS(net="alex")
    gen = torch.Generator().manual_seed(5)
    metric.set_weight_vector(torch.rand(metric.weight_vector().numel(), generator=gen))
    metric.provenance = {"trained_on": "unit test", "seed": 5}
    return metric


def test_weights_round_trip(tuned, tmp_path):
    path = tuned.save_weights(tmp_path / "w.pth", provenance={"metrics": {"rho": 0.5}})
    loaded = clpips.CLPIPS(net="alex", linear=path)
    assert torch.equal(loaded.weight_vector(), tuned.weight_vector())
    meta = json.loads(sidecar_path(path).read_text())
    assert meta["net"] == "alex" and meta["seed"] == 5 and meta["metrics"] == {"rho": 0.5}
    assert meta["clpips_version"] == clpips.__version__
    assert loaded.provenance["trained_on"] == "unit test"


@pytest.mark.float_sensitive
def test_weights_load_in_plain_lpips(tuned, tmp_path):
    path = tuned.save_weights(tmp_path / "w.pth")
    ref = lpips.LPIPS(net="alex", model_path=str(path), pnet_rand=True, verbose=False)
    ref.net.load_state_dict(tuned.net.state_dict(), strict=True)
    # lpips loads with strict=False: check every linear layer really came from our file
    for i, lin in enumerate(ref.lins):
        assert torch.equal(lin.model[1].weight, tuned.lins[i].model[1].weight)
    gen = torch.Generator().manual_seed(6)
    x, y = torch.rand(2, 3, 64, 64, generator=gen) * 2 - 1, torch.rand(2, 3, 64, 64, generator=gen) * 2 - 1
    with torch.no_grad():
        assert_same_computation(ref(x, y), tuned(x, y), "lpips.LPIPS with our file against ours")


def test_weights_missing_key_is_named(alex, tmp_path):
    state = alex.linear_state()
    del state["lin3.model.1.weight"]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(KeyError, match=r"missing keys: \['lin3.model.1.weight'\]"):
        clpips.CLPIPS(linear=tmp_path / "bad.pth")


def test_weights_unexpected_key_is_named(alex, tmp_path):
    state = alex.linear_state()
    state["lin5.model.1.weight"] = torch.ones(1, 8, 1, 1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(KeyError, match=r"unexpected keys: \['lin5.model.1.weight'\]"):
        clpips.CLPIPS(linear=tmp_path / "bad.pth")


def test_weights_wrong_net_shape_is_named(tmp_path):
    vgg_file = clpips.CLPIPS(net="alex").save_weights(tmp_path / "alex.pth")
    with pytest.raises(ValueError, match=r"lin1.model.1.weight should have shape \(1, 128, 1, 1\)"):
        clpips.CLPIPS(net="vgg", linear=vgg_file)


def test_weights_unreadable_file(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="junk.pth: not a readable torch weights file"):
        clpips.CLPIPS(linear=tmp_path / "junk.pth")
    with pytest.raises(FileNotFoundError, match="no such weights file"):
        clpips.CLPIPS(linear=tmp_path / "absent.pth")


def test_weights_save_is_atomic(tuned, tmp_path, monkeypatch):
    path = tuned.save_weights(tmp_path / "w.pth")
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        clpips.CLPIPS().save_weights(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.json", "w.pth"]


@pytest.mark.float_sensitive
def test_weights_uniform_init_keeps_layer_sums(alex):
    uni = clpips.CLPIPS(linear="uniform")
    for a, b in zip(uni.linear_state().values(), alex.linear_state().values()):
        # two float32 sums of the same total (uniform weights keep each layer's sum): gamma_C bounds each
        assert abs(float(a.sum()) - float(b.sum())) <= dot_bound(float(b.abs().sum()), b.numel(), torch.float32)
        assert torch.all(a == a.flatten()[0])


def test_weights_file_of_a_list_is_named(alex, tmp_path):
    path = tmp_path / "list.pth"
    torch.save(list(alex.linear_state().values()), path)
    with pytest.raises(ValueError, match=r"list\.pth: expected a dict of tensors, got list$") as err:
        clpips.CLPIPS(net="alex", linear=path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_weights_without_a_sidecar_name_their_file_as_provenance(tuned, tmp_path):
    """A weights file saved by lpips (no JSON beside it) loads; its provenance is the file it came from."""
    path = tmp_path / "plain.pth"
    torch.save(tuned.linear_state(), path)
    loaded = clpips.CLPIPS(net="alex", linear=path)
    assert loaded.provenance == {"file": str(path)} and torch.equal(loaded.weight_vector(), tuned.weight_vector())


def test_weights_bad_init_net_and_vector_length_are_named(alex):
    with pytest.raises(ValueError, match=r"^linear init must be one of .*'lpips'.*, got 'zeros'$"):
        initial_weight_vector("alex", "zeros")
    with pytest.raises(ValueError, match=r"^net must be one of \('alex', 'vgg'\), got 'squeeze'$"):
        clpips.CLPIPS(net="squeeze")
    with pytest.raises(ValueError, match=r"^expected 1152 weights for net='alex', got 5$"):
        alex.set_weight_vector(torch.ones(5))


def test_official_weights_without_the_lpips_package_say_how_to_install_it(monkeypatch):
    """``find_spec`` finds no lpips (as when it is not installed: a None in sys.modules reads the same)."""
    monkeypatch.setitem(sys.modules, "lpips", None)
    model._official_linear_weights.cache_clear()                 # read afresh, not from the memory
    try:
        with pytest.raises(ModuleNotFoundError, match=r"^the lpips package is not installed \(pip install lpips\)$"):
            initial_weight_vector("alex", "lpips")
    finally:
        model._official_linear_weights.cache_clear()
