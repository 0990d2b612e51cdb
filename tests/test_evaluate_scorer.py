"""The one rank-vs-rank scorer (clpips.evaluate.rank_scores and its kernels) against scipy and alignment."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from clpips.evaluate import (alignment, distance_scores, kendall_columns, per_ranking_spearman, rank_scores,
                             ranking_ids, row_spearman, spearman_columns)

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.dropna:Warning")


def _table(n_sets=30, k=6, raters=2, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sets):
        for r in range(raters):
            ranks = rng.permutation(k) + 1
            for c in range(k):
                rows.append({"set_id": f"s{s}", "target": f"t{s}", "candidate": f"c{s}_{c}", "rater": f"r{r}",
                             "rank": ranks[c]})
    table = pd.DataFrame(rows)
    table["good"] = table["rank"] + rng.normal(0, 1.5, len(table)) + rng.normal(0, 3, n_sets).repeat(k * raters)
    table["tied"] = np.round(table["rank"] / 3 + rng.normal(0, 0.4, len(table)))   # ties within rankings
    table["ranking"] = ranking_ids(table)
    return table


def test_rank_scores_equal_alignment_for_every_statistic():
    table = _table()
    scores = rank_scores(table, table[["good", "tied"]].to_numpy(), ["good", "tied"], per_ranking=True,
                         kendall=True, interval=True)
    for column in ("good", "tied"):
        ref = alignment(table, column)
        got = scores.loc[column]
        for key in ("icc_A_k", "spearman", "spearman_raw", "spearman_per_ranking", "kendall", "pair_accuracy",
                    "icc_A_k_ci_low", "icc_A_k_ci_high", "icc_A_k_pval"):
            assert got[key] == pytest.approx(ref[key], rel=1e-12, abs=1e-14), (column, key)
        assert got["icc_A_k_F"] == pytest.approx(ref["icc_A_k_F"], rel=1e-12)
        assert got["n_rankings"] == ref["n_rankings"]


def test_distance_scores_is_rank_scores_without_extras():
    table = _table(seed=1)
    dist = table[["good", "tied"]].to_numpy()
    pd.testing.assert_frame_equal(distance_scores(table, dist, ["a", "b"]), rank_scores(table, dist, ["a", "b"]))


def test_kernels_match_scipy():
    table = _table(seed=2)
    x, Y = table["rank"].to_numpy(float), table[["good", "tied"]].to_numpy()
    for j in range(2):
        assert spearman_columns(x, Y)[j] == pytest.approx(sps.spearmanr(x, Y[:, j]).statistic, rel=1e-12)
        assert kendall_columns(x, Y)[j] == pytest.approx(sps.kendalltau(x, Y[:, j]).statistic, rel=1e-12)
    per = per_ranking_spearman(table["ranking"], x, Y)
    for ranking, part in table.groupby("ranking", sort=False):
        assert per.at[ranking, 1] == pytest.approx(sps.spearmanr(part["rank"], part["tied"]).statistic, rel=1e-12)
    assert list(per.index) == list(pd.unique(table["ranking"]))


def test_row_spearman_rows_constants_and_gaps():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    b[1] = 2.0                      # constant row: undefined
    a[2, 3] = np.nan                # a gap: undefined
    got = row_spearman(a, b)
    for i in (0, 3, 4):
        assert got[i] == pytest.approx(sps.spearmanr(a[i], b[i]).statistic, rel=1e-12)
    assert np.isnan(got[1]) and np.isnan(got[2])
