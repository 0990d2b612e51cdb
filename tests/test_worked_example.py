"""The worked example (chapter 02): its hand formulas against scipy, pingouin and clpips.stats.

The arithmetic lives in the chapter (``notebooks/02_worked_example.py``), in visible cells;
:func:`chapter` runs the chapter's imports and ``def`` statements, so these tests check the
very functions a reader sees there.
"""
from __future__ import annotations

import ast
import itertools
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from clpips.book import worked_example as we
from clpips.book.defaults import DEFAULTS
from clpips.book.worked_example import icc_ak_pole, icc_ck_from_rho, interpret_icc
from clpips.stats import DegenerateDataWarning, icc, icc_ak_from_rho
from tolerance import icc_ak_bound, spearman_bound

CHAPTER = Path(__file__).resolve().parents[1] / "notebooks" / "02_worked_example.py"

#: the ICC variants of a two-way table that the chapter computes
VARIANTS = ("ICC(A,1)", "ICC(A,k)", "ICC(C,1)", "ICC(C,k)")


@pytest.fixture(scope="module")
def chapter() -> dict:
    """The functions chapter 02 defines: its top-level imports and ``def`` statements, run on their own."""
    tree = ast.parse(CHAPTER.read_text(encoding="utf-8"), filename=str(CHAPTER))
    kept = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef))]
    namespace: dict = {}
    exec(compile(ast.Module(body=kept, type_ignores=[]), str(CHAPTER), "exec"), namespace)
    return namespace


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


def test_the_chapter_defines_its_arithmetic(chapter):
    for name in ("differences", "spearman_by_hand", "mean_squares", "icc_formulas", "agreement", "every_ranking"):
        assert callable(chapter.get(name)), name


# ----------------------------------------------------------------------------- parsing
def test_parse_ranking_accepts_commas_and_spaces():
    assert we.parse_ranking("1,3,4,2").tolist() == [1, 3, 4, 2]
    assert we.parse_ranking(" 2 1  3").tolist() == [2, 1, 3]
    assert we.parse_ranking([3, 1, 2]).tolist() == [3, 1, 2]


@pytest.mark.parametrize("text", ["1,2,2,4", "1,2,3,5", "0,1,2,3", "1,2", "a,b,c", "1.5,2,3"])
def test_parse_ranking_rejects_non_permutations(text):
    with pytest.raises(ValueError, match="example_r1"):
        we.parse_ranking(text, name="example_r1")


def test_parse_ranking_wants_as_many_items_as_the_reference():
    assert we.parse_ranking("2,1,3", "example_r1", n=3).tolist() == [2, 1, 3]
    with pytest.raises(ValueError, match="example_r1: expected 4 ranks"):
        we.parse_ranking("2,1,3", "example_r1", n=4)


def test_ranking_text_round_trips():
    assert we.ranking_text(we.parse_ranking("4,1,3,2")) == "4,1,3,2"


# ----------------------------------------------------------------------------- the chosen rankings
def test_default_rankings_have_the_papers_labels(chapter):
    """R1 is "moderate" and R2 "poor" on Koo & Li, as ICC(A,k) against the reference."""
    ref = we.parse_ranking(DEFAULTS.example_reference)
    r1, r2 = we.parse_ranking(DEFAULTS.example_r1), we.parse_ranking(DEFAULTS.example_r2)
    summary = {name: chapter["agreement"](ref, other) for name, other in (("R1", r1), ("R2", r2))}
    label = {name: interpret_icc(row["ICC(A,k)"] if row["defined"] else math.nan, "koo_li")
             for name, row in summary.items()}
    assert label["R1"] == "moderate"
    assert label["R2"] == "poor"
    # as stated in defaults.py: the float64 ICC within its bound of the exact value (tests/tolerance.py), and
    # the decimal literal within its own rounding
    for name, other, stated in (("R1", r1, 0.64), ("R2", r2, 0.40)):
        tol = icc_ak_bound(ref, other)
        assert summary[name]["ICC(A,k)"] == pytest.approx(stated, abs=tol + 2.0 ** -53 * stated)
    for name, other in (("R1", r1), ("R2", r2)):   # the same labels from clpips.stats and pingouin
        ours = icc(_long(ref, other), "item", "rater", "rank").set_index("Type")["ICC"]
        assert interpret_icc(ours["ICC(A,k)"], "koo_li") == label[name]
        assert _pingouin(ref, other)["ICC(A,k)"] == pytest.approx(summary[name]["ICC(A,k)"],
                                                                  abs=icc_ak_bound(ref, other))


