"""The worked example (chapter 02): hand formulas against scipy, pingouin and clpips.stats."""
from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from clpips.book import worked_example as we
from clpips.defaults import DEFAULTS
from clpips.stats import DegenerateDataWarning, icc, interpret_icc


def _long(reference, other) -> pd.DataFrame:
    n = len(reference)
    return pd.DataFrame({"item": list(range(n)) * 2, "rater": ["ref"] * n + ["other"] * n,
                         "rank": np.concatenate([reference, other]).astype(float)})


def _pingouin(reference, other) -> pd.Series:
    pg = pytest.importorskip("pingouin")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pingouin's own pandas FutureWarning and divide-by-zero warnings
        res = pg.intraclass_corr(_long(reference, other), targets="item", raters="rater", ratings="rank")
    return res.set_index("Type")["ICC"]


# ----------------------------------------------------------------------------- parsing
def test_parse_ranking_accepts_commas_and_spaces():
    assert we.parse_ranking("1,3,4,2").tolist() == [1, 3, 4, 2]
    assert we.parse_ranking(" 2 1  3").tolist() == [2, 1, 3]
    assert we.parse_ranking([3, 1, 2]).tolist() == [3, 1, 2]


@pytest.mark.parametrize("text", ["1,2,2,4", "1,2,3,5", "0,1,2,3", "1,2", "a,b,c", "1.5,2,3"])
def test_parse_ranking_rejects_non_permutations(text):
    with pytest.raises(ValueError, match="example_r1"):
        we.parse_ranking(text, name="example_r1")


def test_ranking_text_round_trips():
    assert we.ranking_text(we.parse_ranking("4,1,3,2")) == "4,1,3,2"


# ----------------------------------------------------------------------------- the chosen rankings
def test_default_rankings_have_the_papers_labels():
    """R1 is "moderate" and R2 "poor" on Koo & Li, as ICC(A,k) against the reference."""
    ref = we.parse_ranking(DEFAULTS.example_reference)
    r1, r2 = we.parse_ranking(DEFAULTS.example_r1), we.parse_ranking(DEFAULTS.example_r2)
    summary = we.compare_rankings(ref, {"R1": r1, "R2": r2})
    assert summary.loc["R1", "Koo & Li"] == "moderate"
    assert summary.loc["R2", "Koo & Li"] == "poor"
    assert summary.loc["R1", "ICC(A,k)"] == pytest.approx(0.64, abs=1e-12)   # as stated in defaults.py
    assert summary.loc["R2", "ICC(A,k)"] == pytest.approx(0.40, abs=1e-12)
    for name, other in (("R1", r1), ("R2", r2)):   # the same labels from clpips.stats and pingouin
        ours = icc(_long(ref, other), "item", "rater", "rank").set_index("Type")["ICC"]
        assert interpret_icc(ours["ICC(A,k)"], "koo_li") == summary.loc[name, "Koo & Li"]
        assert _pingouin(ref, other)["ICC(A,k)"] == pytest.approx(summary.loc[name, "ICC(A,k)"], abs=1e-12)


# ----------------------------------------------------------------------------- Spearman by hand
@pytest.mark.parametrize("n", [3, 4, 5])
def test_spearman_by_hand_matches_scipy_on_every_permutation(n):
    ref = np.arange(1, n + 1)
    for other in itertools.permutations(ref):
        assert we.spearman_by_hand(ref, other) == pytest.approx(stats.spearmanr(ref, other).statistic, abs=1e-12)


def test_rank_difference_table():
    tab = we.rank_difference_table([1, 2, 3, 4], [1, 3, 4, 2], names=("reference", "R1"))
    assert tab.index.tolist() == ["A", "B", "C", "D"]
    assert tab["d"].tolist() == [0, 1, 1, -2]
    assert tab["d²"].sum() == 6


# ----------------------------------------------------------------------------- ANOVA and ICC by hand
def test_two_way_anova_steps_on_the_shrout_fleiss_table():
    """Shrout & Fleiss (1979) Table 2: BMS 11.24, JMS 32.49, EMS 1.02 (as published, rounded)."""
    sf = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])
    steps = we.two_way_anova(sf)
    assert (steps.n, steps.k, steps.df_error) == (6, 4, 15)
    assert steps.ss_rows + steps.ss_cols + steps.ss_error == pytest.approx(steps.ss_total)
    assert (round(steps.msr, 2), round(steps.msc, 2), round(steps.mse, 2)) == (11.24, 32.49, 1.02)
    values = we.icc_formulas(steps.msr, steps.msc, steps.mse, steps.n, steps.k)
    assert [round(values[v], 2) for v in ("ICC(A,1)", "ICC(C,1)", "ICC(A,k)", "ICC(C,k)")] == [0.29, 0.71, 0.62, 0.91]


