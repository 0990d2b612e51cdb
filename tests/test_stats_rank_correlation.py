"""Rank correlations of distances with human ranks: scipy agreement, orientation, edge cases."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from clpips.book.rank_correlation import (PER_SET, kendall, per_set_correlation, pooled_spearman,
                                          rank_correlation, spearman)
from clpips.stats import DegenerateDataWarning
from tolerance import assert_within_or_both_nan, kendall_bound, mean_bound, spearman_bound


def correlation_tol(method: str, x, y) -> float:
    """How far two float64 programs' correlation of ``(x, y)`` by ``method`` may lie apart (tests/tolerance.py)."""
    return spearman_bound(x, y) if method == "spearman" else kendall_bound()


def ranking_table(n_sets: int = 25, m: int = 10, noise: float = 3.0, seed: int = 0, sign: float = 1.0):
    """Simulated rankings; ``sign=1`` gives distances that agree with the human ranks."""
    rng = np.random.default_rng(seed)
    rank = np.concatenate([rng.permutation(m) + 1 for _ in range(n_sets)])
    return pd.DataFrame({"set": np.repeat(np.arange(n_sets), m), "rank": rank,
                         "distance": sign * rank + rng.normal(0, noise, n_sets * m)})


@pytest.mark.parametrize("method, scipy_fn", [
    ("spearman", lambda x, y: stats.spearmanr(x, y)),
    ("kendall_b", lambda x, y: stats.kendalltau(x, y, variant="b")),
    ("kendall_c", lambda x, y: stats.kendalltau(x, y, variant="c")),
])
def test_rank_correlation_pooled_matches_scipy(method, scipy_fn):
    df = ranking_table(seed=1)
    res = rank_correlation(df, "set", "rank", "distance", method=method)
    ref = scipy_fn(df["rank"], df["distance"])
    tol = correlation_tol(method, df["rank"], df["distance"])
    assert res.at["pooled", "r"] == pytest.approx(ref.statistic, abs=tol)
    # p of a statistic moved by its bound (~1e-13): |d ln p / d r| is a few hundred here; rel=1e-9 above it
    assert res.at["pooled", "pval"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert res.at["pooled", "n"] == len(df) and res.at["pooled", "n_sets"] == 25
    assert res.at["pooled", "method"] == method


@pytest.mark.parametrize("method", ["spearman", "kendall_b", "kendall_c"])
def test_rank_correlation_per_set_mean_matches_scipy_loop(method):
    df = ranking_table(seed=2)
    per = []
    for _, g in df.groupby("set"):
        if method == "spearman":
            per.append(stats.spearmanr(g["rank"], g["distance"]).statistic)
        else:
            per.append(stats.kendalltau(g["rank"], g["distance"], variant=method[-1]).statistic)
    res = rank_correlation(df, "set", "rank", "distance", method=method)
    tol = max(correlation_tol(method, g["rank"], g["distance"]) for _, g in df.groupby("set")) + mean_bound(per)
    assert res.at["per_set_mean", "r"] == pytest.approx(np.mean(per), abs=tol)
    # a t test's p moved by the mean's bound: relative 1e-9 is far above (|d ln p / d mean| ~ 10^2 here)
    assert res.at["per_set_mean", "pval"] == pytest.approx(stats.ttest_1samp(per, 0).pvalue, rel=1e-9)
    assert res.at["per_set_mean", "n_sets"] == 25


def test_rank_correlation_orientation_agreement_is_positive():
    agree = spearman(ranking_table(noise=1.0, sign=+1.0), "set", "rank", "distance")
    disagree = spearman(ranking_table(noise=1.0, sign=-1.0), "set", "rank", "distance")
    assert (agree["r"] > 0.8).all()
    assert (disagree["r"] < -0.8).all()  # no abs(): a backwards metric is negative


def test_rank_correlation_perfect_metric_gives_one():
    df = pd.DataFrame({"set": [0] * 4 + [1] * 4, "rank": [1, 2, 3, 4] * 2,
                       "distance": [0.1, 0.2, 0.3, 0.4, 0.05, 0.5, 0.6, 0.9]})
    with pytest.warns(DegenerateDataWarning, match="t-test"):  # every per-set rho is 1: sd 0
        res = spearman(df, "set", "rank", "distance")
    assert res.at["per_set_mean", "r"] == 1.0 and np.isnan(res.at["per_set_mean", "pval"])
    assert res.at["pooled", "r"] == pytest.approx(stats.spearmanr(df["rank"], df["distance"]).statistic,
                                                  abs=spearman_bound(df["rank"], df["distance"]))


def test_rank_correlation_accepts_arrays():
    df = ranking_table(seed=3)
    from_frame = kendall(df, "set", "rank", "distance", variant="c")
    from_arrays = kendall(None, df["set"].to_numpy(), df["rank"].to_numpy(), df["distance"].to_list(), variant="c")
    pd.testing.assert_frame_equal(from_frame, from_arrays)


def test_rank_correlation_custom_column_names():
    df = ranking_table(seed=4).rename(columns={"set": "set_id", "rank": "human_rank", "distance": "lpips"})
    res = spearman(df, set_col="set_id", rank_col="human_rank", distance_col="lpips")
    assert list(res.index) == ["pooled", "per_set_mean"]
    assert list(res.columns) == ["method", "n", "n_sets", "r", "pval"]


def test_pooled_spearman_matches_scipy():
    df = ranking_table(seed=5)
    assert pooled_spearman(df["rank"], df["distance"]) == pytest.approx(
        stats.spearmanr(df["rank"], df["distance"]).statistic, abs=spearman_bound(df["rank"], df["distance"]))


# --------------------------------------------------------------------------- edge cases
def test_rank_correlation_constant_distances_give_nan_with_warning():
    df = ranking_table(n_sets=3).assign(distance=0.5)
    with pytest.warns(DegenerateDataWarning):
        res = spearman(df, "set", "rank", "distance")
    assert res["r"].isna().all()
    assert res.at["per_set_mean", "n_sets"] == 0


def test_rank_correlation_constant_set_is_left_out_of_the_mean():
    df = ranking_table(n_sets=5, seed=6)
    df.loc[df["set"] == 0, "distance"] = 1.0
    with pytest.warns(DegenerateDataWarning, match="1 of 5 sets"):
        res = spearman(df, "set", "rank", "distance")
    kept = df[df["set"] != 0]
    expected = np.mean([stats.spearmanr(g["rank"], g["distance"]).statistic for _, g in kept.groupby("set")])
    tol = max(spearman_bound(g["rank"], g["distance"]) for _, g in kept.groupby("set")) + 2 * mean_bound([expected])
    assert res.at["per_set_mean", "r"] == pytest.approx(expected, abs=tol)
    assert res.at["per_set_mean", "n_sets"] == 4 and res.at["per_set_mean", "n"] == 40
    assert np.isfinite(res.at["pooled", "r"])
    with pytest.warns(DegenerateDataWarning):
        per = per_set_correlation(df, "set", "rank", "distance")
    assert np.isnan(per.loc[per["set"] == 0, "r"]).all() and len(per) == 5


def test_rank_correlation_single_candidate_set_is_undefined():
    df = pd.DataFrame({"set": [0, 1, 1, 1], "rank": [1, 1, 2, 3], "distance": [0.3, 0.1, 0.2, 0.3]})
    with pytest.warns(DegenerateDataWarning):
        res = spearman(df, "set", "rank", "distance")
    assert res.at["per_set_mean", "n_sets"] == 1 and res.at["per_set_mean", "r"] == 1.0
    assert np.isnan(res.at["per_set_mean", "pval"])  # one set: no t-test


def test_rank_correlation_nan_raises():
    df = ranking_table(n_sets=2)
    df.loc[3, "distance"] = np.nan
    with pytest.raises(ValueError, match="missing values.*distance_col='distance'"):
        spearman(df, "set", "rank", "distance")


def test_rank_correlation_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="same length"):
        spearman(None, [0, 0, 0], [1, 2, 3], [0.1, 0.2])