# ----------------------------------------------------------------------------- Spearman by hand
@pytest.mark.parametrize("n", [3, 4, 5])
def test_spearman_by_hand_matches_scipy_on_every_permutation(chapter, n):
    ref = np.arange(1, n + 1)
    for other in itertools.permutations(ref):
        assert chapter["spearman_by_hand"](ref, other) == pytest.approx(stats.spearmanr(ref, other).statistic,
                                                                        abs=spearman_bound(ref, other))
    every = np.array(list(itertools.permutations(ref)))                 # one call, one ranking per row
    # every permutation of 1..n has the same spread: spearman_bound(ref, ref) bounds them all
    np.testing.assert_allclose(chapter["spearman_by_hand"](ref, every),
                               [stats.spearmanr(ref, o).statistic for o in every], rtol=0,
                               atol=spearman_bound(ref, ref))


def test_rank_difference_table(chapter):
    tab = chapter["differences"](np.array([1, 2, 3, 4]), np.array([1, 3, 4, 2]), "R1")
    assert tab.index.tolist() == ["A", "B", "C", "D"]
    assert tab.columns.tolist() == ["reference", "R1", "d", "d²"]
    assert tab["d"].tolist() == [0, 1, 1, -2]
    assert tab["d²"].sum() == 6


# ----------------------------------------------------------------------------- ANOVA and ICC by hand
def test_two_way_anova_steps_on_the_shrout_fleiss_table(chapter):
    """Shrout & Fleiss (1979) Table 2: BMS 11.24, JMS 32.49, EMS 1.02 (as published, rounded)."""
    sf = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], dtype=float)
    n, k = sf.shape
    df_error = (n - 1) * (k - 1)
    assert (n, k, df_error) == (6, 4, 15)
    msr, msc, mse = chapter["mean_squares"](sf)
    ss_total = ((sf - sf.mean()) ** 2).sum()
    assert msr * (n - 1) + msc * (k - 1) + mse * df_error == pytest.approx(ss_total)   # the sums of squares add up
    assert (round(msr, 2), round(msc, 2), round(mse, 2)) == (11.24, 32.49, 1.02)
    values = chapter["icc_formulas"](msr, msc, mse, n, k)
    assert [round(values[v], 2) for v in ("ICC(A,1)", "ICC(C,1)", "ICC(A,k)", "ICC(C,k)")] == [0.29, 0.71, 0.62, 0.91]


def test_mean_squares_of_many_tables_at_once(chapter):
    """The batched call (leading axis) gives each table's own mean squares."""
    rng = np.random.default_rng(3)
    tables = rng.normal(size=(5, 7, 3))
    batched = chapter["mean_squares"](tables)
    for i, table in enumerate(tables):
        np.testing.assert_allclose([b[i] for b in batched], chapter["mean_squares"](table), rtol=1e-12)


@pytest.mark.parametrize("n", [3, 4])
def test_hand_formulas_match_pingouin_and_clpips_on_every_permutation(chapter, n):
    ref = np.arange(1, n + 1)
    table = chapter["every_ranking"](ref)
    assert len(table) == math.factorial(n)
    for _, row in table.iterrows():
        other = we.parse_ranking(row["ranking"])
        msr, msc, mse = chapter["mean_squares"](np.column_stack([ref, other]).astype(float))
        assert msc == pytest.approx(0, abs=1e-12)                 # both raters rank 1..n: no rater offset
        assert msr == pytest.approx(row["MSR"]) and mse == pytest.approx(row["MSE"])
        pg = _pingouin(ref, other)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateDataWarning)
            ours = icc(_long(ref, other), "item", "rater", "rank").set_index("Type")["ICC"]
        for variant in VARIANTS:
            hand = row[variant]
            if np.isfinite(hand):
                assert pg[variant] == pytest.approx(hand, rel=1e-9, abs=1e-12), (row["ranking"], variant)
            if variant == "ICC(A,k)" and not row["defined"]:
                assert np.isnan(ours[variant])                    # clpips refuses a negative denominator
            elif np.isfinite(hand) and np.isfinite(ours[variant]):
                assert ours[variant] == pytest.approx(hand, rel=1e-9, abs=1e-12), (row["ranking"], variant)


