"""The one rank-vs-rank scorer (clpips.evaluate.rank_scores, alignment and its kernels) against scipy, pingouin
and direct loops."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
from scipy import stats as sps

from clpips.book.truth import row_spearman
from clpips.evaluate import (alignment, distance_scores, kendall_columns, per_ranking_spearman, rank_scores,
                             ranking_ids, spearman_columns)
from clpips.stats import koo_li_label
from tolerance import dot_bound, icc_ak_bound, icc_bound, mean_bound, spearman_bound

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


def test_rank_scores_with_every_extra_against_scipy_and_pingouin(monkeypatch):
    """rank_scores with every extra (what alignment reports) against references computed here: scipy's
    spearmanr and kendalltau with their p-values on the pooled within-ranking ranks and raw distances, the
    mean of scipy's rho per ranking, pingouin's ICC(A,k) row (estimate, F, p-value, interval); and
    alignment as that row, with the Koo & Li label and the table's counts."""
    monkeypatch.setitem(pg.options, "round.column.CI95", None)      # pingouin's interval, unrounded
    table = _table()
    scores = rank_scores(table, table[["good", "tied"]].to_numpy(), ["good", "tied"], per_ranking=True,
                         kendall=True, interval=True, pvalues=True)
    human = table["rank"].to_numpy(float)
    for column in ("good", "tied"):
        within = table.groupby("ranking", sort=False)[column].rank(method="average").to_numpy(float)
        rho, raw, tau = sps.spearmanr(human, within), sps.spearmanr(human, table[column]), sps.kendalltau(human, within)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sps.ConstantInputWarning)   # a tied ranking may be constant: NaN
            per = [sps.spearmanr(part["rank"], part[column]).statistic for _, part in table.groupby("ranking")]
        long = pd.DataFrame({"item": np.tile(np.arange(len(table)), 2), "rater": np.repeat(["h", "m"], len(table)),
                             "y": np.concatenate([human, within])})
        row = pg.intraclass_corr(long, "item", "rater", "y").set_index("Type").loc["ICC(A,k)"]
        ci = np.asarray(row["CI95"], dtype=float)
        got = scores.loc[column]
        reference = {"icc_A_k": row["ICC"], "spearman": rho.statistic, "spearman_raw": raw.statistic,
                     "spearman_per_ranking": np.nanmean(per), "kendall": tau.statistic, "icc_A_k_ci_low": ci[0],
                     "icc_A_k_ci_high": ci[1], "icc_A_k_pval": row["pval"]}
        # two float64 programs on the same numbers: the bounds of tests/tolerance.py; Kendall's tau is scipy's
        icc_tol = icc_bound(np.column_stack([human, within]))["ICC(A,k)"]
        ranking_tol = max(spearman_bound(part["rank"], part[column]) for _, part in table.groupby("ranking"))
        bounds = {"icc_A_k": icc_tol["ICC"], "spearman": spearman_bound(human, within),
                  "spearman_raw": spearman_bound(human, table[column]),
                  "spearman_per_ranking": ranking_tol + mean_bound(per), "kendall": 0.0,
                  "icc_A_k_ci_low": icc_tol["ci_low"], "icc_A_k_ci_high": icc_tol["ci_high"],
                  "icc_A_k_pval": icc_tol["pval"]}
        for key, value in reference.items():
            assert got[key] == pytest.approx(value, rel=0, abs=bounds[key]), (column, key)
        assert got["icc_A_k_F"] == pytest.approx(row["F"], rel=0, abs=icc_tol["F"])
        # a t test's p moved by rho's bound: |d ln p / d rho| <= (n - 2) / (1 - rho^2)^2, about 400 here, times
        # spearman_bound (~1e-13): 1e-10 relative; rel=1e-9 above it (Kendall's p: scipy's own, the same call)
        pvalues = {"spearman_pval": rho.pvalue, "spearman_raw_pval": raw.pvalue, "kendall_pval": tau.pvalue}
        for key, value in pvalues.items():
            assert got[key] == pytest.approx(value, rel=1e-9), (column, key)
        assert got["n_rankings"] == 30 * 2
        one = alignment(table, column)
        assert {key: one[key] for key in scores.columns} == {key: got[key] for key in scores.columns}
        assert one["icc_A_k_koo_li"] == koo_li_label(got["icc_A_k"]) and (one["n_targets"], one["n_rows"]) == (30, 360)


