"""clpips.moved: every old import path of the layered layout (#22) still works for one release, warns
once with the new path, and gives the very object the new path gives."""
from __future__ import annotations

import importlib
import sys

import numpy as np
import pandas as pd
import pytest

from clpips.moved import MOVED, MOVED_NAMES


#: old names that keep their old signature through a small wrapper (alien_eggs' took its triplets unwrapped)
WRAPPED = {"clpips.datasets.alien_eggs.split_half", "clpips.datasets.alien_eggs.split_half_ranks"}


#: old methods that became functions of another layer: the class's ``__getattr__`` answers them, bound to the object
METHODS = {old for old in MOVED_NAMES if old.startswith("clpips.protocol.CrossvalResult.")}


@pytest.mark.parametrize("old", sorted(set(MOVED_NAMES) - METHODS))
def test_a_moved_name_warns_and_is_the_new_object(old):
    module, _, name = old.rpartition(".")
    where, _, attribute = MOVED_NAMES[old].rpartition(".")
    with pytest.warns(DeprecationWarning, match=rf"{module}\.{name} moved to {MOVED_NAMES[old]}"):
        got = getattr(importlib.import_module(module), name)
    new = getattr(importlib.import_module(where), attribute)
    assert (callable(got) and got is not new) if old in WRAPPED else got is new


@pytest.mark.parametrize("old", sorted(METHODS))
def test_a_moved_method_warns_and_calls_the_new_function_on_its_object(old, monkeypatch):
    from clpips.protocol import CrossvalResult
    name = old.rpartition(".")[2]
    where, _, attribute = MOVED_NAMES[old].rpartition(".")
    monkeypatch.setattr(importlib.import_module(where), attribute, lambda result, *args, **kw: (result, args, kw))
    result = CrossvalResult(folds=pd.DataFrame(), inner=pd.DataFrame(), oof=pd.DataFrame(), weights=np.zeros((0, 1)))
    with pytest.warns(DeprecationWarning, match=rf"{old} moved to {MOVED_NAMES[old]}"):
        method = getattr(result, name)
    assert method(1, ci=0.9) == (result, (1,), {"ci": 0.9})
    with pytest.raises(AttributeError):
        result.no_such_method


@pytest.mark.parametrize("old", sorted(MOVED))
def test_a_moved_module_imports_under_its_old_name_as_the_new_module(old, monkeypatch):
    new = importlib.import_module(MOVED[old])
    monkeypatch.delitem(sys.modules, old, raising=False)      # as in a fresh process: the first import warns
    with pytest.warns(DeprecationWarning, match=rf"{old} moved to {MOVED[old]}"):
        got = importlib.import_module(old)
    assert got is new


def test_a_name_that_never_moved_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'no_such_thing'"):
        getattr(importlib.import_module("clpips.stats"), "no_such_thing")


def test_the_deprecated_layer_weights_warns_and_sums_each_layers_weights():
    import torch

    from clpips.model import layer_slices
    from clpips.train import FitResult
    before = torch.rand(1152, generator=torch.Generator().manual_seed(0))
    after = torch.where(torch.arange(1152) % 3 == 0, torch.zeros(1152), before * 2)
    result = FitResult(weights=after, initial_weights=before, history=pd.DataFrame(), best_epoch=1)
    with pytest.warns(DeprecationWarning, match="layer_summary"):
        table = result.layer_weights()
    for layer, part in enumerate(layer_slices("alex")):          # a direct loop over each layer's channels
        row = table.loc[layer]
        assert row["channels"] == part.stop - part.start
        assert row["sum_before"] == pytest.approx(sum(float(x) for x in before[part]), rel=1e-5)
        assert row["sum_after"] == pytest.approx(sum(float(x) for x in after[part]), rel=1e-5)
        assert row["zero_share_after"] == pytest.approx(sum(float(x) == 0 for x in after[part]) / len(after[part]))
