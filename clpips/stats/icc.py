"""Intraclass correlation coefficients (ICC) from a two-way ANOVA.

:func:`icc` is :func:`pingouin.intraclass_corr`, the reference (a long table in, pingouin's table out,
intervals unrounded). The vectorised path works on the mean squares of one ``targets x raters``
matrix or a batch of them (the bootstrap's resamples, an evaluation's metrics): :func:`mean_squares`,
then :func:`icc_from_mean_squares` (estimates) and :func:`icc_inference` (F tests, intervals). The
tests tie the two. Pingouin sums squares by subtraction, so for a zero residual it returns rounding
noise and for a non-positive variance estimate ``inf`` or an ICC above 1: for such data :func:`icc`
returns the vectorised table, with the exact limits (F = inf, p = 0, [1, 1]) and NaN where undefined.
Which variant, and why ICC(A,k) on ranks restates Spearman's rho: ``book/method.md``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from clpips.stats.tables import check_table

__all__ = ["icc", "icc_from_matrix", "icc_from_mean_squares", "icc_inference", "icc_ak_inference", "mean_squares",
           "metric_human_table", "MeanSquares", "DegenerateDataWarning", "LABELS", "ALIASES", "canonical_label"]

#: ICC variants in output order (pingouin >= 0.7 labels, McGraw & Wong 1996)
LABELS: tuple[str, ...] = ("ICC(1,1)", "ICC(A,1)", "ICC(C,1)", "ICC(1,k)", "ICC(A,k)", "ICC(C,k)")

#: the same variants in words (the ``Description`` column of pingouin < 0.7)
DESCRIPTIONS: dict[str, str] = {
    "ICC(1,1)": "Single raters absolute",
    "ICC(A,1)": "Single random raters",
    "ICC(C,1)": "Single fixed raters",
    "ICC(1,k)": "Average raters absolute",
    "ICC(A,k)": "Average random raters",
    "ICC(C,k)": "Average fixed raters",
}

#: other names of the variants: pingouin < 0.7 and R psych (``ICC1``...),
#: Shrout & Fleiss (1979) (``ICC(2,1)``...), mapped to :data:`LABELS`
ALIASES: dict[str, str] = {
    "ICC1": "ICC(1,1)", "ICC2": "ICC(A,1)", "ICC3": "ICC(C,1)",
    "ICC1k": "ICC(1,k)", "ICC2k": "ICC(A,k)", "ICC3k": "ICC(C,k)",
    "ICC(2,1)": "ICC(A,1)", "ICC(3,1)": "ICC(C,1)",
    "ICC(2,k)": "ICC(A,k)", "ICC(3,k)": "ICC(C,k)",
}


class DegenerateDataWarning(RuntimeWarning):
    """A statistic is undefined for these data (zero variance, constant input...): NaN (or its exact limit) and why."""


def canonical_label(name: str) -> str:
    """Any known name of an ICC variant (``"ICC2k"``, ``"ICC(3,1)"``...) as its label in :data:`LABELS`."""
    if name in LABELS:
        return name
    try:
        return ALIASES[name]
    except KeyError:
        raise ValueError(f"unknown ICC variant {name!r}; expected one of {list(LABELS)} "
                         f"or an alias in {sorted(ALIASES)}") from None


# --------------------------------------------------------------------------- ANOVA
@dataclass(frozen=True)
class MeanSquares:
    """Mean squares of the two-way ANOVA without interaction, arrays over the batch axes.

    ``msb`` between targets (df ``n - 1``), ``msj`` between raters (``k - 1``), ``mse`` residual
    (``(n - 1)(k - 1)``), ``msw`` within targets (one-way model, ``n(k - 1)``), ``sst`` total (0 exactly
    when every rating is the same); ``n`` and ``k`` may be arrays (the bootstrap varies ``n``).
    """

    msb: np.ndarray
    msj: np.ndarray
    mse: np.ndarray
    msw: np.ndarray
    sst: np.ndarray
    n: int | np.ndarray
    k: int | np.ndarray

    @classmethod
    def from_sums_of_squares(cls, ssb, ssj, sse, n, k) -> "MeanSquares":
        ssb, ssj, sse = (np.asarray(x, dtype=float) for x in (ssb, ssj, sse))
        return cls(
            msb=ssb / (n - 1),
            msj=ssj / (k - 1),
            mse=sse / ((n - 1) * (k - 1)),
            msw=(ssj + sse) / (n * (k - 1)),
            sst=ssb + ssj + sse,
            n=n,
            k=k,
        )


def mean_squares(Y: np.ndarray) -> MeanSquares:
    """Two-way ANOVA mean squares of ``Y``, ``(..., n, k)``: complete ratings, targets x raters.

    Shifted by the first rating (the ANOVA is shift-invariant), so a constant matrix gives exactly zero;
    the residual is summed directly, not obtained by subtraction.
    """
    Y = np.asarray(Y, dtype=float)
    if Y.ndim < 2:
        raise ValueError(f"expected a targets x raters matrix (n, k) or a batch (..., n, k), got shape {Y.shape}")
    n, k = Y.shape[-2:]
    if n < 2 or k < 2:
        raise ValueError(f"an ICC needs at least 2 targets and 2 raters, got n={n} targets, k={k} raters")
    if not np.isfinite(Y).all():
        raise ValueError("the ratings matrix holds NaN or inf; remove incomplete targets first")
    Y = Y - Y[..., :1, :1]
    grand = Y.mean(axis=(-2, -1), keepdims=True)
    rows = Y.mean(axis=-1, keepdims=True)
    cols = Y.mean(axis=-2, keepdims=True)
    ssb = k * ((rows - grand) ** 2).sum(axis=(-2, -1))
    ssj = n * ((cols - grand) ** 2).sum(axis=(-2, -1))
    sse = ((Y - rows - cols + grand) ** 2).sum(axis=(-2, -1))
    return MeanSquares.from_sums_of_squares(ssb, ssj, sse, n, k)


def _ratio(num: np.ndarray, den: np.ndarray, *, positive: bool = False) -> np.ndarray:
    """num / den, NaN where den == 0 (or, with ``positive``, where den <= 0)."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=float), np.asarray(den, dtype=float))
    bad = den <= 0 if positive else den == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / np.where(bad, 1.0, den)
    return np.where(bad, np.nan, out)


