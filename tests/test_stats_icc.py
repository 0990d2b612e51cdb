"""Intraclass correlations: published values, pingouin agreement, hand-worked cases, edge cases."""
from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from clpips.book.worked_example import cicchetti_label, interpret_icc, interpretation_scale
from clpips.stats import (DegenerateDataWarning, canonical_label, icc, icc_ak_inference, icc_from_matrix,
                          icc_inference, koo_li_label, mean_squares, metric_human_table)
from clpips.stats.icc import LABELS
from tolerance import UNIT_ROUNDOFF, assert_within, icc_bound

U64 = UNIT_ROUNDOFF[np.dtype(np.float64)]

# pingouin 0.7 on pandas 3 warns about its own use of dropna(inplace=True)
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.dropna:Warning")

# Shrout & Fleiss (1979), Table 2: 6 targets x 4 judges
SHROUT_FLEISS = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])


def long_format(Y: np.ndarray, shuffle_seed: int | None = None) -> pd.DataFrame:
    n, k = Y.shape
    df = pd.DataFrame({"target": np.repeat([f"t{i}" for i in range(n)], k),
                       "rater": np.tile([f"r{j}" for j in range(k)], n),
                       "rating": Y.ravel().astype(float)})
    if shuffle_seed is not None:
        df = df.sample(frac=1.0, random_state=shuffle_seed).reset_index(drop=True)
    return df


def by_type(table: pd.DataFrame) -> pd.DataFrame:
    """Index a pingouin-style table by canonical label (old pingouin: ICC1.., CI95%)."""
    out = table.rename(columns={"CI95%": "CI95"}).copy()
    out["Type"] = [canonical_label(t) for t in out["Type"]]
    return out.set_index("Type")


# --------------------------------------------------------------------------- published values
def test_icc_shrout_fleiss_table2_published_values():
    # the six estimates Shrout & Fleiss (1979) report for their Table 2 data, to the two decimals
    # they publish (R psych::ICC prints the same: 0.17, 0.29, 0.71, 0.44, 0.62, 0.91)
    published = {"ICC(1,1)": 0.17, "ICC(A,1)": 0.29, "ICC(C,1)": 0.71,
                 "ICC(1,k)": 0.44, "ICC(A,k)": 0.62, "ICC(C,k)": 0.91}
    res = by_type(icc(long_format(SHROUT_FLEISS), "target", "rater", "rating"))
    for label, value in published.items():
        assert round(res.at[label, "ICC"], 2) == value, label


def test_icc_shrout_fleiss_matches_r_psych_output():
    # R psych::ICC(sf) as printed (F to 1 decimal, p to 5, lower bound to 3, upper to 2); output
    # reproduced in dwoll/RExRepos, interRaterICC.md
    psych = {  # label: (F, df1, df2, p, lower, upper)
        "ICC(1,1)": (1.8, 5, 18, 0.16477, -0.133, 0.72),
        "ICC(A,1)": (11.0, 5, 15, 0.00013, 0.019, 0.76),
        "ICC(C,1)": (11.0, 5, 15, 0.00013, 0.342, 0.95),
        "ICC(1,k)": (1.8, 5, 18, 0.16477, -0.884, 0.91),
        "ICC(A,k)": (11.0, 5, 15, 0.00013, 0.071, 0.93),
        "ICC(C,k)": (11.0, 5, 15, 0.00013, 0.676, 0.99),
    }
    res = by_type(icc(long_format(SHROUT_FLEISS), "target", "rater", "rating"))
    for label, (F, df1, df2, p, lower, upper) in psych.items():
        row = res.loc[label]
        assert round(row["F"], 1) == F
        assert (row["df1"], row["df2"]) == (df1, df2)
        assert round(row["pval"], 5) == p
        assert round(row["CI95"][0], 3) == lower
        assert round(row["CI95"][1], 2) == upper


def test_icc_output_has_pingouin_columns_and_labels():
    res = icc(long_format(SHROUT_FLEISS), "target", "rater", "rating")
    assert list(res.columns) == ["Type", "Description", "ICC", "F", "df1", "df2", "pval", "CI95"]
    assert tuple(res["Type"]) == LABELS
    ci = res.at[0, "CI95"]
    assert isinstance(ci, np.ndarray) and ci.dtype == float and ci.shape == (2,)
    assert ci[0] != round(ci[0], 2)  # not rounded


