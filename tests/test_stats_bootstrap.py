"""Paired bootstrap over ranking sets: reproducibility, a slow reference loop, intervals, p-values."""
from __future__ import annotations

import inspect
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from clpips.book.rank_correlation import spearman
from clpips.defaults import DEFAULTS
from clpips.stats import (BootstrapSettings, DegenerateDataWarning, bca_interval, bootstrap_counts, icc,
                          metric_human_table, metric_statistics, one_sided_pvalue, paired_bootstrap,
                          percentile_interval, resampled_statistics)
from tolerance import icc_bound, spearman_bound


def evaluation(n_sets: int = 40, m: int = 10, noise_a: float = 4.0, noise_b: float = 2.0, seed: int = 0):
    """Simulated held-out evaluation: metric b is less noisy than metric a."""
    rng = np.random.default_rng(seed)
    rank = np.concatenate([rng.permutation(m) + 1 for _ in range(n_sets)])
    return pd.DataFrame({"set": np.repeat([f"s{i:03d}" for i in range(n_sets)], m), "rank": rank,
                         "a": rank + rng.normal(0, noise_a, n_sets * m),
                         "b": rank + rng.normal(0, noise_b, n_sets * m)})


def resampled_table(df: pd.DataFrame, set_ids: np.ndarray, counts: np.ndarray) -> pd.DataFrame:
    """Concatenate each set as often as it was drawn, every copy under a fresh set id."""
    groups = dict(tuple(df.groupby("set")))
    parts, copy = [], 0
    for set_id, c in zip(set_ids, counts):
        for _ in range(c):
            parts.append(groups[set_id].assign(set=f"copy{copy}"))
            copy += 1
    return pd.concat(parts, ignore_index=True)


def statistic_bounds(table: pd.DataFrame, metric: str) -> tuple[float, float]:
    """How far two float64 programs' ICC(A,k) and rho of ``metric`` on ``table`` may lie apart: the bounds of
    tests/tolerance.py on its (human rank, metric rank) items (0 where the statistic is undefined)."""
    wide = metric_human_table(table, "set", "rank", metric).pivot(index="target", columns="rater", values="rating")
    wide = wide.to_numpy(float)
    with np.errstate(all="ignore"):
        return (float(np.nan_to_num(icc_bound(wide)["ICC(A,k)"]["ICC"])),
                float(np.nan_to_num(spearman_bound(wide[:, 0], wide[:, 1]))))


def reference_loop(df: pd.DataFrame, set_ids: np.ndarray, counts: np.ndarray) -> pd.DataFrame:
    """Each resample's statistics by metric_statistics, and their float64 bounds (``<column>_tol``)."""
    rows = []
    for row in counts:
        table = resampled_table(df, set_ids, row)
        sa = metric_statistics(table, "set", "rank", "a")
        sb = metric_statistics(table, "set", "rank", "b")
        (icc_a, rho_a), (icc_b, rho_b) = statistic_bounds(table, "a"), statistic_bounds(table, "b")
        rows.append({"icc_a": sa["icc"], "icc_b": sb["icc"], "rho_a": sa["rho"], "rho_b": sb["rho"],
                     "icc_a_tol": icc_a, "icc_b_tol": icc_b, "rho_a_tol": rho_a, "rho_b_tol": rho_b})
    return pd.DataFrame(rows)


def assert_close_or_both_nan(got, ref, tol, what: str) -> None:
    """``|got - ref| <= tol`` entry by entry, or both NaN (an undefined statistic)."""
    got, ref, tol = (np.asarray(v, dtype=float) for v in (got, ref, tol))
    both_nan = np.isnan(got) & np.isnan(ref)
    ok = both_nan | (np.abs(got - ref) <= tol)
    assert ok.all(), f"{what}: {int((~ok).sum())} entries over their bound, worst {np.nanmax(np.abs(got - ref)):.3g}"


