"""Ordered pairs from rankings."""
from __future__ import annotations

import pandas as pd
import pytest

from clpips.pairs import ranking_pairs


def _table():
    rows = []
    for rater, order in [("ann", ["a", "b", "c", "d"]), ("bob", ["d", "c", "b", "a"])]:
        for rank, cand in enumerate(order, start=1):
            rows.append({"set_id": "s1", "target": "t", "candidate": cand, "rater": rater, "rank": rank})
    return pd.DataFrame(rows)


def test_pairs_count_is_k_choose_2_per_ranking():
    pairs = ranking_pairs(_table())
    assert len(pairs) == 2 * 6
    assert (pairs["rank_better"] < pairs["rank_worse"]).all()


def test_pairs_orientation_follows_rank():
    pairs = ranking_pairs(_table(), rater="ann")
    assert set(map(tuple, pairs[["better", "worse"]].values)) == {
        ("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"), ("b", "d"), ("c", "d")}
    bob = ranking_pairs(_table(), rater="bob")
    assert ("d", "a") in set(map(tuple, bob[["better", "worse"]].values))


def test_pairs_ties_give_no_pair():
    t = _table().astype({"rank": float})
    t.loc[(t.rater == "ann") & (t.candidate == "b"), "rank"] = 1.5
    t.loc[(t.rater == "ann") & (t.candidate == "a"), "rank"] = 1.5
    pairs = ranking_pairs(t, rater="ann")
    assert len(pairs) == 5
    assert not {("a", "b"), ("b", "a")} & set(map(tuple, pairs[["better", "worse"]].values))


def test_pairs_per_rater_needs_a_rater():
    with pytest.raises(ValueError, match="needs a rater"):
        ranking_pairs(_table(), pool=False)
    with pytest.raises(ValueError, match="rater 'eve' has no rankings"):
        ranking_pairs(_table(), rater="eve")