@pytest.mark.parametrize("n", [3, 4])
def test_hand_formulas_match_pingouin_and_clpips_on_every_permutation(n):
    ref = np.arange(1, n + 1)
    table = we.permutation_table(ref)
    assert len(table) == math.factorial(n)
    for _, row in table.iterrows():
        other = we.parse_ranking(row["ranking"])
        steps = we.two_way_anova(we.ratings_table({"ref": ref, "other": other}))
        assert steps.msc == pytest.approx(0, abs=1e-12)          # both raters rank 1..n: no rater offset
        assert steps.msr == pytest.approx(row["MSR"]) and steps.mse == pytest.approx(row["MSE"])
        pg = _pingouin(ref, other)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateDataWarning)
            ours = icc(_long(ref, other), "item", "rater", "rank").set_index("Type")["ICC"]
        for variant in we.VARIANTS:
            hand = row[variant]
            if np.isfinite(hand):
                assert pg[variant] == pytest.approx(hand, rel=1e-9, abs=1e-12), (row["ranking"], variant)
            if variant == "ICC(A,k)" and not row["defined"]:
                assert np.isnan(ours[variant])                    # clpips refuses a negative denominator
            elif np.isfinite(hand) and np.isfinite(ours[variant]):
                assert ours[variant] == pytest.approx(hand, rel=1e-9, abs=1e-12), (row["ranking"], variant)


# ----------------------------------------------------------------------------- the closed forms
@pytest.mark.parametrize("n", [3, 4, 5, 6])
def test_icc_of_two_rankings_is_a_function_of_rho(n):
    """ICC(C,k) = 2 rho / (1 + rho) exactly; ICC(A,k) = 2 rho / (1 + rho - (1 - rho)/n), not the same."""
    table = we.permutation_table(np.arange(1, n + 1))
    rho = table["rho"].to_numpy()
    ok = rho > -1                                   # rho = -1: MSR = 0, both sides -inf
    np.testing.assert_allclose(table["ICC(C,k)"][ok], we.icc_ck_from_rho(rho[ok]), rtol=1e-12, atol=1e-12)
    finite = np.isfinite(table["ICC(A,k)"].to_numpy())
    np.testing.assert_allclose(table["ICC(A,k)"][finite], we.icc_ak_from_rho(rho[finite], n), rtol=1e-9,
                               atol=1e-12)
    inner = (rho > 0) & (rho < 1)
    assert (table["ICC(A,k)"][inner] > table["ICC(C,k)"][inner]).all()   # A,k is the larger, not equal


def test_icc_ak_reversed_and_pole():
    n = 4
    assert we.icc_ak_from_rho(-1.0, n) == pytest.approx(n)              # a reversed ranking scores n
    assert we.icc_ak_pole(n) == pytest.approx(-0.6)
    table = we.permutation_table([1, 2, 3, 4])
    reversed_row = table.loc[table["ranking"] == "4,3,2,1"].iloc[0]
    assert reversed_row["ICC(A,k)"] == pytest.approx(4.0) and not reversed_row["defined"]
    assert (table["defined"] == (table["rho"] > we.icc_ak_pole(n) + 1e-12)).all()
    assert _pingouin([1, 2, 3, 4], [4, 3, 2, 1])["ICC(A,k)"] == pytest.approx(4.0)


def test_icc_ak_converges_to_icc_ck():
    rho = np.linspace(-0.5, 0.95, 30)
    gap = np.abs(we.icc_ak_from_rho(rho, 10_000) - we.icc_ck_from_rho(rho))
    assert gap.max() < 1e-3


def test_rankings_of_samples_when_too_many():
    sample = we.rankings_of(8, limit=50, seed=1)
    assert sample.shape == (50, 8)
    assert len({tuple(r) for r in sample}) == 50
    assert (np.sort(sample, axis=1) == np.arange(1, 9)).all()
    np.testing.assert_array_equal(sample, we.rankings_of(8, limit=50, seed=1))


# ----------------------------------------------------------------------------- figures
def test_figures():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from clpips.book.plots.worked_example import plot_icc_vs_rho, plot_rankings
    from clpips.stats import interpretation_scale

    fig = plot_rankings({"reference": [1, 2, 3, 4], "R1": [1, 3, 4, 2]})
    assert len(fig.axes) == 1 and [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["reference", "R1"]
    for n in (3, 4, 6):
        table = we.permutation_table(np.arange(1, n + 1))
        fig = plot_icc_vs_rho(table, n, examples={"R1": (0.4, 0.64)}, bands=interpretation_scale("koo_li"))
        assert len(fig.axes) == 2
    plt.close("all")