# --------------------------------------------------------------------------- reproducibility
def test_paired_bootstrap_same_seed_gives_identical_results():
    df = evaluation()
    r1 = paired_bootstrap(df, "set", "rank", "a", "b", n_boot=500, seed=7)
    r2 = paired_bootstrap(df, "set", "rank", "a", "b", n_boot=500, seed=7)
    pd.testing.assert_frame_equal(r1.distribution, r2.distribution, check_exact=True)
    pd.testing.assert_frame_equal(r1.summary(), r2.summary(), check_exact=True)
    assert r1.seed == 7


def test_paired_bootstrap_different_seeds_differ():
    df = evaluation()
    r1 = paired_bootstrap(df, "set", "rank", "a", "b", n_boot=300, seed=1)
    r2 = paired_bootstrap(df, "set", "rank", "a", "b", n_boot=300, seed=2)
    assert not np.array_equal(r1.distribution.to_numpy(), r2.distribution.to_numpy())
    pd.testing.assert_frame_equal(r1.observed, r2.observed)  # the data did not change


def test_paired_bootstrap_defaults_come_from_defaults():
    params = inspect.signature(BootstrapSettings).parameters    # paired_bootstrap's settings
    assert params["n_boot"].default == DEFAULTS.n_boot
    assert params["ci"].default == DEFAULTS.ci
    assert params["seed"].default == DEFAULTS.seed


def test_bootstrap_counts_rows_sum_to_n_sets_and_prefix_is_stable():
    counts = bootstrap_counts(30, 2500, seed=3)
    assert counts.shape == (2500, 30) and (counts.sum(axis=1) == 30).all()
    np.testing.assert_array_equal(bootstrap_counts(30, 1000, seed=3), counts[:1000])
    rng = np.random.default_rng(3)  # documented draw: integers(0, n_sets, size=(block, n_sets))
    first = np.apply_along_axis(np.bincount, 1, rng.integers(0, 30, size=(1000, 30)), minlength=30)
    np.testing.assert_array_equal(first, counts[:1000])


# --------------------------------------------------------------------------- exactness
def test_paired_bootstrap_observed_matches_icc_and_spearman():
    df = evaluation(seed=4)
    res = paired_bootstrap(df, "set", "rank", "a", "b", n_boot=10)
    for metric in ("a", "b"):
        table = metric_human_table(df, "set", "rank", metric)
        expected_icc = icc(table, "target", "rater", "rating").set_index("Type").at["ICC(A,k)", "ICC"]
        expected_rho = spearman(df, "set", "rank", metric).at["pooled", "r"]
        icc_tol, rho_tol = statistic_bounds(df, metric)                 # float64 bounds (tolerance.py)
        assert res.observed.at["ICC(A,k)", metric] == pytest.approx(expected_icc, abs=icc_tol)
        assert res.observed.at["rho", metric] == pytest.approx(expected_rho, abs=rho_tol)


@pytest.mark.parametrize("few_values", [64, 0, 10**9], ids=["auto", "rows_in_value_order", "count_matrix"])
@pytest.mark.parametrize("variant", ["plain", "ties_and_uneven_sets", "many_rank_values",
                                     "many_rank_values_few_distances"])