# --------------------------------------------------------------------------- the vectorised path
def icc_from_mean_squares(ms: MeanSquares, variant: str | None = None) -> dict[str, np.ndarray] | np.ndarray:
    """The six ICC estimates (Shrout & Fleiss 1979; McGraw & Wong 1996), or ``variant``'s only.

    NaN where a denominator (a variance estimate) is zero or negative, where pingouin gives ±inf or,
    for ICC(A,k), a value that can exceed 1.
    """
    msb, msj, mse, msw, n, k = ms.msb, ms.msj, ms.mse, ms.msw, ms.n, ms.k
    values = {
        "ICC(1,1)": _ratio(msb - msw, msb + (k - 1) * msw, positive=True),
        "ICC(A,1)": _ratio(msb - mse, msb + (k - 1) * mse + k * (msj - mse) / n, positive=True),
        "ICC(C,1)": _ratio(msb - mse, msb + (k - 1) * mse, positive=True),
        "ICC(1,k)": _ratio(msb - msw, msb, positive=True),
        "ICC(A,k)": _ratio(msb - mse, msb + (msj - mse) / n, positive=True),
        "ICC(C,k)": _ratio(msb - mse, msb, positive=True),
    }
    return values if variant is None else values[canonical_label(variant)]


def icc_inference(ms: MeanSquares, alpha: float = 0.05) -> dict[str, dict[str, np.ndarray]]:
    """The six ICCs with F tests and ``1 - alpha`` intervals: label -> ``{ICC, F, df1, df2, pval, ci_low, ci_high}``.

    McGraw & Wong (1996, Tables 7-8), as pingouin and R ``psych::ICC``: ICC(1,.) tests ``MSB / MSW``,
    ICC(A,.) and ICC(C,.) ``MSB / MSE``; ICC(A,.)'s interval uses Satterthwaite's df, written in mean
    squares so that the exact limit 1 survives a zero residual.
    """
    values = icc_from_mean_squares(ms)
    n, k = ms.n, ms.k
    with np.errstate(divide="ignore", invalid="ignore"):
        f_one = np.asarray(ms.msb / ms.msw, dtype=float)  # inf when MSW == 0 < MSB: the exact limit
        f_two = np.asarray(ms.msb / ms.mse, dtype=float)
    df_one, df_two = n * (k - 1), (n - 1) * (k - 1)
    limits = {**_f_limits(f_one, n - 1, df_one, k, alpha, "1"), **_f_limits(f_two, n - 1, df_two, k, alpha, "C"),
              **_absolute_limits(ms, values["ICC(A,1)"], alpha)}
    out = {}
    for label in LABELS:
        F, df2 = (f_one, df_one) if label.startswith("ICC(1,") else (f_two, df_two)
        low, high = (np.where(np.isnan(values[label]), np.nan, end) for end in limits[label])
        out[label] = {"ICC": values[label], "F": F, "df1": n - 1, "df2": df2, "pval": stats.f.sf(F, n - 1, df2),
                      "ci_low": low, "ci_high": high}
    return out


