"""Splits by target: no target on both sides, seeded, deterministic."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from clpips.datasets import kfold_by_target, split_by_target


@pytest.fixture
def table() -> pd.DataFrame:
    """20 targets, each ranked in two sets (two raters) with three candidates."""
    rows = [(f"{t}-{r}", f"t{t:02d}.png", f"c{c}.png", r, c + 1)
            for t in range(20) for r in ("a", "b") for c in range(3)]
    return pd.DataFrame(rows, columns=["set_id", "target", "candidate", "rater", "rank"])


def test_split_keeps_each_target_on_one_side(table):
    train, test = split_by_target(table)
    assert not set(train["target"]) & set(test["target"])
    assert test["target"].nunique() == 6 and train["target"].nunique() == 14  # 30 % of 20 targets
    assert len(train) + len(test) == len(table)
    assert train.index.is_monotonic_increasing and test.index.is_monotonic_increasing


def test_split_is_seeded(table):
    first, again, other = (split_by_target(table, seed=s)[1] for s in (0, 0, 1))
    assert first.equals(again)
    assert set(first["target"]) != set(other["target"])


def test_split_does_not_depend_on_row_order(table):
    shuffled = table.sample(frac=1, random_state=3)
    assert set(split_by_target(shuffled)[1]["target"]) == set(split_by_target(table)[1]["target"])


def test_split_holds_out_at_least_one_target(table):
    assert split_by_target(table, test_size=0.01)[1]["target"].nunique() == 1
    assert split_by_target(table, test_size=0.99)[0]["target"].nunique() == 1
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        split_by_target(table, test_size=1.0)


def test_kfold_tests_every_target_exactly_once(table):
    folds = list(kfold_by_target(table, n_splits=3, seed=0))
    tested = [t for _, test in folds for t in test["target"].unique()]
    assert sorted(tested) == sorted(table["target"].unique())
    assert [test["target"].nunique() for _, test in folds] == [7, 7, 6]
    for train, test in folds:
        assert not set(train["target"]) & set(test["target"])
    again = list(kfold_by_target(table, n_splits=3, seed=0))
    assert all(a[1].equals(b[1]) for a, b in zip(folds, again))
    with pytest.raises(ValueError, match="n_splits"):
        next(kfold_by_target(table, n_splits=21))


def test_shared_pair_share_of_an_empty_held_out_side_is_nan(table):
    """No held-out row: the share (rows sharing a pair / held-out rows) is 0/0, undefined, not 0."""
    from clpips.datasets.splits import shared_pair_share
    assert math.isnan(shared_pair_share(table, table.iloc[:0]))
    assert shared_pair_share(table, table) == 1.0                  # and a side shares all its own pairs