def test_paired_bootstrap_equals_slow_reference_loop(variant, few_values, monkeypatch):
    # the engine ranks a variable with few distinct values through a sets x values count matrix and
    # one with many through its rows in value order (with a fast path for untied distances);
    # forcing each layout exercises every code path
    monkeypatch.setattr("clpips.stats.bootstrap._FEW_VALUES", few_values)
    df = evaluation(n_sets=12, seed=5)
    if variant == "ties_and_uneven_sets":
        df = df.drop(index=[3, 14, 15, 50]).reset_index(drop=True)  # sets of 9, 8 and 9 candidates
        df["rank"] = df.groupby("set")["rank"].rank(method="first")
        df["a"] = df["a"].round(0)  # ties within and across sets
    elif variant.startswith("many_rank_values"):
        df["rank"] = df["rank"] + np.random.default_rng(0).uniform(0, 0.5, len(df))  # e.g. mean ranks
    if variant == "many_rank_values_few_distances":   # a count matrix for the metric, rows for the ranks
        df[["a", "b"]] = (df[["a", "b"]] / 4).round(0)
    n_boot, seed = 25, 11
    res = paired_bootstrap(df, "set", "rank", "a", "b", n_boot=n_boot, seed=seed)
    counts = bootstrap_counts(len(res.set_ids), n_boot, seed)
    reference = reference_loop(df, res.set_ids, counts)
    for column in ("icc_a", "icc_b", "rho_a", "rho_b"):
        assert_close_or_both_nan(res.distribution[column], reference[column], reference[f"{column}_tol"], column)
    assert_close_or_both_nan(res.distribution["delta_rho"], reference["rho_b"] - reference["rho_a"],
                             reference["rho_a_tol"] + reference["rho_b_tol"] + 2 * 2.0 ** -53, "delta_rho")


# --------------------------------------------------------------------------- inference
def test_paired_bootstrap_interval_contains_observed():
    df = evaluation(n_sets=60, noise_a=3.0, noise_b=3.0, seed=6)
    res = paired_bootstrap(df, "set", "rank", "a", "b", n_boot=2000, seed=0)
    for stat, obs in (("icc", "ICC(A,k)"), ("rho", "rho")):
        for col, metric in ((f"{stat}_a", "a"), (f"{stat}_b", "b"), (f"delta_{stat}", "delta")):
            low, high = res.intervals.loc[col]
            assert low < res.observed.at[obs, metric] < high, col


def test_paired_bootstrap_better_metric_gives_small_p_and_interval_above_zero():
    df = evaluation(n_sets=80, noise_a=5.0, noise_b=1.0, seed=7)
    n_boot = 2000
    summary = paired_bootstrap(df, "set", "rank", "a", "b", n_boot=n_boot, seed=0).summary()
    assert (summary["delta"] > 0).all()
    assert (summary["ci_low"] > 0).all()
    assert (summary["p_value"] == 1 / (n_boot + 1)).all()  # no resample with delta <= 0
    # swapping the metrics flips the conclusion
    swapped = paired_bootstrap(df, "set", "rank", "b", "a", n_boot=n_boot, seed=0).summary()
    assert (swapped["ci_high"] < 0).all() and (swapped["p_value"] == 1.0).all()


def test_paired_bootstrap_identical_metrics_give_zero_delta():
    df = evaluation(n_sets=20).assign(b=lambda d: d["a"])
    res = paired_bootstrap(df, "set", "rank", "a", "b", n_boot=200, seed=0)
    assert (res.distribution["delta_icc"] == 0).all() and (res.distribution["delta_rho"] == 0).all()
    assert (res.summary()["p_value"] == 1.0).all()


def test_paired_bootstrap_summary_layout():
    res = paired_bootstrap(evaluation(), "set", "rank", "a", "b", n_boot=100, seed=0)
    summary = res.summary()
    assert list(summary.index) == ["ΔICC(A,k)", "Δrho"]
    assert list(summary.columns) == ["observed_a", "observed_b", "delta", "ci_low", "ci_high", "p_value"]
    assert summary.at["Δrho", "delta"] == summary.at["Δrho", "observed_b"] - summary.at["Δrho", "observed_a"]
    assert list(res.distribution.columns) == ["icc_a", "icc_b", "delta_icc", "rho_a", "rho_b", "delta_rho"]
    assert len(res.distribution) == 100 and list(res.set_ids) == sorted(evaluation()["set"].unique())


def test_one_sided_pvalue_uses_plus_one_correction():
    assert one_sided_pvalue(np.ones(99)) == 1 / 100
    assert one_sided_pvalue(-np.ones(99)) == 1.0
    assert one_sided_pvalue(np.r_[np.zeros(9), np.ones(90)]) == 10 / 100  # Δ = 0 counts as "not better"