# --------------------------------------------------------------------------- pingouin
@pytest.fixture
def pingouin_unrounded(monkeypatch):
    pg = pytest.importorskip("pingouin")
    for key in [k for k in pg.options if k.startswith("round")]:
        monkeypatch.setitem(pg.options, key, None)
    return pg


@pytest.mark.parametrize("n, k", [(5, 2), (12, 3), (30, 4), (8, 7), (200, 2)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_icc_matches_pingouin_on_random_data(pingouin_unrounded, n, k, seed):
    rng = np.random.default_rng(seed)
    Y = 3 * rng.normal(size=(n, 1)) + rng.normal(size=(1, k)) + rng.normal(size=(n, k))
    data = long_format(Y, shuffle_seed=seed)
    ours = by_type(icc(data, "target", "rater", "rating"))
    theirs = by_type(pingouin_unrounded.intraclass_corr(data, "target", "rater", "rating"))
    bound = icc_bound(Y)                              # two float64 programs (tests/tolerance.py)
    for label in LABELS:
        for col, key in (("ICC", "ICC"), ("F", "F"), ("pval", "pval")):
            assert_within(ours.at[label, col], theirs.at[label, col], bound[label][key], what=f"{label} {col}")
        assert ours.at[label, "df1"] == theirs.at[label, "df1"]
        assert ours.at[label, "df2"] == theirs.at[label, "df2"]
        assert_within(ours.at[label, "CI95"], np.asarray(theirs.at[label, "CI95"], float),
                      np.array([bound[label]["ci_low"], bound[label]["ci_high"]]), what=f"{label} CI95")


def test_icc_nan_policy_omit_matches_pingouin(pingouin_unrounded):
    rng = np.random.default_rng(5)
    Y = 2 * rng.normal(size=(15, 1)) + rng.normal(size=(15, 3))
    data = long_format(Y)
    data.loc[[4, 20], "rating"] = np.nan
    ours = by_type(icc(data, "target", "rater", "rating", nan_policy="omit"))
    theirs = by_type(pingouin_unrounded.intraclass_corr(data, "target", "rater", "rating", nan_policy="omit"))
    complete = np.delete(Y, [4 // 3, 20 // 3], axis=0)          # long_format's rows 4 and 20: targets 1 and 6
    bound = icc_bound(complete)
    assert_within(ours["ICC"], theirs["ICC"].loc[ours.index], np.array([bound[label]["ICC"] for label in ours.index]),
                  what="ICC, incomplete targets left out")
    assert ours.at["ICC(A,k)", "df1"] == 12  # 15 targets, 2 incomplete dropped


# --------------------------------------------------------------------------- hand-worked example
def test_icc_hand_worked_two_raters_four_items_exact():
    # Human ranks 4 items 1,2,3,4; the metric swaps the middle two: 1,3,2,4.
    #   Y = [[1,1],[2,3],[3,2],[4,4]], n = 4 targets, k = 2 raters, grand mean 2.5
    #   row means 1, 2.5, 2.5, 4      -> SS_R = 2 * (2.25 + 0 + 0 + 2.25) = 9,  MS_R = 9 / 3 = 3
    #   column means 2.5, 2.5         -> SS_C = 0,                          MS_C = 0
    #   SS_total = 2.25*2 + 0.25*2 + 0.25*2 + 2.25*2 = 10
    #   SS_E = 10 - 9 - 0 = 1         -> MS_E = 1 / ((4-1)(2-1)) = 1/3
    #   SS_W = SS_C + SS_E = 1        -> MS_W = 1 / (4 * (2-1)) = 1/4
    #   ICC(1,1) = (3 - 1/4) / (3 + 1/4)                  = 11/13
    #   ICC(A,1) = (3 - 1/3) / (3 + 1/3 + 2(0 - 1/3)/4)   = (8/3) / (19/6) = 16/19
    #   ICC(C,1) = (3 - 1/3) / (3 + 1/3)                  = 4/5
    #   ICC(1,k) = (3 - 1/4) / 3                          = 11/12
    #   ICC(A,k) = (3 - 1/3) / (3 + (0 - 1/3)/4)          = (8/3) / (35/12) = 32/35
    #   ICC(C,k) = (3 - 1/3) / 3                          = 8/9
    #   F one-way = MS_R / MS_W = 12 (df 3, 4); F two-way = MS_R / MS_E = 9 (df 3, 3)
    Y = np.array([[1, 1], [2, 3], [3, 2], [4, 4]])
    ms = mean_squares(Y)
    # integer ratings: every sum exact, a mean square one or two divisions (and the literal 1/3 one): 4u
    assert (float(ms.msb), float(ms.msj), float(ms.mse), float(ms.msw)) == pytest.approx((3, 0, 1 / 3, 1 / 4),
                                                                                         rel=4 * U64, abs=0)
    assert float(ms.msj) == 0.0
    expected = {"ICC(1,1)": 11 / 13, "ICC(A,1)": 16 / 19, "ICC(C,1)": 4 / 5,
                "ICC(1,k)": 11 / 12, "ICC(A,k)": 32 / 35, "ICC(C,k)": 8 / 9}
    res = by_type(icc(long_format(Y), "target", "rater", "rating"))
    bound = icc_bound(Y)            # from mean squares within 4u: the bounds of tests/tolerance.py, far below 1e-14
    for label, value in expected.items():
        assert res.at[label, "ICC"] == pytest.approx(value, rel=0, abs=bound[label]["ICC"] + 2 * U64)
    assert res.at["ICC(1,1)", "F"] == pytest.approx(12, rel=4 * U64) and res.at["ICC(1,1)", "df2"] == 4   # 3 / (1/4)
    assert res.at["ICC(A,k)", "F"] == pytest.approx(9, rel=4 * U64) and res.at["ICC(A,k)", "df2"] == 3    # 3 / (1/3)
    # MS_C = 0 yet ICC(A,k) != ICC(C,k): they differ by -MS_E / n in the denominator
    assert res.at["ICC(A,k)", "ICC"] != pytest.approx(res.at["ICC(C,k)", "ICC"])   # 32/35 and 8/9: 0.025 apart


def test_icc_rank_ratings_have_zero_between_rater_mean_square():
    rng = np.random.default_rng(3)
    rows = []
    for s in range(40):
        human = rng.permutation(10) + 1
        rows += [(s, int(h), float(h + rng.normal(0, 3))) for h in human]
    df = pd.DataFrame(rows, columns=["set", "rank", "distance"])
    table = metric_human_table(df, "set", "rank", "distance")
    Y = table["rating"].to_numpy().reshape(-1, 2)
    ms = mean_squares(Y)
    assert float(ms.msj) == 0.0
    values = icc_from_matrix(Y)
    msb, mse, n = float(ms.msb), float(ms.mse), Y.shape[0]
    bound = icc_bound(Y)            # the same mean squares, the formula written out: 2 x 30 roundings at most
    assert float(values["ICC(A,k)"]) == pytest.approx((msb - mse) / (msb - mse / n), abs=bound["ICC(A,k)"]["ICC"])
    assert float(values["ICC(C,k)"]) == pytest.approx((msb - mse) / msb, abs=bound["ICC(C,k)"]["ICC"])
    gap = float(values["ICC(A,k)"] - values["ICC(C,k)"])
    # with MS_J = 0, gap = ICC(C,k) (MS_E / n) / (MS_R - MS_E / n) <= MS_E / (n MS_R - MS_E), as ICC(C,k) <= 1;
    # plus the float64 roundings of two ICCs (icc_bound)
    bound = icc_bound(Y)
    assert 0 < gap <= mse / (n * msb - mse) + bound["ICC(A,k)"]["ICC"] + bound["ICC(C,k)"]["ICC"]


# --------------------------------------------------------------------------- array API
def test_icc_from_matrix_batched_equals_one_by_one():
    rng = np.random.default_rng(11)
    batch = rng.normal(size=(6, 1, 1)) + rng.normal(size=(6, 9, 1)) * 2 + rng.normal(size=(6, 9, 3))
    batched = icc_from_matrix(batch)
    for b in range(len(batch)):
        single = icc_from_matrix(batch[b])
        for label in LABELS:
            assert batched[label][b] == pytest.approx(float(single[label]), abs=icc_bound(batch[b])[label]["ICC"])
    assert batched["ICC(A,k)"].shape == (6,)


def test_icc_from_matrix_variant_accepts_aliases():
    a = icc_from_matrix(SHROUT_FLEISS, "ICC2k")
    b = icc_from_matrix(SHROUT_FLEISS, "ICC(2,k)")
    c = icc_from_matrix(SHROUT_FLEISS, "ICC(A,k)")
    assert float(a) == float(b) == float(c)
    with pytest.raises(ValueError, match="unknown ICC variant"):
        icc_from_matrix(SHROUT_FLEISS, "ICC(4,1)")


def test_icc_from_table_equals_icc_from_matrix():
    res = by_type(icc(long_format(SHROUT_FLEISS, shuffle_seed=1), "target", "rater", "rating"))
    values = icc_from_matrix(SHROUT_FLEISS)
    for label in LABELS:
        assert res.at[label, "ICC"] == pytest.approx(float(values[label]), abs=icc_bound(SHROUT_FLEISS)[label]["ICC"])


# --------------------------------------------------------------------------- metric-vs-human table
def test_metric_human_table_ranks_distances_within_set_with_average_ties():
    df = pd.DataFrame({"set": ["a", "a", "a", "b", "b"], "rank": [1, 2, 3, 1, 2],
                       "d": [0.5, 0.1, 0.1, 0.9, 0.2]})
    table = metric_human_table(df, "set", "rank", "d")
    metric = table[table["rater"] == "metric"]["rating"].tolist()
    human = table[table["rater"] == "human"]["rating"].tolist()
    assert metric == [3.0, 1.5, 1.5, 2.0, 1.0]
    assert human == [1.0, 2.0, 3.0, 1.0, 2.0]
    assert table["target"].nunique() == 5
    assert list(table.columns) == ["set", "candidate", "target", "rater", "rating"]


def test_metric_human_table_uses_candidate_column_when_given():
    df = pd.DataFrame({"s": [1, 1], "cand": ["x", "y"], "rank": [1, 2], "d": [0.1, 0.2]})
    table = metric_human_table(df, "s", "rank", "d", candidate_col="cand")
    assert table["target"].unique().tolist() == ["1/x", "1/y"]


# --------------------------------------------------------------------------- edge cases
def test_icc_constant_ratings_warn_and_give_nan():
    data = long_format(np.full((5, 3), 0.1))
    with pytest.warns(DegenerateDataWarning, match="identical"):
        res = icc(data, "target", "rater", "rating")
    assert res["ICC"].isna().all() and res["F"].isna().all() and res["pval"].isna().all()


def test_icc_perfect_agreement_is_one_with_infinite_f():
    Y = np.array([[1.0, 1.0], [2.0, 2.0], [4.0, 4.0]])
    with pytest.warns(DegenerateDataWarning, match="residual mean square is zero"):
        res = by_type(icc(long_format(Y), "target", "rater", "rating"))
    np.testing.assert_array_equal(res["ICC"].to_numpy(), 1.0)
    assert np.isinf(res.at["ICC(C,1)", "F"]) and res.at["ICC(C,1)", "pval"] == 0.0
    for label in LABELS:
        np.testing.assert_array_equal(res.at[label, "CI95"], [1.0, 1.0])


def test_icc_zero_between_target_variance_gives_nan_not_inf():
    # reversed ranks: every row mean is 2.5, MS_R = 0 -> ICC(C,k), ICC(1,k), ICC(A,k) have
    # zero or negative denominators (pingouin: -inf, -inf and a spurious +4)
    Y = np.array([[1, 4], [2, 3], [3, 2], [4, 1]])
    with pytest.warns(DegenerateDataWarning, match="undefined"):
        values = icc_from_matrix(Y)
    for label in ("ICC(1,k)", "ICC(A,k)", "ICC(C,k)"):
        assert np.isnan(values[label]), label
    assert float(values["ICC(C,1)"]) == pytest.approx(-1.0, rel=8 * U64)   # integer sums exact; a few divisions
    assert all(not np.isinf(v) for v in values.values())


def test_icc_single_target_or_rater_raises():
    with pytest.raises(ValueError, match="at least 2 targets and 2 raters.*n=1"):
        icc(long_format(np.array([[1.0, 2.0, 3.0]])), "target", "rater", "rating")
    with pytest.raises(ValueError, match="k=1"):
        icc_from_matrix(np.arange(5.0).reshape(5, 1))


def test_icc_nan_raises_with_hint():
    data = long_format(SHROUT_FLEISS)
    data.loc[3, "rating"] = np.nan
    with pytest.raises(ValueError, match="missing values.*nan_policy='omit'"):
        icc(data, "target", "rater", "rating")


def test_icc_unbalanced_or_duplicated_design_raises():
    data = long_format(SHROUT_FLEISS)
    with pytest.raises(ValueError, match="unbalanced design"):
        icc(data.drop(index=5), "target", "rater", "rating")
    with pytest.raises(ValueError, match="rated more than once"):
        icc(pd.concat([data, data.iloc[:1]]), "target", "rater", "rating")


def test_icc_bad_columns_raise_clear_errors():
    data = long_format(SHROUT_FLEISS)
    with pytest.raises(ValueError, match="ratings='score' is not a column"):
        icc(data, "target", "rater", "score")
    with pytest.raises(ValueError, match="must be numeric"):
        icc(data.assign(rating=data["rating"].astype(str)), "target", "rater", "rating")
    with pytest.raises(TypeError, match="pandas DataFrame"):
        icc(SHROUT_FLEISS, "target", "rater", "rating")
    with pytest.raises(ValueError, match="nan_policy"):
        icc(data, "target", "rater", "rating", nan_policy="drop")


def test_icc_from_matrix_nan_raises():
    Y = SHROUT_FLEISS.astype(float)
    Y[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        icc_from_matrix(Y)


def test_icc_regular_data_emits_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        icc(long_format(SHROUT_FLEISS), "target", "rater", "rating")


# --------------------------------------------------------------------------- interpretation
@pytest.mark.parametrize("value, label", [
    (-0.2, "poor"), (0.4999, "poor"), (0.5, "moderate"), (0.7499, "moderate"), (0.75, "good"),
    (0.9, "good"), (0.9001, "excellent"), (1.0, "excellent"),
])
def test_koo_li_label_boundaries(value, label):
    assert koo_li_label(value) == label


@pytest.mark.parametrize("value, label", [
    (0.3999, "poor"), (0.40, "fair"), (0.59, "fair"), (0.595, "fair"), (0.60, "good"), (0.74, "good"),
    (0.7499, "good"), (0.75, "excellent"), (1.0, "excellent"),
])
def test_cicchetti_label_boundaries(value, label):
    assert cicchetti_label(value) == label


def test_interpret_icc_nan_and_out_of_range():
    assert interpret_icc(float("nan")) == "undefined"
    assert interpret_icc(1 + 1e-15) == "excellent"  # rounding slack
    with pytest.raises(ValueError, match="at most 1"):
        interpret_icc(1.2)
    with pytest.raises(ValueError, match="scale must be one of"):
        interpret_icc(0.5, scale="landis")


@pytest.mark.parametrize("scale", ["koo_li", "cicchetti"])
def test_interpretation_scale_table_is_consistent_with_labels(scale):
    table = interpretation_scale(scale)
    assert list(table.columns) == ["label", "lower", "upper", "lower_inclusive", "upper_inclusive",
                                   "interval", "source"]
    for row in table.itertuples():
        if np.isfinite(row.lower):
            at_lower = interpret_icc(row.lower, scale)
            assert (at_lower == row.label) == row.lower_inclusive
        assert (interpret_icc(row.upper, scale) == row.label) == row.upper_inclusive or row.upper == 1.0
    assert table["upper"].iloc[-1] == 1.0 and table["lower"].iloc[0] == -np.inf


# --------------------------------------------------------------------------- vectorised path
@pytest.mark.parametrize("seed", [0, 1])
def test_icc_ak_inference_batched_equals_pingouin_rows(pingouin_unrounded, seed):
    # the vectorised F test and interval of ICC(A,k) (evaluate's scorer and the ablations use it)
    rng = np.random.default_rng(seed)
    batch = [2 * rng.normal(size=(20, 1)) + rng.normal(size=(1, 2)) + rng.normal(size=(20, 2)) for _ in range(3)]
    res = icc_ak_inference(mean_squares(np.stack(batch)))
    for i, Y in enumerate(batch):
        theirs = by_type(pingouin_unrounded.intraclass_corr(long_format(Y), "target", "rater", "rating"))
        row = theirs.loc["ICC(A,k)"]
        bound = icc_bound(Y)["ICC(A,k)"]                    # two float64 programs (tests/tolerance.py)
        assert_within([res["F"][i], res["pval"][i]], [row["F"], row["pval"]], np.array([bound["F"], bound["pval"]]),
                      what="F, p")
        assert_within([res["ci_low"][i], res["ci_high"][i]], np.asarray(row["CI95"], float),
                      np.array([bound["ci_low"], bound["ci_high"]]), what="interval")
        assert (res["df1"], res["df2"]) == (row["df1"], row["df2"])


def test_icc_ak_inference_keeps_the_exact_limit_when_the_residual_is_zero():
    Y = np.array([[1.0, 1.0], [2.0, 2.0], [4.0, 4.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)
        res = icc_ak_inference(mean_squares(Y))
    assert np.isinf(res["F"]) and res["pval"] == 0.0
    assert (float(res["ci_low"]), float(res["ci_high"])) == (1.0, 1.0)


# --------------------------------------------------------------------------- the two paths tied
def tied_cases():
    rng = np.random.default_rng(20)
    cases = {"shrout_fleiss": SHROUT_FLEISS.astype(float)}
    for n, k in [(5, 2), (12, 3), (30, 4), (8, 7), (200, 2), (1000, 2)]:
        cases[f"normal_{n}x{k}"] = 3 * rng.normal(size=(n, 1)) + rng.normal(size=(1, k)) + rng.normal(size=(n, k))
    cases["offset_100x3"] = 50 + cases["normal_30x4"][:, :3]           # a large mean: pingouin's sums lose digits
    rank = np.concatenate([rng.permutation(10) + 1 for _ in range(60)])
    ranks = metric_human_table(pd.DataFrame({"set": np.repeat(np.arange(60), 10), "rank": rank,
                                             "d": rank + rng.normal(0, 3, 600)}), "set", "rank", "d")
    cases["ranks_600x2"] = ranks["rating"].to_numpy(float).reshape(-1, 2)
    return cases


@pytest.mark.parametrize("case", list(tied_cases()))
def test_vectorised_path_equals_pingouin_within_derived_bounds(case):
    """The vectorised path (icc_inference of mean squares: the bootstrap's, the scorer's) against the
    reference, icc() = pingouin.intraclass_corr: every variant's ICC, F, p-value and interval ends."""
    Y = tied_cases()[case]
    reference = icc(long_format(Y), "target", "rater", "rating").set_index("Type")
    ours = icc_inference(mean_squares(Y))
    bound = icc_bound(Y)
    for label in LABELS:
        row = reference.loc[label]
        theirs = {"ICC": row["ICC"], "F": row["F"], "pval": row["pval"], "ci_low": row["CI95"][0],
                  "ci_high": row["CI95"][1]}
        for key, value in theirs.items():
            err = abs(float(ours[label][key]) - float(value))
            assert err <= bound[label][key], f"{case} {label} {key}: |difference| {err:.3g} > {bound[label][key]:.3g}"
        assert (ours[label]["df1"], ours[label]["df2"]) == (row["df1"], row["df2"])


# --------------------------------------------------------------------------- more bad input, one line each
@pytest.mark.parametrize("Y", [np.arange(3.0), np.float64(2.0)])
def test_icc_from_matrix_of_fewer_than_two_dimensions_is_named(Y):
    with pytest.raises(ValueError, match=r"^expected a targets x raters matrix \(n, k\) or a batch \(\.\.\., n, k\), "
                                         rf"got shape {re.escape(str(np.shape(Y)))}$"):
        icc_from_matrix(Y)


def test_icc_of_true_false_ratings_is_the_icc_of_ones_and_zeros():
    data = long_format((SHROUT_FLEISS > 4).astype(int))
    as_bool = icc(data.assign(rating=data["rating"].astype(bool)), "target", "rater", "rating")
    pd.testing.assert_frame_equal(as_bool, icc(data.assign(rating=data["rating"].astype(float)), "target", "rater",
                                               "rating"))


def test_icc_without_a_complete_row_is_named():
    data = long_format(SHROUT_FLEISS).assign(rating=np.nan)
    with pytest.raises(ValueError, match=r"^icc: the table has no \(complete\) rows$"):
        icc(data, "target", "rater", "rating", nan_policy="omit")
    with pytest.raises(ValueError, match=r"^icc: the table has no \(complete\) rows$"):
        icc(long_format(SHROUT_FLEISS).iloc[:0], "target", "rater", "rating")


def test_icc_of_arrays_names_one_that_is_not_1d_and_columns_used_twice():
    data = long_format(SHROUT_FLEISS)
    with pytest.raises(ValueError, match=r"^icc: targets must be a 1-D array when data is None, got shape \(6, 4\)$"):
        icc(None, SHROUT_FLEISS, data["rater"].to_numpy(), data["rating"].to_numpy())
    from_arrays = icc(None, data["target"].to_numpy(), data["rater"].to_numpy(), data["rating"].to_numpy())
    pd.testing.assert_frame_equal(from_arrays, icc(data, "target", "rater", "rating"))
    with pytest.raises(ValueError, match=r"^icc: each parameter needs its own column, got \{'targets': 'target', "
                                         r"'raters': 'target', 'ratings': 'rating'\}$"):
        icc(data, "target", "target", "rating")
