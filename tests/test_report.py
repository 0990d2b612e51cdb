"""clpips.book.report: the one p-value formatter, the glue helper and the one-home helpers it reaches."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from clpips.book import report
from clpips.experiment import FIT_OPTIONS, fit_options_except
from clpips.model import CHANNELS, layer_slices


@pytest.mark.parametrize("p, prose, table", [
    (0.0341, "p = 0.034", "0.034"), (0.0001, "p < 0.001", "1.0e-04"), (1.0, "p = 1", "1"),
    (float("nan"), "p undefined", "—"), (None, "p undefined", "—"),
])
def test_format_p_prose_and_table(p, prose, table):
    assert report.format_p(p) == prose
    assert report.format_p(p, style="table") == table


def test_format_p_rejects_an_unknown_style():
    with pytest.raises(ValueError, match="style must be"):
        report.format_p(0.1, style="latex")


def test_glue_all_glues_each_value_once_with_python_scalars(monkeypatch):
    calls = []
    fake = types.ModuleType("myst_nb")
    fake.glue = lambda name, value, display=True: calls.append((name, value, display))
    monkeypatch.setitem(sys.modules, "myst_nb", fake)
    out = report.glue_all({"n": np.int64(3), "label": "good", "x": np.float64(0.25)}, prefix="nb99_")
    assert calls == [("nb99_n", 3, False), ("nb99_label", "good", False), ("nb99_x", 0.25, False)]
    assert type(out["nb99_n"]) is int and type(out["nb99_x"]) is float


@pytest.mark.parametrize("net", sorted(CHANNELS))
def test_layer_slices_cover_the_vector_in_layer_order(net):
    slices = layer_slices(net)
    assert [s.stop - s.start for s in slices] == list(CHANNELS[net])
    assert slices[0].start == 0 and slices[-1].stop == sum(CHANNELS[net])
    assert all(a.stop == b.start for a, b in zip(slices, slices[1:]))
    w = torch.arange(sum(CHANNELS[net]))
    assert torch.equal(torch.cat([w[s] for s in slices]), w)
    with pytest.raises(ValueError, match="net must be one of"):
        layer_slices("resnet")


def test_fit_options_subsets_keep_the_order_and_check_names():
    assert fit_options_except("init") == tuple(o for o in FIT_OPTIONS if o != "init")
    with pytest.raises(ValueError, match="not fit options"):
        fit_options_except("momentum")