# --------------------------------------------------------------------------- BCa
def test_bca_equals_percentile_without_bias_or_skew():
    # observed at the median of a symmetric bootstrap distribution (z0 = 0) and a
    # symmetric jackknife (acceleration 0): BCa reduces to the percentile interval
    boot = np.linspace(-1, 1, 1001)
    jack = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    # z0 = 0 and a = 0 give BCa's levels as norm.cdf(norm.ppf(q)): q up to the special functions' rounding
    # (a few ulp), which moves the interpolated quantile of values spaced 0.002 by far less than 1e-15
    assert bca_interval(boot, 0.0, jack, 0.9) == pytest.approx(percentile_interval(boot, 0.9), abs=1e-15)


def test_bca_agrees_with_scipy_for_a_skewed_mean():
    rng = np.random.default_rng(0)
    x = rng.exponential(size=60)
    counts = bootstrap_counts(len(x), 20000, seed=1)
    boot = counts @ x / len(x)
    jack = (x.sum() - x) / (len(x) - 1)
    ours = bca_interval(boot, x.mean(), jack, 0.95)
    theirs = stats.bootstrap((x,), np.mean, n_resamples=20000, method="BCa", rng=2).confidence_interval
    # two independent Monte Carlo runs of B = 20,000: each end's quantile has SE sqrt(q (1 - q) / B) / f(x_q)
    # (f: the bootstrap distribution's density, about normal with its sd), sqrt(2) that for the difference;
    # 3 SEs (about 0.01 here), fixed seeds: the same draws on every machine
    q = 0.025
    se = np.sqrt(2 * q * (1 - q) / 20000) * boot.std() / stats.norm.pdf(stats.norm.ppf(q))
    assert ours == pytest.approx((theirs.low, theirs.high), abs=3 * se)
    # BCa moves the interval to the right of the percentile one for a right-skewed mean
    pct = percentile_interval(boot, 0.95)
    assert ours[0] > pct[0] and ours[1] > pct[1]


def test_paired_bootstrap_bca_is_close_to_percentile_and_contains_observed():
    df = evaluation(n_sets=60, noise_a=3.0, noise_b=2.5, seed=8)
    pct = paired_bootstrap(df, "set", "rank", "a", "b", n_boot=2000, seed=0)
    bca = paired_bootstrap(df, "set", "rank", "a", "b", n_boot=2000, seed=0, method="bca")
    pd.testing.assert_frame_equal(pct.distribution, bca.distribution)
    assert bca.jackknife is not None and len(bca.jackknife) == 60
    width = pct.intervals["ci_high"] - pct.intervals["ci_low"]
    assert ((bca.intervals - pct.intervals).abs().max(axis=1) < 0.25 * width).all()
    for stat, obs in (("icc", "ICC(A,k)"), ("rho", "rho")):
        low, high = bca.intervals.loc[f"delta_{stat}"]
        assert low < bca.observed.at[obs, "delta"] < high


def test_bca_one_sided_distribution_warns_and_gives_nan():
    with pytest.warns(DegenerateDataWarning, match="BCa"):
        assert np.isnan(bca_interval(np.ones(10), 0.5, np.ones(5), 0.95)).all()


# --------------------------------------------------------------------------- validation
def test_paired_bootstrap_rejects_bad_input():
    df = evaluation(n_sets=3)
    with pytest.raises(ValueError, match="at least 2 ranking sets"):
        paired_bootstrap(df[df["set"] == "s000"], "set", "rank", "a", "b", n_boot=10)
    with pytest.raises(ValueError, match="method must be"):
        paired_bootstrap(df, "set", "rank", "a", "b", n_boot=10, method="basic")
    with pytest.raises(ValueError, match="ci must be in"):
        paired_bootstrap(df, "set", "rank", "a", "b", n_boot=10, ci=95)
    with pytest.raises(ValueError, match="n_boot"):
        paired_bootstrap(df, "set", "rank", "a", "b", n_boot=0)
    with pytest.raises(ValueError, match="missing values"):
        paired_bootstrap(df.assign(b=np.nan), "set", "rank", "a", "b", n_boot=10)
    with pytest.raises(ValueError, match="metric_b_col='c' is not a column"):
        paired_bootstrap(df, "set", "rank", "a", "c", n_boot=10)


