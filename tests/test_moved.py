"""clpips.moved: every old import path of the layered layout (#22) still works for one release, warns
once with the new path, and gives the very object the new path gives."""
from __future__ import annotations

import importlib
import sys

import pytest

from clpips.moved import MOVED, MOVED_NAMES


#: old names that keep their old signature through a small wrapper (alien_eggs' took its triplets unwrapped)
WRAPPED = {"clpips.datasets.alien_eggs.split_half", "clpips.datasets.alien_eggs.split_half_ranks"}


@pytest.mark.parametrize("old", sorted(MOVED_NAMES))
def test_a_moved_name_warns_and_is_the_new_object(old):
    module, _, name = old.rpartition(".")
    where, _, attribute = MOVED_NAMES[old].rpartition(".")
    with pytest.warns(DeprecationWarning, match=rf"{module}\.{name} moved to {MOVED_NAMES[old]}"):
        got = getattr(importlib.import_module(module), name)
    new = getattr(importlib.import_module(where), attribute)
    assert (callable(got) and got is not new) if old in WRAPPED else got is new


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