# ----------------------------------------------------------------------------- the closed forms
@pytest.mark.parametrize("n", [3, 4, 5, 6])
def test_icc_of_two_rankings_is_a_function_of_rho(chapter, n):
    """ICC(C,k) = 2 rho / (1 + rho) exactly; ICC(A,k) = 2 rho / (1 + rho - (1 - rho)/n), not the same."""
    table = chapter["every_ranking"](np.arange(1, n + 1))
    rho = table["rho"].to_numpy()
    ok = rho > -1                                   # rho = -1: MSR = 0, both sides -inf
    np.testing.assert_allclose(table["ICC(C,k)"][ok], icc_ck_from_rho(rho[ok]), rtol=1e-12, atol=1e-12)
    finite = np.isfinite(table["ICC(A,k)"].to_numpy())
    np.testing.assert_allclose(table["ICC(A,k)"][finite], icc_ak_from_rho(rho[finite], n), rtol=1e-9,
                               atol=1e-12)
    inner = (rho > 0) & (rho < 1)
    assert (table["ICC(A,k)"][inner] > table["ICC(C,k)"][inner]).all()   # A,k is the larger, not equal


def test_icc_ak_reversed_and_pole(chapter):
    n = 4
    assert icc_ak_from_rho(-1.0, n) == pytest.approx(n)                 # a reversed ranking scores n
    assert icc_ak_pole(n) == pytest.approx(-0.6)
    table = chapter["every_ranking"](np.array([1, 2, 3, 4]))
    reversed_row = table.loc[table["ranking"] == "4,3,2,1"].iloc[0]
    assert reversed_row["ICC(A,k)"] == pytest.approx(4.0) and not reversed_row["defined"]
    assert chapter["agreement"](np.array([1, 2, 3, 4]), np.array([4, 3, 2, 1]))["ICC(A,k)"] == pytest.approx(4.0)
    assert (table["defined"] == (table["rho"] > icc_ak_pole(n) + 1e-12)).all()
    assert _pingouin([1, 2, 3, 4], [4, 3, 2, 1])["ICC(A,k)"] == pytest.approx(4.0)


def test_icc_ak_converges_to_icc_ck():
    rho = np.linspace(-0.5, 0.95, 30)
    gap = np.abs(icc_ak_from_rho(rho, 10_000) - icc_ck_from_rho(rho))
    # |gap| = 2|rho|(1 - rho) / (n (1 + rho)(1 + rho - (1 - rho) / n)): over rho in [-0.5, 0.95] largest at
    # rho = -0.5, 6 / (n - 3); plus a few float64 roundings of values near 1
    assert gap.max() <= 6 / (10_000 - 3) + 16 * 2.0 ** -53


def test_rankings_of_samples_when_too_many():
    sample = we.rankings_of(8, limit=50, seed=1)
    assert sample.shape == (50, 8)
    assert len({tuple(r) for r in sample}) == 50
    assert (np.sort(sample, axis=1) == np.arange(1, 9)).all()
    np.testing.assert_array_equal(sample, we.rankings_of(8, limit=50, seed=1))


# ----------------------------------------------------------------------------- figures
def test_figures(chapter):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from clpips.book.plots.worked_example import plot_icc_vs_rho, plot_rankings
    from clpips.book.worked_example import interpretation_scale

    fig = plot_rankings({"reference": [1, 2, 3, 4], "R1": [1, 3, 4, 2]})
    assert len(fig.axes) == 1 and [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["reference", "R1"]
    for n in (3, 4, 6):
        table = chapter["every_ranking"](np.arange(1, n + 1))
        fig = plot_icc_vs_rho(table, n, examples={"R1": (0.4, 0.64)}, bands=interpretation_scale("koo_li"))
        assert len(fig.axes) == 2
    plt.close("all")


def test_old_paths_of_chapter_02s_scales_work_for_one_release():
    with pytest.warns(DeprecationWarning, match=r"clpips\.stats\.icc_ck_from_rho moved to clpips\.book\.worked_example"):
        from clpips.stats import icc_ck_from_rho as old
    assert old is icc_ck_from_rho
    with pytest.warns(DeprecationWarning, match="moved to clpips.book.worked_example.interpret_icc"):
        from clpips.stats.interpret import interpret_icc as old_interpret
    assert old_interpret is interpret_icc