def test_rank_correlation_bad_arguments_raise():
    df = ranking_table(n_sets=2)
    with pytest.raises(ValueError, match="method must be one of"):
        rank_correlation(df, "set", "rank", "distance", method="pearson")
    with pytest.raises(ValueError, match="variant must be"):
        kendall(df, "set", "rank", "distance", variant="a")
    with pytest.raises(ValueError, match="distance_col='lpips' is not a column"):
        spearman(df, "set", "rank", "lpips")
    with pytest.raises(ValueError, match="infinite"):
        spearman(df.assign(distance=np.inf), "set", "rank", "distance")


def test_rank_correlation_regular_data_emits_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in ("spearman", "kendall_b", "kendall_c"):
            rank_correlation(ranking_table(), "set", "rank", "distance", method=method)


@pytest.mark.parametrize("method", ["spearman", "kendall_b", "kendall_c"])
def test_set_correlations_equal_a_scipy_call_per_set(method):
    """The per-set correlations, computed for all sets at once, equal scipy's one set at a time: sets
    of unequal sizes in shuffled order, ties on both sides, a constant set and single-row sets (NaN)."""
    from clpips.stats import set_correlations
    rng = np.random.default_rng(1)
    sets = np.repeat(np.arange(40), rng.integers(1, 12, 40))
    rng.shuffle(sets)
    x = rng.integers(1, 6, len(sets)).astype(float)
    y = np.round(rng.random(len(sets)), 1)
    y[sets == sets[0]] = 0.5
    got = set_correlations(sets, x, y, PER_SET[method])
    expected = []
    for s in pd.unique(sets):
        xs, ys = x[sets == s], y[sets == s]
        if len(xs) < 2 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
            expected.append(np.nan)
        elif method == "spearman":
            expected.append(stats.spearmanr(xs, ys).statistic)
        else:
            expected.append(stats.kendalltau(xs, ys, variant=method[-1]).statistic)
    assert np.isnan(got).sum() >= 2
    bound = [correlation_tol(method, x[sets == s], y[sets == s]) for s in pd.unique(sets)]   # tolerance.py
    assert_within_or_both_nan(got, expected, bound, "per set")
    # several columns at once: each as alone (the reversed column, the reversed correlation)
    both = set_correlations(sets, x, np.stack([y, -y], axis=1), PER_SET[method])
    assert_within_or_both_nan(both, np.stack([expected, -np.asarray(expected)], axis=1),
                              np.stack([bound, bound], axis=1), "two columns")
    with pytest.warns(DegenerateDataWarning):
        per = per_set_correlation(pd.DataFrame({"s": sets, "x": x, "y": y}), "s", "x", "y", method)
    assert_within_or_both_nan(per["r"], expected, bound, "per_set_correlation")
    assert list(per["set"]) == list(pd.unique(sets)) and list(per["n"]) == [int((sets == s).sum()) for s in per["set"]]
    for s, p, r in zip(per["set"], per["pval"], per["r"]):
        xs, ys = x[sets == s], y[sets == s]
        if np.isnan(r):
            assert np.isnan(p)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # scipy's own, for 2 rows
            ref = stats.spearmanr(xs, ys) if method == "spearman" else stats.kendalltau(xs, ys, variant=method[-1])
        # p moved by r's bound (~1e-14) through a t or normal tail: relative 1e-9 far above it
        assert (np.isnan(p) and np.isnan(ref.pvalue)) or p == pytest.approx(ref.pvalue, rel=1e-9)


def test_old_paths_of_the_table_api_work_for_one_release():
    with pytest.warns(DeprecationWarning, match=r"clpips\.stats\.spearman moved to clpips\.book\.rank_correlation"):
        from clpips.stats import spearman as old
    assert old is spearman
    with pytest.warns(DeprecationWarning, match="moved to clpips.book.rank_correlation.kendall"):
        from clpips.stats.rank_correlation import kendall as old_kendall
    assert old_kendall is kendall
