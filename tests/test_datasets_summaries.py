"""Summaries on hand-made tables whose answers are known."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clpips.book import summaries
from tolerance import mean_bound, spearman_bound


def ranking_table(ranks_by_rater: dict[str, list[float]], set_id: str = "s1") -> pd.DataFrame:
    """One set (target t.png, candidates c0.png...), ranked by each rater."""
    return pd.DataFrame([(set_id, "t.png", f"c{c}.png", rater, rank)
                         for rater, ranks in ranks_by_rater.items() for c, rank in enumerate(ranks)],
                        columns=["set_id", "target", "candidate", "rater", "rank"])


def test_counts():
    table = pd.concat([ranking_table({"a": [1, 2, 3, 4], "b": [4, 3, 2, 1]}),
                       ranking_table({"a": [1, 2.5, 2.5]}, set_id="s2").assign(target="u.png")])
    row = summaries.counts(table).iloc[0].to_dict()
    assert row == {"sets": 2, "raters": 2, "targets": 2, "candidates": 4, "images": 6, "rankings": 3,
                   "pairs": 6 + 6 + 2, "k_min": 3, "k_max": 4}  # the tied pair orders nothing
    by_set = summaries.counts(table, by="set_id")
    assert by_set["set_id"].tolist() == ["s1", "s2"] and by_set["rankings"].tolist() == [2, 1]


def test_rater_agreement():
    table = pd.concat([ranking_table({"a": [1, 2, 3], "b": [1, 2, 3], "c": [1, 2, 3]}),
                       ranking_table({"a": [1, 2, 3], "b": [3, 2, 1]}, set_id="s2"),
                       ranking_table({"a": [1, 2]}, set_id="s3")])  # one rater: no agreement to measure
    agreement = summaries.rater_agreement(table)
    assert agreement["set_id"].tolist() == ["s1", "s2"]
    # equal or reversed ranks of 3: rho = +-1 up to a correlation's float64 rounding (tests/tolerance.py)
    assert np.allclose(agreement["mean_rho"], [1.0, -1.0], rtol=0, atol=spearman_bound([1, 2, 3], [1, 2, 3]))
    assert agreement["n_raters"].tolist() == [3, 2]


def test_noise_ceiling_leaves_each_rater_out():
    table = ranking_table({"a": [1, 2, 3, 4], "b": [1, 2, 3, 4], "c": [4, 3, 2, 1]})
    ceiling = summaries.noise_ceiling(table).set_index("rater")
    # others of a: mean of b and c = [2.5]*4, constant: no correlation defined
    assert np.isnan(ceiling.loc["a", "rho"]) and np.isnan(ceiling.loc["b", "rho"])
    table = ranking_table({"a": [1, 2, 3, 4], "b": [1, 3, 2, 4], "c": [2, 1, 3, 4]})
    ceiling = summaries.noise_ceiling(table).set_index("rater")
    others_of_a = pd.Series([1.5, 2.0, 2.5, 4.0])  # mean of b and c
    assert ceiling.loc["a", "rho"] == pytest.approx(pd.Series([1, 2, 3, 4]).corr(others_of_a, method="spearman"),
                                                    abs=spearman_bound([1, 2, 3, 4], others_of_a))   # two programs
    assert ceiling.loc["all", "n_sets"] == 3
    per_rater = ceiling.loc[["a", "b", "c"], "rho"]
    assert ceiling.loc["all", "rho"] == pytest.approx(per_rater.mean(), abs=mean_bound(per_rater))


def test_empty_agreement_for_single_rater_sets():
    table = ranking_table({"a": [1, 2]})
    assert summaries.rater_agreement(table).empty and summaries.noise_ceiling(table).empty


def test_rank_distribution_by_column_and_by_map():
    table = ranking_table({"a": [1, 2, 3], "b": [2, 1, 3]})
    labels = {"c0.png": "animal", "c1.png": "animal", "c2.png": "object"}
    by_map = summaries.rank_distribution(table, pd.Series(labels, name="category"))
    assert by_map.columns.tolist() == ["category", "rank", "count", "share"]
    animal = by_map[by_map["category"] == "animal"].set_index("rank")
    assert animal["count"].tolist() == [2, 2, 0] and animal["share"].tolist() == [0.5, 0.5, 0.0]
    assert by_map.groupby("category")["share"].sum().tolist() == [1.0, 1.0]
    by_rater = summaries.rank_distribution(table, "rater")
    assert (by_rater["count"] == 1).all() and len(by_rater) == 6