def test_paired_bootstrap_regular_data_emits_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        paired_bootstrap(evaluation(), "set", "rank", "a", "b", n_boot=200, seed=0, method="bca")


def test_paired_bootstrap_cluster_of_single_sets_is_the_set_bootstrap():
    rng = np.random.default_rng(4)
    rank = np.tile(np.arange(1, 6), 30)
    df = pd.DataFrame({"set": np.repeat(np.arange(30), 5), "rank": rank,
                       "a": rank + rng.normal(0, 3, 150), "b": rank + rng.normal(0, 2, 150)})
    df["cluster"] = "c" + df["set"].astype(str)
    plain = paired_bootstrap(df, "set", "rank", "a", "b", n_boot=300, seed=2).summary()
    clustered = paired_bootstrap(df, "set", "rank", "a", "b", n_boot=300, seed=2, cluster_col="cluster").summary()
    pd.testing.assert_frame_equal(plain, clustered)


def test_paired_bootstrap_cluster_must_contain_whole_sets():
    df = pd.DataFrame({"set": [1, 1, 2, 2], "rank": [1, 2, 1, 2], "a": [0.1, 0.2, 0.3, 0.1],
                       "b": [0.1, 0.3, 0.2, 0.4], "cluster": ["x", "y", "y", "y"]})
    with pytest.raises(ValueError, match="set 1 lies in several clusters"):
        paired_bootstrap(df, "set", "rank", "a", "b", n_boot=10, cluster_col="cluster")
    with pytest.raises(ValueError, match="no column 'nope'"):
        paired_bootstrap(df, "set", "rank", "a", "b", n_boot=10, cluster_col="nope")


# --------------------------------------------------------------------------- more bad input, one line each
def test_bootstrap_counts_needs_a_set_and_a_resample():
    for n_sets, n_boot in ((0, 10), (5, 0)):
        with pytest.raises(ValueError, match=rf"^need n_sets >= 1 and n_boot >= 1, got n_sets={n_sets}, "
                                             rf"n_boot={n_boot}$"):
            bootstrap_counts(n_sets, n_boot)


def test_resampled_statistics_names_counts_of_another_width_or_kind():
    df = evaluation(n_sets=4)
    with pytest.raises(ValueError, match=r"^resampled_statistics: counts has 3 columns for 4 sets$"):
        resampled_statistics(df, "set", "rank", ["a", "b"], np.ones((2, 3), dtype=int))
    for bad in (np.array([[1, 1, -1, 2]]), np.ones((1, 4)) * 0.5):
        with pytest.raises(ValueError, match=r"^counts must be non-negative integers \(how often each set is drawn\)$"):
            resampled_statistics(df, "set", "rank", ["a", "b"], bad)


def test_paired_bootstrap_names_an_unknown_option():
    with pytest.raises(TypeError, match=r"^paired_bootstrap: unknown option 'nboot'; the options are \['n_boot', "):
        paired_bootstrap(evaluation(n_sets=3), "set", "rank", "a", "b", nboot=10)


def test_paired_bootstrap_names_a_cluster_column_with_missing_values():
    df = evaluation(n_sets=4).assign(cluster="x")
    df.loc[df["set"] == "s001", "cluster"] = None
    with pytest.raises(ValueError, match=r"^paired_bootstrap: column 'cluster' has missing values$"):
        paired_bootstrap(df, "set", "rank", "a", "b", n_boot=10, cluster_col="cluster")