def _f_limits(F, df1, df2, k, alpha: float, kind: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Intervals of ICC(kind,1) and ICC(kind,k) from the interval of F (McGraw & Wong cases 1 and 3)."""
    q = 1 - alpha / 2
    ends = (F / stats.f.ppf(q, df1, df2), F * stats.f.ppf(q, df2, df1))
    with np.errstate(divide="ignore", invalid="ignore"):
        single = tuple(np.where(np.isinf(f), 1.0, (f - 1) / (f + (k - 1))) for f in ends)  # inf: the limit 1
        average = tuple(1 - 1 / f for f in ends)
    return {f"ICC({kind},1)": single, f"ICC({kind},k)": average}


def _absolute_limits(ms: MeanSquares, r: np.ndarray, alpha: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Intervals of ICC(A,1) and ICC(A,k) (case 2A, Satterthwaite's df ``v``), ``r`` the ICC(A,1) estimate."""
    msb, msj, mse, n, k = ms.msb, ms.msj, ms.mse, ms.n, ms.k
    q = 1 - alpha / 2
    df1, df2 = n - 1, (n - 1) * (k - 1)
    # vd == 0 only when MSE == MSJ == 0, where the limits are 1 whatever v is
    a = n * (1 + (k - 1) * r) - k * r
    vn = df2 * (k * r * msj + a * mse) ** 2
    vd = df1 * (k * r * msj) ** 2 + (a * mse) ** 2
    v = np.where(vd > 0, _ratio(vn, vd), df2)
    f2u = stats.f.ppf(q, df1, v)
    f2l = stats.f.ppf(q, v, df1)
    base = k * msj + (k * n - k - n) * mse
    l2 = _ratio(n * (msb - f2u * mse), f2u * base + n * msb)
    u2 = _ratio(n * (f2l * msb - mse), base + n * f2l * msb)
    # ICC(A,k)'s limits are the Spearman-Brown step-ups of ICC(A,1)'s
    return {"ICC(A,1)": (l2, u2), "ICC(A,k)": (_ratio(l2 * k, 1 + l2 * (k - 1)), _ratio(u2 * k, 1 + u2 * (k - 1)))}


def icc_ak_inference(ms: MeanSquares, alpha: float = 0.05) -> dict[str, np.ndarray]:
    row = icc_inference(ms, alpha)["ICC(A,k)"]
    return {key: row[key] for key in ("F", "df1", "df2", "pval", "ci_low", "ci_high")}


def _warn_degenerate(ms: MeanSquares, values: dict[str, np.ndarray]) -> None:
    """One DegenerateDataWarning per kind of degeneracy, with counts over the batch (stack: the user's call)."""
    size = np.size(ms.sst)
    of = "" if size == 1 else f" in {{}} of {size} matrices"
    constant = np.asarray(ms.sst) == 0
    if constant.any():
        warnings.warn("all ratings are identical (zero variance): the ICCs, F and p-values are undefined (NaN)"
                      + of.format(int(constant.sum())), DegenerateDataWarning, stacklevel=3)
    for label, value in values.items():
        undefined = np.isnan(value) & ~constant
        if undefined.any():
            warnings.warn(f"{label} is undefined (NaN){of.format(int(undefined.sum()))}: its denominator, "
                          "an estimate of a variance, is zero or negative (between-target mean square "
                          "too small relative to the residual)", DegenerateDataWarning, stacklevel=3)
    perfect = (np.asarray(ms.mse) == 0) & ~constant
    if perfect.any():
        warnings.warn("the residual mean square is zero (raters perfectly consistent)"
                      + of.format(int(perfect.sum())) + ": F = inf, p = 0 and ICC(C,.) = 1",
                      DegenerateDataWarning, stacklevel=3)


def icc_from_matrix(Y: np.ndarray, variant: str | None = None) -> dict[str, np.ndarray] | np.ndarray:
    """ICC estimates of a ``(..., n, k)`` matrix, all six or ``variant``'s, NaN with a warning where undefined.

    Equal to :func:`icc`'s (pingouin's) estimates (tested).
    """
    ms = mean_squares(Y)
    values = icc_from_mean_squares(ms)
    _warn_degenerate(ms, values)
    return values if variant is None else values[canonical_label(variant)]


# --------------------------------------------------------------------------- the reference
def icc(data: pd.DataFrame, targets: str, raters: str, ratings: str,
        nan_policy: Literal["raise", "omit"] = "raise") -> pd.DataFrame:
    """Intraclass correlation coefficients: :func:`pingouin.intraclass_corr`, checked and unrounded.

    ``data``: one row per (target, rater) rating. ``nan_policy="omit"`` drops targets lacking a rating.
    Returns pingouin's table (``Type``, our ``Description``, ``ICC``, ``F``, ``df1``, ``df2``, ``pval``,
    ``CI95``); where pingouin's numbers are not meaningful, :func:`icc_inference`'s (see the module).
    A (target, rater) rated twice, which pingouin would average, raises.
    """
    table = check_table(data, {"targets": targets, "raters": raters, "ratings": ratings},
                        numeric=("ratings",), nan_policy=nan_policy, caller="icc")
    Y = _wide(table, nan_policy)
    ms = mean_squares(Y)
    values = icc_from_mean_squares(ms)
    _warn_degenerate(ms, values)
    degenerate = float(ms.mse) == 0 or any(np.isnan(value) for value in values.values())
    result = _inference_table(icc_inference(ms)) if degenerate else _pingouin_icc(Y)
    result.insert(1, "Description", [DESCRIPTIONS[label] for label in result["Type"]])
    return result


def _pingouin_icc(Y: np.ndarray) -> pd.DataFrame:
    import pingouin  # pingouin (with statsmodels, matplotlib...) adds ~3 s to an import: loaded by icc() only

    n, k = Y.shape
    long = pd.DataFrame({"target": np.repeat(np.arange(n), k), "rater": np.tile(np.arange(k), n),
                         "rating": Y.ravel()})
    rounding = pingouin.options.get("round.column.CI95")
    pingouin.options["round.column.CI95"] = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pingouin's pandas notices (dropna inplace)
            return pingouin.intraclass_corr(long, "target", "rater", "rating")
    finally:
        pingouin.options["round.column.CI95"] = rounding


def _inference_table(rows: dict[str, dict[str, np.ndarray]]) -> pd.DataFrame:
    """:func:`icc_inference` of one matrix laid out as pingouin's table (``Type``, ``ICC``... ``CI95``)."""
    column = {key: np.array([rows[label][key] for label in LABELS], dtype=float) for key in ("ICC", "F", "pval")}
    df = {key: np.array([rows[label][key] for label in LABELS], dtype=int) for key in ("df1", "df2")}
    return pd.DataFrame({
        "Type": list(LABELS), "ICC": column["ICC"], "F": column["F"], **df, "pval": column["pval"],
        "CI95": [np.array([rows[label]["ci_low"], rows[label]["ci_high"]], dtype=float) for label in LABELS],
    })


def _wide(table: pd.DataFrame, nan_policy: str) -> np.ndarray:
    """Long (targets, raters, ratings) -> complete ``n x k`` matrix, in order of appearance, without a Python loop."""
    t_codes, t_names = pd.factorize(table["targets"])
    r_codes, r_names = pd.factorize(table["raters"])
    counts = np.zeros((len(t_names), len(r_names)), dtype=np.int64)
    np.add.at(counts, (t_codes, r_codes), 1)
    if (counts > 1).any():
        t, r = np.argwhere(counts > 1)[0]
        raise ValueError(f"icc: target {t_names[t]!r} is rated more than once by rater "
                         f"{r_names[r]!r}; expected one rating per (target, rater)")
    if (counts == 0).any() and nan_policy == "raise":
        t, r = np.argwhere(counts == 0)[0]
        raise ValueError(f"icc: unbalanced design: target {t_names[t]!r} has no rating from rater "
                         f"{r_names[r]!r}; every rater must rate every target (or nan_policy='omit')")
    Y = np.full(counts.shape, np.nan)
    Y[t_codes, r_codes] = table["ratings"].to_numpy(dtype=float)
    return Y[(counts == 1).all(axis=1)]


def metric_human_table(data: pd.DataFrame, set_col: str, rank_col: str, distance_col: str,
                       candidate_col: str | None = None, metric_name: str = "metric",
                       human_name: str = "human") -> pd.DataFrame:
    """The paper's metric-versus-human table for an ICC: two rows per (set, candidate).

    Within each set the distances become ranks (1 = smallest, ties averaged), so metric and person are two
    raters of the same items on the same scale (both give ``1..m``: the between-rater mean square is
    zero and ICC(A,k) differs from ICC(C,k) by O(1/n), ``book/method.md``). Columns: ``set_col``,
    ``candidate_col`` (default: position in the set), ``target`` (``"<set>/<candidate>"``), ``rater``
    (``human_name``, ``metric_name``), ``rating``.
    """
    columns = {"set_col": set_col, "rank_col": rank_col, "distance_col": distance_col}
    if candidate_col is not None:
        columns["candidate_col"] = candidate_col
    table = check_table(data, columns, numeric=("rank_col", "distance_col"), caller="metric_human_table")
    groups = table.groupby("set_col", sort=False)
    candidate = table["candidate_col"] if candidate_col is not None else groups.cumcount()
    metric_rank = groups["distance_col"].rank(method="average")
    target = table["set_col"].astype(str) + "/" + candidate.astype(str)
    return pd.DataFrame({
        set_col: np.repeat(table["set_col"].to_numpy(), 2),
        candidate_col or "candidate": np.repeat(candidate.to_numpy(), 2),
        "target": np.repeat(target.to_numpy(), 2),
        "rater": np.tile([human_name, metric_name], len(table)),
        "rating": np.column_stack([table["rank_col"].to_numpy(dtype=float),
                                   metric_rank.to_numpy(dtype=float)]).ravel(),
    })
