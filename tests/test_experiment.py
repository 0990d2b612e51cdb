"""`clpips.experiment.run`'s fit cache: chapters 03, 04 and 05 (and `clpips fit`) run the same fit once."""
from __future__ import annotations

import pytest
import torch

from clpips import experiment, train
from clpips.datasets import load


@pytest.fixture()
def mur92(mur92_mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("CLPIPS_DATA_MIRROR", str(mur92_mirror))
    from clpips.paths import cache_dir
    weights = cache_dir() / "weights"
    if weights.is_dir():
        monkeypatch.setenv("CLPIPS_BACKBONE_WEIGHTS", str(weights))
    data = load("mur92")
    train.pair_features_for(data, data.table, progress=False)       # features in the session's cache first
    features_dir = cache_dir() / "features"
    monkeypatch.setenv("CLPIPS_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "features").symlink_to(features_dir)       # the fits' cache is new, the features not
    return data


def counting(monkeypatch) -> list:
    calls = []
    real = experiment.fit
    monkeypatch.setattr(experiment, "fit", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_a_second_run_reads_the_fit_and_gets_the_same_numbers(mur92, monkeypatch):
    calls = counting(monkeypatch)
    first = experiment.run(mur92, epochs=2, progress=False)
    second = experiment.run(mur92, epochs=2, progress=False)
    assert len(calls) == 1
    assert torch.equal(first.result.weights, second.result.weights)
    assert torch.equal(first.result.initial_weights, second.result.initial_weights)
    assert first.result.history.equals(second.result.history)
    assert (first.result.best_epoch, first.result.config, first.result.seconds) == \
        (second.result.best_epoch, second.result.config, second.result.seconds)
    assert first.table.equals(second.table)
    # the cached fit is what a fit without the cache gives (the fit is deterministic)
    fresh = experiment.run(mur92, epochs=2, progress=False, cache=False)
    assert len(calls) == 2 and torch.equal(fresh.result.weights, first.result.weights)


def test_other_settings_are_other_fits(mur92, monkeypatch):
    calls = counting(monkeypatch)
    base = experiment.run(mur92, epochs=2, progress=False)
    for change in ({"epochs": 3}, {"seed": 1}, {"test_size": 0.4}, {"margin": 0.2}):
        other = experiment.run(mur92, progress=False, **{"epochs": 2, **change})
        assert not torch.equal(other.result.weights, base.result.weights), change
    assert len(calls) == 5


def test_a_corrupt_fit_entry_is_named_and_refitted(mur92, monkeypatch):
    from clpips.features import CacheWarning
    from clpips.paths import cache_dir
    calls = counting(monkeypatch)
    first = experiment.run(mur92, epochs=2, progress=False)
    (entry,) = (cache_dir() / "fits").glob("*.pt")
    entry.write_bytes(entry.read_bytes()[:-10])
    with pytest.warns(CacheWarning, match=entry.name):
        again = experiment.run(mur92, epochs=2, progress=False)
    assert len(calls) == 2 and torch.equal(again.result.weights, first.result.weights)
