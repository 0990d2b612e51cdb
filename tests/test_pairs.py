"""Ordered pairs from rankings."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from clpips.features import PairFeatures
from clpips.pairs import PAIR_COLUMNS, ranking_pair_positions, ranking_pairs
from clpips.train import pair_index, ranking_pair_index


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


def _merged_pairs(table: pd.DataFrame) -> pd.DataFrame:
    """The definition, written as the table's self-merge on (set_id, rater) (how ranking_pairs was built
    until its pairs were taken by position): every (better, worse) of a ranking with a smaller rank
    first, sorted by set, rater, then the two ranks (stable: the rows' order breaks ties)."""
    rows = table[["set_id", "rater", "target", "candidate", "rank"]]
    left = rows.rename(columns={"candidate": "better", "rank": "rank_better"})
    right = rows.rename(columns={"candidate": "worse", "rank": "rank_worse"}).drop(columns="target")
    pairs = left.merge(right, on=["set_id", "rater"])
    pairs = pairs[pairs["rank_better"] < pairs["rank_worse"]]
    pairs = pairs.sort_values(["set_id", "rater", "rank_better", "rank_worse"], kind="stable")
    return pairs[PAIR_COLUMNS].reset_index(drop=True)


def _random_table(seed: int, ties: bool) -> pd.DataFrame:
    """Rankings of 2 to 7 candidates by string or integer raters, with ties if asked, rows shuffled."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(25):
        k = int(rng.integers(2, 8))
        cands = rng.choice(30, size=k, replace=False)
        for rater in rng.choice([3, 1, 2] if seed % 2 else ["zoe", "al", "mo"], size=2, replace=False):
            ranks = rng.permutation(k) + 1.0
            if ties:
                ranks = np.floor(ranks / 2) + 1.0           # pairs of equal ranks
            for c, r in zip(cands, ranks):
                rows.append({"set_id": f"s{int(rng.integers(0, 10))}-{s}", "target": f"t{s}.png",
                             "candidate": f"c{c}.png", "rater": rater, "rank": r})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("ties", [False, True])
def test_pairs_by_position_equal_the_self_merge(seed, ties):
    """ranking_pairs (and the row positions behind it) give exactly the self-merge's pairs, in its
    order, with or without tied ranks, for string or integer raters and rankings of several sizes;
    ranking_pair_index equals pair_index of those pairs."""
    table = _random_table(seed, ties)
    expected = _merged_pairs(table)
    got = ranking_pairs(table)
    pd.testing.assert_frame_equal(got, expected)
    better, worse = ranking_pair_positions(table)
    assert list(table["candidate"].to_numpy()[better]) == list(expected["better"])
    assert list(table["candidate"].to_numpy()[worse]) == list(expected["worse"])
    keys = list(dict.fromkeys(zip(table["target"], table["candidate"])))
    features = PairFeatures(keys=keys, matrix=torch.zeros(len(keys), 3), net="alex", extracted=0)
    assert torch.equal(ranking_pair_index(features, table), pair_index(features, expected))
    for rater in table["rater"].unique():
        pd.testing.assert_frame_equal(ranking_pairs(table, rater=rater),
                                      _merged_pairs(table[table["rater"] == rater]))


def test_pairs_of_an_empty_table():
    empty = _table().iloc[:0]
    assert ranking_pairs(empty).empty and list(ranking_pairs(empty).columns) == PAIR_COLUMNS
    keys = [("t", "a")]
    features = PairFeatures(keys=keys, matrix=torch.zeros(1, 3), net="alex", extracted=0)
    assert ranking_pair_index(features, empty).shape == (0, 2)


def test_ranking_pairs_names_the_columns_a_table_lacks():
    table = pd.DataFrame({"set_id": ["s"], "target": ["t"], "cand": ["c"], "rater": ["r"]})
    with pytest.raises(ValueError, match=r"^ranking table lacks columns \['candidate', 'rank'\]$"):
        ranking_pairs(table)