def test_distance_scores_is_rank_scores_without_extras():
    """Every column of distance_scores against a reference computed here: pingouin's ICC(A,k) of
    (human rank, the metric's rank within the ranking), scipy's Spearman pooled on those ranks and on
    the raw distances, pair accuracy by a loop over each ranking's ordered pairs (ties 1/2), the
    number of (set, rater) rankings; and nothing else (the extras of rank_scores are off)."""
    table = _table(seed=1)
    dist = table[["good", "tied"]].to_numpy()
    got = distance_scores(table, dist, ["a", "b"])
    assert list(got.columns) == ["icc_A_k", "spearman", "spearman_raw", "pair_accuracy", "n_rankings"]
    assert list(got.index) == ["a", "b"]
    human = table["rank"].to_numpy(float)
    for j, name in enumerate(["a", "b"]):
        within = np.empty(len(table))
        hits = total = 0.0
        for (s, r), part in table.assign(d=dist[:, j]).groupby(["set_id", "rater"]):
            rows = part.index.to_numpy()
            within[rows] = sps.rankdata(part["d"], method="average")
            for p in rows:
                for q in rows:
                    if table.at[p, "rank"] < table.at[q, "rank"]:        # p ranked more similar than q
                        total += 1
                        hits += 1.0 if dist[q, j] > dist[p, j] else 0.5 if dist[q, j] == dist[p, j] else 0.0
        long = pd.DataFrame({"item": np.tile(np.arange(len(table)), 2), "rater": np.repeat(["h", "m"], len(table)),
                             "y": np.concatenate([human, within])})
        icc = pg.intraclass_corr(long, "item", "rater", "y").set_index("Type").at["ICC(A,k)", "ICC"]
        # float64 bounds of tests/tolerance.py; pair accuracy: a mean of `total` values in {0, 1/2, 1}
        assert got.at[name, "icc_A_k"] == pytest.approx(icc, abs=icc_ak_bound(human, within))
        assert got.at[name, "spearman"] == pytest.approx(sps.spearmanr(human, within).statistic,
                                                         abs=spearman_bound(human, within))
        assert got.at[name, "spearman_raw"] == pytest.approx(sps.spearmanr(human, dist[:, j]).statistic,
                                                             abs=spearman_bound(human, dist[:, j]))
        assert got.at[name, "pair_accuracy"] == pytest.approx(hits / total, abs=dot_bound(1.0, int(total), np.float64))
        assert got.at[name, "n_rankings"] == 30 * 2
    assert (table.groupby("ranking")["tied"].nunique() < 6).any()   # the tied column really has ties
    pd.testing.assert_frame_equal(got, rank_scores(table, dist, ["a", "b"]))


def test_kernels_match_scipy():
    table = _table(seed=2)
    x, Y = table["rank"].to_numpy(float), table[["good", "tied"]].to_numpy()
    for j in range(2):
        assert spearman_columns(x, Y)[j] == pytest.approx(sps.spearmanr(x, Y[:, j]).statistic,
                                                          abs=spearman_bound(x, Y[:, j]))
        assert kendall_columns(x, Y)[j] == sps.kendalltau(x, Y[:, j]).statistic      # scipy's, per column
    per = per_ranking_spearman(table["ranking"], x, Y)
    for ranking, part in table.groupby("ranking", sort=False):
        assert per.at[ranking, 1] == pytest.approx(sps.spearmanr(part["rank"], part["tied"]).statistic,
                                                   abs=spearman_bound(part["rank"], part["tied"]))
    assert list(per.index) == list(pd.unique(table["ranking"]))