def test_paired_bootstrap_refuses_a_resample_too_large_for_exact_rank_sums():
    """Two sets, one of 650,001 rows: a resample drawing it twice holds 1,300,002 items, past the exact limit."""
    big = 650_001
    df = pd.DataFrame({"set": np.r_[np.zeros(big, dtype=int), [1, 1]], "rank": np.r_[np.arange(big) + 1, [1, 2]],
                       "a": 0.0, "b": 0.0})
    with pytest.raises(ValueError, match=r"^paired_bootstrap: a resample could hold 1300002 items, more than the "
                                         r"1300000 for which the integer rank sums are exact$"):
        paired_bootstrap(df, "set", "rank", "a", "b", n_boot=10)


def test_intervals_leave_out_nan_resamples_with_a_warning_and_refuse_none_defined():
    values = np.array([0.1, np.nan, 0.3, 0.2, np.nan])
    with pytest.warns(DegenerateDataWarning, match=r"^2 of 5 bootstrap values are NaN \(undefined statistic on that "
                                                   r"resample\) and are left out$"):
        got = percentile_interval(values, 0.5)
    assert got == pytest.approx(tuple(np.percentile([0.1, 0.3, 0.2], [25, 75])))
    with pytest.raises(ValueError, match=r"^no defined bootstrap values: all 4 are NaN \(the statistic is "
                                         r"undefined on every resample\)$"):
        percentile_interval(np.full(4, np.nan))


def test_paired_bootstrap_names_a_statistic_undefined_on_the_data():
    """Metric a constant everywhere: its rho is undefined on the data (as scipy's) and so on every resample;
    the warning names it; its interval and p are NaN, and those of the other statistics are made as ever."""
    df = evaluation(n_sets=6, m=4, seed=2).assign(a=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        assert np.isnan(stats.spearmanr(df["rank"], df["a"]).statistic)
    with pytest.warns(DegenerateDataWarning) as record:
        res = paired_bootstrap(df, "set", "rank", "a", "b", n_boot=50, seed=0)
    full = [str(w.message) for w in record if str(w.message).startswith("undefined (NaN) on the full data: ")]
    assert len(full) == 1 and "rho_a" in full[0] and "rho_b" not in full[0] and "\n" not in full[0]
    assert res.distribution[["rho_a", "delta_rho"]].isna().all().all()
    assert res.intervals.loc[["rho_a", "delta_rho"]].isna().all().all() and np.isnan(res.p_values["Δrho"])
    defined = ["icc_a", "icc_b", "delta_icc", "rho_b"]
    assert res.intervals.loc[defined].notna().all().all() and np.isfinite(res.p_values["ΔICC(A,k)"])
    for column in defined:   # as the interval of that column alone
        assert tuple(res.intervals.loc[column]) == percentile_interval(res.distribution[column].to_numpy(), res.ci)


def test_paired_bootstrap_counts_the_resamples_a_statistic_is_undefined_on():
    """Metric b constant in all sets but s000: defined on the data, undefined (constant distances) on exactly
    the resamples that do not draw s000; those are counted in one warning and left out."""
    df = evaluation(n_sets=6, m=4, seed=2)
    df.loc[df["set"] != "s000", "b"] = 1.0
    with pytest.warns(DegenerateDataWarning) as record:
        res = paired_bootstrap(df, "set", "rank", "a", "b", n_boot=50, seed=0)
    some = [str(w.message) for w in record if str(w.message).startswith("undefined (NaN) on some of 50 resamples (")]
    missed = int((bootstrap_counts(6, 50, 0)[:, list(res.set_ids).index("s000")] == 0).sum())
    assert 0 < missed < 50 and len(some) == 1
    assert f"rho_b: {missed}" in some[0] and "rho_a" not in some[0]
    assert int(res.distribution["rho_b"].isna().sum()) == missed
