"""Power, equivalence and the verdict words of the fold-level test (clpips.book.power), against
references from outside the module: a direct simulation of the protocol's correlated folds,
the normal approximation, statsmodels' power solver and TOST, hand-worked t values, and direct
computations of a fake run's corrected intervals.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from clpips import protocol
from clpips.book.power import (VERDICTS, detection_power, equivalence, minimal_detectable_effect, mode_difference,
                               power_table, verdict)
from clpips.stats import corrected_resampled_t

PAPER = 0.084   # the paper's ΔICC(A,k) (clpips.book.paper), the bound the chapters use


# --------------------------------------------------------------------------- minimal detectable effect
def simulated_rejections(effect: float, folds: int, repeats: int, sides: int, n_runs: int, seed: int) -> np.ndarray:
    """``n_runs`` protocol runs of ``J = folds x repeats`` fold Δs, equicorrelated with Nadeau & Bengio's
    rho = n_test / (n_test + n_train) = 1 / folds, mean ``effect``, unit variance; the corrected resampled
    t test of each (a direct loop over the formula, checked against corrected_resampled_t on some runs)."""
    rng = np.random.default_rng(seed)
    j, rho = folds * repeats, 1 / folds
    d = effect + np.sqrt(rho) * rng.standard_normal((n_runs, 1)) + np.sqrt(1 - rho) * rng.standard_normal((n_runs, j))
    ratio = 1 / (folds - 1)                                         # n_test / n_train
    se = np.sqrt(d.var(axis=1, ddof=1) * (1 / j + ratio))
    t = d.mean(axis=1) / se
    crit = sps.t.ppf(1 - 0.05 / sides, j - 1)
    reject = np.abs(t) > crit if sides == 2 else t > crit
    for row in range(50):                                           # the same decisions as the protocol's function
        nb = corrected_resampled_t(d[row], ratio, ci=1 - 2 * 0.05 / sides)   # one-sided 5%: a 90% interval
        assert (nb["low"] > 0 or (sides == 2 and nb["high"] < 0)) == reject[row]
    return reject


def true_se(folds: int, repeats: int) -> float:
    """SE of the mean of the simulated folds: var = rho + (1 - rho) / J (unit variance, correlation rho)."""
    rho = 1 / folds
    return float(np.sqrt(rho + (1 - rho) / (folds * repeats)))


@pytest.mark.parametrize("folds, repeats, sides", [(5, 3, 2), (2, 2, 2), (5, 3, 1), (3, 10, 2)])
def test_minimal_detectable_effect_is_detected_80_percent_of_the_time_in_simulated_runs(folds, repeats, sides):
    n_runs = 40_000
    se = true_se(folds, repeats)
    mde = minimal_detectable_effect(se, folds * repeats - 1, power=0.8, sides=sides)
    rate = simulated_rejections(mde, folds, repeats, sides, n_runs, seed=folds * 100 + repeats).mean()
    assert rate == pytest.approx(0.8, abs=4 * np.sqrt(0.8 * 0.2 / n_runs))   # 4 Monte Carlo SEs: 0.008


def test_the_normal_approximation_is_detected_too_rarely_with_few_folds():
    """With 4 folds (df 3) (z_0.975 + z_0.8) se is far too small: the simulation tells the two apart."""
    se = true_se(2, 2)
    normal = (sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) * se
    assert minimal_detectable_effect(se, 3) > 1.3 * normal
    assert simulated_rejections(normal, 2, 2, 2, 20_000, seed=1).mean() < 0.6


@pytest.mark.parametrize("alpha, power, sides", [(0.05, 0.8, 2), (0.05, 0.9, 2), (0.1, 0.8, 1)])
def test_minimal_detectable_effect_tends_to_the_normal_approximation(alpha, power, sides):
    se = 0.02
    normal = (sps.norm.ppf(1 - alpha / sides) + sps.norm.ppf(power)) * se
    # t quantiles at df = 1e6 exceed the normal ones by (z^3 + z) / (4 df) + O(df^-2) (Cornish-Fisher,
    # Abramowitz & Stegun 26.7.5): twice that first term covers the rest
    z = np.array([sps.norm.ppf(1 - alpha / sides), sps.norm.ppf(power)])
    assert minimal_detectable_effect(se, 1e6, alpha, power, sides) == pytest.approx(
        normal, abs=2 * se * float(np.sum((z ** 3 + np.abs(z)) / (4 * 1e6))))
    # with fewer degrees of freedom it is larger, and shrinks towards the normal one as df grows
    few = [minimal_detectable_effect(se, df, alpha, power, sides) for df in (2, 5, 14, 100, 10_000)]
    assert np.all(np.diff(few) < 0) and few[-1] > normal


@pytest.mark.parametrize("df, sides", [(14, 2), (3, 2), (44, 1)])
def test_minimal_detectable_effect_matches_statsmodels_power_solver(df, sides):
    """statsmodels' one-sample t power: effect size d with nobs = df + 1 has noncentrality d sqrt(nobs)."""
    power_mod = pytest.importorskip("statsmodels.stats.power")
    nobs = df + 1
    d = power_mod.TTestPower().solve_power(effect_size=None, nobs=nobs, alpha=0.05, power=0.8,
                                           alternative="two-sided" if sides == 2 else "larger")
    se = 0.037
    # not rounding: statsmodels' solve_power finds d by a root search stopped at its own tolerance
    assert minimal_detectable_effect(se, df, sides=sides) == pytest.approx(d * np.sqrt(nobs) * se, rel=1e-5)
    assert detection_power(0.05, se, df, sides=sides) == pytest.approx(
        power_mod.TTestPower().power(0.05 / se / np.sqrt(nobs), nobs, 0.05,
                                     alternative="two-sided" if sides == 2 else "larger"), rel=1e-9)