def test_row_spearman_rows_constants_and_gaps():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    b[1] = 2.0                      # constant row: undefined
    a[2, 3] = np.nan                # a gap: undefined
    got = row_spearman(a, b)
    for i in (0, 3, 4):
        assert got[i] == pytest.approx(sps.spearmanr(a[i], b[i]).statistic, abs=spearman_bound(a[i], b[i]))
    assert np.isnan(got[1]) and np.isnan(got[2])


def test_pair_distances_are_the_same_whatever_threads_the_caller_runs():
    """The scorer's distances are computed on one thread: the same table scored by a caller on 1 and on 2
    torch threads gives the same bytes (a make book lane runs 1, `clpips run` alone 2), equal to the product
    on one thread, and within float32 rounding of a float64 dot product."""
    import torch

    from clpips.evaluate import pair_distances
    from clpips.features import PairFeatures
    from clpips.train import torch_threads
    gen = torch.Generator().manual_seed(0)
    keys = [(f"t{i % 97}", f"c{i}") for i in range(5100)]
    features = PairFeatures(keys=keys, matrix=torch.rand(5100, 1152, generator=gen), net="alex", extracted=0)
    table = pd.DataFrame(keys, columns=["target", "candidate"]).sample(frac=1.0, random_state=0)  # another order
    w = torch.rand(1152, generator=gen)
    rows = features.rows(table["target"], table["candidate"])
    with torch_threads(1):
        one_thread = (features.matrix[rows] @ w[:, None]).numpy().astype(float)
    got = {}
    for threads in (1, 2):
        with torch_threads(threads):
            got[threads] = pair_distances(features, table, w)
    assert np.array_equal(got[1], got[2]) and np.array_equal(got[2], one_thread)
    phi, w64 = features.matrix[rows].double().numpy(), w.double().numpy()
    exact = phi @ w64                                      # float64: the float32 sums' error is bounded by
    bound = dot_bound(np.abs(phi) @ np.abs(w64), 1152, np.float32, computations=1)   # gamma_n u sum |terms|
    assert np.all(np.abs(got[2][:, 0] - exact) <= bound)


# --------------------------------------------------------------------------- undefined statistics are NaN
def test_pair_accuracy_without_an_ordered_pair_is_nan():
    """A ranking whose candidates are all tied gives no (better, worse) pair: the share is undefined."""
    from clpips.evaluate import pair_accuracy
    from clpips.pairs import ranking_pairs
    table = pd.DataFrame({"set_id": "s", "target": "t", "candidate": ["c", "d", "e"], "rater": "r",
                          "rank": [2.0, 2.0, 2.0]})
    dist = np.array([[0.1, 0.2], [0.3, 0.1], [0.2, 0.2]])
    assert ranking_pairs(table).empty                       # the reference: no pair to count
    got = pair_accuracy(table, dist)
    assert got.shape == (2,) and np.isnan(got).all()


def test_the_icc_of_a_single_ranked_item_is_nan_with_its_interval():
    """ICC(A,k) needs two targets (n - 1 = 0 degrees of freedom between them otherwise): every ICC column NaN."""
    table = pd.DataFrame({"set_id": ["s"], "target": ["t"], "candidate": ["c"], "rater": ["r"], "rank": [1]})
    out = rank_scores(table, np.array([[0.3, 0.5]]), ["a", "b"], interval=True)
    icc_columns = ["icc_A_k", "icc_A_k_ci_low", "icc_A_k_ci_high", "icc_A_k_F", "icc_A_k_pval"]
    assert list(out.index) == ["a", "b"] and out[icc_columns].isna().all().all()
    assert (out["n_rankings"] == 1).all()