def test_power_edges_and_bad_input():
    assert detection_power(0.0, 0.03, 14) == pytest.approx(0.05, rel=1e-12)   # no effect: the test's size
    assert np.isnan(minimal_detectable_effect(float("nan"), float("nan")))     # fewer than two folds
    assert minimal_detectable_effect(0.0, 14) == 0.0
    for bad in (dict(se=-0.1, df=14), dict(se=0.1, df=0), dict(se=0.1, df=14, power=0.04),
                dict(se=0.1, df=14, alpha=1.5), dict(se=0.1, df=14, sides=3)):
        with pytest.raises(ValueError) as err:
            minimal_detectable_effect(**bad)
        assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- equivalence (TOST)
def test_tost_by_hand():
    """Δ 0.02, se 0.03, 9 df, bound 0.084: t_lower = 0.104 / 0.03 = 3.4667, t_upper = -0.064 / 0.03 =
    -2.1333; the p of H0 Δ >= bound is P(T_9 < -2.1333), between 0.025 and 0.05 (t_9 tables: 2.262 and
    1.833). 90% interval: 0.02 ± 1.8331 x 0.03 = [-0.0350, 0.0750], inside ±0.084: equivalent at 5%,
    not at 2.5%."""
    got = equivalence(0.02, 0.03, 9, PAPER)
    # the literals are the values rounded to 6 decimals: within half a unit of the 6th
    assert got["t_lower"] == pytest.approx(3.466667, abs=0.5e-6)
    assert got["t_upper"] == pytest.approx(-2.133333, abs=0.5e-6)
    assert got["p_upper"] == pytest.approx(sps.t.cdf(-0.064 / 0.03, 9), rel=1e-12) and 0.025 < got["p_upper"] < 0.05
    assert got["p_lower"] == pytest.approx(sps.t.sf(0.104 / 0.03, 9), rel=1e-12) and got["p_lower"] < 0.005
    assert got["pval"] == got["p_upper"]
    # to 4 decimals, as in the docstring (t_9 quantile 1.8331 from tables): within half a unit of the 4th
    assert got["low"] == pytest.approx(-0.0350, abs=0.5e-4) and got["high"] == pytest.approx(0.0750, abs=0.5e-4)
    assert got["equivalent"] and not equivalence(0.02, 0.03, 9, PAPER, alpha=0.025)["equivalent"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tost_matches_statsmodels(seed):
    weightstats = pytest.importorskip("statsmodels.stats.weightstats")
    d = np.random.default_rng(seed).normal(0.03 * seed, 0.08, 12)
    nb = corrected_resampled_t(d, None)                             # no correction: se = s / sqrt(n)
    got = equivalence(nb["mean"], nb["se"], nb["n"] - 1, PAPER)
    pval, (t1, p1, _), (t2, p2, _) = weightstats.DescrStatsW(d).ttost_mean(-PAPER, PAPER)
    assert got["pval"] == pytest.approx(pval, rel=1e-9)
    assert (got["t_lower"], got["p_lower"], got["t_upper"], got["p_upper"]) == pytest.approx((t1, p1, t2, p2),
                                                                                            rel=1e-9)


def test_tost_decision_is_the_interval_inside_the_bounds():
    for delta in np.linspace(-0.12, 0.12, 49):
        got = equivalence(delta, 0.025, 14, PAPER)
        assert got["equivalent"] == (-PAPER < got["low"] and got["high"] < PAPER)
    with pytest.raises(ValueError, match="bound must be > 0"):
        equivalence(0.0, 0.02, 14, 0.0)


# --------------------------------------------------------------------------- verdict
@pytest.mark.parametrize("low, high, word", [
    (0.01, 0.20, "helps"), (0.01, 0.05, "helps"),             # above zero, even inside the bound
    (-0.20, -0.01, "hurts"), (-0.05, -0.001, "hurts"),
    (-0.03, 0.05, "equivalent"), (0.0, 0.05, "equivalent"),   # touching zero is not above it
    (-0.030, 0.237, "inconclusive"), (-0.2, 0.2, "inconclusive"), (-0.03, PAPER, "inconclusive"),
    (-0.20, 0.05, "no gain shown"), (-PAPER, 0.05, "no gain shown"),
    (float("nan"), float("nan"), "no estimate"),
])
def test_verdict_branches(low, high, word):
    assert verdict(low, high, PAPER) == word


def test_verdict_words_are_all_reached_and_bad_intervals_refused():
    made = {verdict(lo, hi, PAPER) for lo, hi in [(0.01, 0.2), (-0.2, -0.01), (-0.03, 0.05), (-0.03, 0.2),
                                                   (-0.2, 0.05), (np.nan, 0.1)]}
    assert made == set(VERDICTS)
    for bad in ((0.1, -0.1, PAPER), (-0.1, 0.1, 0.0), (-0.1, 0.1, -PAPER)):
        with pytest.raises(ValueError, match="verdict needs"):
            verdict(*bad)


# --------------------------------------------------------------------------- power_table, mode_difference
def fake_run(seed: int, shift: float = 0.0, order=None) -> protocol.CrossvalResult:
    """A run's fold table (2 repeats x 3 folds, 4 test and 8 train targets) with random LPIPS and CLPIPS
    statistics; CLPIPS better by ``shift`` on average."""
    rng = np.random.default_rng(seed)
    folds = pd.DataFrame({"repeat": np.repeat([0, 1], 3), "fold": np.tile([0, 1, 2], 2),
                          "n_train_targets": 8, "n_test_targets": 4, "n_test_rows": 24})
    for i, stat in enumerate(protocol.STATISTICS):
        lp = rng.uniform(0.3, 0.6, 6)
        cl = lp + shift * (i + 1) + rng.normal(0, 0.05, 6)
        folds = folds.assign(**{f"lpips_{stat}": lp, f"clpips_{stat}": cl, f"delta_{stat}": cl - lp})
    if order is not None:
        folds = folds.iloc[order].reset_index(drop=True)
    return protocol.CrossvalResult(folds=folds, inner=pd.DataFrame(), oof=pd.DataFrame(), weights=np.zeros((6, 1)))


def direct_row(d: np.ndarray, ratio: float, ci: float, bound: float) -> dict:
    """The corrected t interval written out: s^2 (1/J + ratio), t_{(1+ci)/2, J-1}."""
    j = len(d)
    mean = sum(d) / j
    se = np.sqrt(sum((x - mean) ** 2 for x in d) / (j - 1) * (1 / j + ratio))
    half = sps.t.ppf((1 + ci) / 2, j - 1) * se
    tost = max(sps.t.sf((mean + bound) / se, j - 1), sps.t.cdf((mean - bound) / se, j - 1))
    return {"delta": mean, "low": mean - half, "high": mean + half, "se": se, "df": j - 1.0, "tost_pval": tost}


@pytest.mark.parametrize("ci", [0.95, 0.9])
def test_power_table_against_direct_computation(ci):
    res = fake_run(0, shift=0.02)
    table = power_table(res, PAPER, ci=ci)
    assert list(table.index) == list(protocol.STATISTICS) and table.index[0] == "icc_A_k"
    for stat, row in table.iterrows():
        ref = direct_row(res.folds[f"delta_{stat}"].to_numpy(), 4 / 8, ci, PAPER)
        for key, value in ref.items():
            assert row[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (stat, key)
        assert row["n_folds"] == 6 and row["bound"] == PAPER
        assert row["mde"] == pytest.approx(minimal_detectable_effect(ref["se"], 5, 1 - ci), rel=1e-12)
        assert row["power_at_bound"] == pytest.approx(detection_power(PAPER, ref["se"], 5, 1 - ci), rel=1e-12)
        assert row["verdict"] == verdict(ref["low"], ref["high"], PAPER)
        # the shown interval lies inside ± bound exactly when TOST at (1 - ci) / 2 says equivalent
        assert (row["tost_pval"] < (1 - ci) / 2) == (-PAPER < row["low"] and row["high"] < PAPER)
    # the summary gives the same table (its SE read back from the interval)
    from_summary = power_table(res.summary(ci=ci, bootstrap=False), PAPER, ci=ci)
    pd.testing.assert_frame_equal(from_summary[table.columns], table, rtol=1e-9, check_dtype=False)


def test_power_table_per_statistic_bounds_and_bad_input():
    res = fake_run(1)
    table = power_table(res, {"spearman_raw": 0.092, "icc_A_k": PAPER})
    assert list(table.index) == ["icc_A_k", "spearman_raw"]
    assert table["bound"].tolist() == [PAPER, 0.092]
    assert table.at["spearman_raw", "verdict"] == verdict(table.at["spearman_raw", "low"],
                                                          table.at["spearman_raw", "high"], 0.092)
    with pytest.raises(ValueError, match="no statistic"):
        power_table(res, {"icc": PAPER})
    with pytest.raises(TypeError, match="CrossvalResult or its summary"):
        power_table(pd.DataFrame({"delta": [0.1]}), PAPER)


def test_mode_difference_pairs_folds_by_repeat_and_fold():
    by_target, by_image = fake_run(2, shift=0.05), fake_run(3, order=[5, 3, 4, 0, 2, 1])   # rows in another order
    got = mode_difference(by_target, by_image, "icc_A_k", ci=0.95)
    a = by_target.folds.sort_values(["repeat", "fold"])["delta_icc_A_k"].to_numpy()
    b = by_image.folds.sort_values(["repeat", "fold"])["delta_icc_A_k"].to_numpy()
    ref = direct_row(a - b, 4 / 8, 0.95, PAPER)
    for key in ("delta", "low", "high", "se", "df"):
        assert got[key] == pytest.approx(ref[key], rel=1e-9, abs=1e-12), key
    assert got["n_folds"] == 6
    fewer = dataclasses.replace(by_image, folds=by_image.folds.iloc[:5])
    with pytest.raises(ValueError, match="different \\(repeat, fold\\)"):
        mode_difference(by_target, fewer)


def test_old_paths_in_clpips_stats_work_for_one_release():
    with pytest.warns(DeprecationWarning, match=r"clpips\.stats\.verdict moved to clpips\.book\.power\.verdict"):
        from clpips.stats import verdict as old
    assert old is verdict
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        import clpips.stats
        clpips.stats.nothing
