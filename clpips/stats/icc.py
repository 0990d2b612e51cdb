"""Intraclass correlation coefficients (ICC) from a two-way ANOVA.

:func:`icc` is :func:`pingouin.intraclass_corr` (unrounded intervals) with this package's
input checks and NaN for undefined estimates; :func:`icc_from_matrix` and
:func:`icc_ak_inference` are the vectorised path (a batch of ``targets x raters``
matrices: the bootstrap's resamples, the metrics of an evaluation), checked equal to
pingouin in the tests; :func:`metric_human_table` builds the paper's metric-versus-human
table. Choosing a variant, and why ICC(A,k) on ranks restates Spearman's rho: the book's
method chapter (``book/method.md``, *Agreement statistics*).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from clpips.stats.tables import check_table

__all__ = [
    "icc",
    "icc_from_matrix",
    "icc_ak_inference",
    "mean_squares",
    "metric_human_table",
    "MeanSquares",
    "DegenerateDataWarning",
    "LABELS",
    "ALIASES",
    "canonical_label",
    "check_table",
]

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
    """Data for which a statistic is undefined (zero variance, constant input...).

    The statistic is returned as NaN (or, where it is the exact limit, as
    ``inf``/1) and this warning says why.
    """


def canonical_label(name: str) -> str:
    """Map any known name of an ICC variant to its label in :data:`LABELS`.

    >>> canonical_label("ICC2k"), canonical_label("ICC(3,1)"), canonical_label("ICC(A,k)")
    ('ICC(A,k)', 'ICC(C,1)', 'ICC(A,k)')
    """
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
    """Mean squares of the two-way ANOVA without interaction (one rating per cell).

    Every field is an array over the batch axes (a 0-d array for one matrix);
    ``n`` and ``k`` may be arrays too (the bootstrap varies ``n``).

    Attributes
    ----------
    msb : between targets (rows), ``df = n - 1``
    msj : between raters (judges, columns), ``df = k - 1``
    mse : residual, ``df = (n - 1)(k - 1)``
    msw : within targets (one-way model: raters + residual), ``df = n(k - 1)``
    sst : total sum of squares (0 exactly when every rating is the same)
    n, k : numbers of targets and raters
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
        """Build from sums of squares (used by the bootstrap's weighted sums)."""
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


def _as_matrix(Y: np.ndarray) -> np.ndarray:
    Y = np.asarray(Y, dtype=float)
    if Y.ndim < 2:
        raise ValueError(f"expected a targets x raters matrix (n, k) or a batch (..., n, k), got shape {Y.shape}")
    n, k = Y.shape[-2:]
    if n < 2 or k < 2:
        raise ValueError(f"an ICC needs at least 2 targets and 2 raters, got n={n} targets, k={k} raters")
    if not np.isfinite(Y).all():
        raise ValueError("the ratings matrix holds NaN or inf; remove incomplete targets first")
    return Y


def mean_squares(Y: np.ndarray) -> MeanSquares:
    """Two-way ANOVA mean squares of a ``targets x raters`` matrix, vectorized over leading axes.

    Parameters
    ----------
    Y : array_like, shape (n, k) or (..., n, k)
        Complete ratings: ``n >= 2`` targets (rows) by ``k >= 2`` raters (columns).

    Returns
    -------
    MeanSquares

    Notes
    -----
    The ratings are shifted by their first element (the ANOVA is shift-invariant), so a
    constant matrix gives sums of squares of exactly zero; the residual sum of squares is
    summed directly, not obtained by subtraction.
    """
    Y = _as_matrix(Y)
    n, k = Y.shape[-2:]
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


def _icc_values(ms: MeanSquares) -> dict[str, np.ndarray]:
    """The six ICC point estimates (Shrout & Fleiss 1979; McGraw & Wong 1996).

    Each denominator estimates a (positive) variance; where it is zero or
    negative the ICC is undefined and NaN is returned (pingouin would return
    +-inf, or for ICC(A,k) a spurious value that can exceed 1).
    """
    msb, msj, mse, msw, n, k = ms.msb, ms.msj, ms.mse, ms.msw, ms.n, ms.k
    return {
        "ICC(1,1)": _ratio(msb - msw, msb + (k - 1) * msw, positive=True),
        "ICC(A,1)": _ratio(msb - mse, msb + (k - 1) * mse + k * (msj - mse) / n, positive=True),
        "ICC(C,1)": _ratio(msb - mse, msb + (k - 1) * mse, positive=True),
        "ICC(1,k)": _ratio(msb - msw, msb, positive=True),
        "ICC(A,k)": _ratio(msb - mse, msb + (msj - mse) / n, positive=True),
        "ICC(C,k)": _ratio(msb - mse, msb, positive=True),
    }


def icc_ak_inference(ms: MeanSquares, alpha: float = 0.05) -> dict[str, np.ndarray]:
    """F test and F-based ``1 - alpha`` interval of ICC(A,k), vectorised over a batch of mean squares.

    The numbers of :func:`icc`'s ``ICC(A,k)`` row (McGraw & Wong 1996, Table 7, case 2A,
    as pingouin and R ``psych::ICC``), written in mean squares so that the exact limit
    (1) is kept when the residual mean square is 0.

    Returns
    -------
    dict
        ``F``, ``df1``, ``df2``, ``pval``, ``ci_low``, ``ci_high``: arrays of the batch shape.
    """
    msb, msj, mse, n, k = ms.msb, ms.msj, ms.mse, ms.n, ms.k
    q = 1 - alpha / 2
    df1, df2 = n - 1, (n - 1) * (k - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        f_two = np.asarray(msb / mse, dtype=float)  # inf when mse == 0 < msb: the exact limit
    r = _icc_values(ms)["ICC(A,1)"]
    # Satterthwaite-type df v; vd == 0 only when MSE == MSJ == 0, where the limits are 1 whatever v is
    a = n * (1 + (k - 1) * r) - k * r
    vn = df2 * (k * r * msj + a * mse) ** 2
    vd = df1 * (k * r * msj) ** 2 + (a * mse) ** 2
    v = np.where(vd > 0, _ratio(vn, vd), df2)
    f2u = stats.f.ppf(q, df1, v)
    f2l = stats.f.ppf(q, v, df1)
    base = k * msj + (k * n - k - n) * mse
    l2 = _ratio(n * (msb - f2u * mse), f2u * base + n * msb)
    u2 = _ratio(n * (f2l * msb - mse), base + n * f2l * msb)
    return {"F": f_two, "df1": df1, "df2": df2, "pval": stats.f.sf(f_two, df1, df2),
            "ci_low": _ratio(l2 * k, 1 + l2 * (k - 1)), "ci_high": _ratio(u2 * k, 1 + u2 * (k - 1))}


def _warn_degenerate(ms: MeanSquares, values: dict[str, np.ndarray], stacklevel: int = 3) -> None:
    """One DegenerateDataWarning per kind of degeneracy, with counts over the batch."""
    size = np.size(ms.sst)
    of = "" if size == 1 else f" in {{}} of {size} matrices"
    constant = np.asarray(ms.sst) == 0
    if constant.any():
        warnings.warn("all ratings are identical (zero variance): the ICCs, F and p-values are undefined (NaN)"
                      + of.format(int(constant.sum())), DegenerateDataWarning, stacklevel=stacklevel)
    for label, value in values.items():
        undefined = np.isnan(value) & ~constant
        if undefined.any():
            warnings.warn(f"{label} is undefined (NaN){of.format(int(undefined.sum()))}: its denominator, "
                          "an estimate of a variance, is zero or negative (between-target mean square "
                          "too small relative to the residual)", DegenerateDataWarning, stacklevel=stacklevel)
    perfect = (np.asarray(ms.mse) == 0) & ~constant
    if perfect.any():
        warnings.warn("the residual mean square is zero (raters perfectly consistent)"
                      + of.format(int(perfect.sum())) + ": F = inf, p = 0 and ICC(C,.) = 1",
                      DegenerateDataWarning, stacklevel=stacklevel)


# --------------------------------------------------------------------------- public API
def icc_from_matrix(Y: np.ndarray, variant: str | None = None) -> dict[str, np.ndarray] | np.ndarray:
    """ICC point estimates of a ``targets x raters`` matrix, or of a batch of them.

    Parameters
    ----------
    Y : array_like, shape (n, k) or (B, n, k)
        Complete ratings, ``n >= 2`` targets by ``k >= 2`` raters; any number
        of leading batch axes.
    variant : str, optional
        One label of :data:`LABELS` (or an alias such as ``"ICC2k"``): return
        only that variant.

    Returns
    -------
    dict or numpy.ndarray
        ``{label: value}`` for the six variants (or one value if ``variant``
        is given); each value is a float array of the batch shape (0-d for a
        single matrix).

    Warns
    -----
    DegenerateDataWarning
        For NaN (undefined) values; see :func:`icc`.

    Notes
    -----
    Equal to :func:`icc`'s (pingouin's) estimates on regular data (checked in the tests).

    Examples
    --------
    >>> import numpy as np
    >>> from clpips.stats import icc_from_matrix
    >>> sf = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8],
    ...                [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])
    >>> round(float(icc_from_matrix(sf, "ICC(A,k)")), 4)
    0.6201
    >>> icc_from_matrix(np.stack([sf, sf[:, ::-1]]), "ICC(C,1)").round(4)
    array([0.7148, 0.7148])
    """
    ms = mean_squares(Y)
    values = _icc_values(ms)
    _warn_degenerate(ms, values)
    if variant is not None:
        return values[canonical_label(variant)]
    return values


def icc(
    data: pd.DataFrame,
    targets: str,
    raters: str,
    ratings: str,
    nan_policy: Literal["raise", "omit"] = "raise",
) -> pd.DataFrame:
    """Intraclass correlation coefficients: :func:`pingouin.intraclass_corr`, checked and unrounded.

    Parameters
    ----------
    data : pandas.DataFrame
        Long-format table: one row per (target, rater) rating.
    targets, raters, ratings : str
        Columns of target (item) ids, rater (judge) ids and numeric ratings.
    nan_policy : {"raise", "omit"}
        ``"raise"`` (default): missing ratings or an unbalanced design raise a
        ValueError. ``"omit"``: drop targets that lack a rating from any rater.

    Returns
    -------
    pandas.DataFrame
        One row per variant of :data:`LABELS`: ``Type`` (pingouin 0.7 labels; Shrout &
        Fleiss's ICC(1,1), ICC(2,1), ICC(3,1), ICC(1,k), ICC(2,k), ICC(3,k)),
        ``Description``, ``ICC``, ``F``, ``df1``, ``df2``, ``pval`` (F test of ICC = 0)
        and ``CI95`` (a 2-element float array, *not* rounded).

    Raises
    ------
    ValueError
        Missing columns, non-numeric ratings, NaN (with ``nan_policy="raise"``), a
        (target, rater) pair rated twice (pingouin would average it), an unbalanced
        design, or fewer than 2 targets or 2 raters.

    Warns
    -----
    DegenerateDataWarning
        All ratings equal (every statistic NaN), a variant's denominator zero or
        negative (that ICC NaN, where pingouin gives +-inf or a spurious value), or a
        zero residual mean square (F = inf, p = 0).

    Notes
    -----
    The formulas, the choice of variant and why ICC(A,k) of two rankings restates their
    Spearman correlation are in ``book/method.md`` (*Agreement statistics*). The
    estimates are :func:`icc_from_matrix`'s (equal to pingouin's on regular data);
    where an error mean square is exactly 0, which pingouin's subtraction turns into
    rounding noise, F is inf, p is 0 and an ICC of 1 has the interval [1, 1] (the limits).

    Examples
    --------
    The data of Shrout & Fleiss (1979, Table 2): 6 targets, 4 judges.

    >>> import numpy as np, pandas as pd
    >>> from clpips.stats import icc
    >>> sf = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8],
    ...                [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])
    >>> long = pd.DataFrame([(t, j, sf[t, j]) for t in range(6) for j in range(4)],
    ...                     columns=["target", "judge", "rating"])
    >>> res = icc(long, targets="target", raters="judge", ratings="rating")
    >>> res.set_index("Type")["ICC"].round(3).tolist()
    [0.166, 0.29, 0.715, 0.443, 0.62, 0.909]

    These are Shrout & Fleiss's published .17, .29, .71, .44, .62, .91 (R ``psych::ICC`` too).
    """
    import pingouin

    table = check_table(data, {"targets": targets, "raters": raters, "ratings": ratings},
                        numeric=("ratings",), nan_policy=nan_policy, caller="icc")
    Y = _wide(table, nan_policy)
    ms = mean_squares(Y)
    values = _icc_values(ms)
    _warn_degenerate(ms, values)
    n, k = Y.shape
    long = pd.DataFrame({"target": np.repeat(np.arange(n), k), "rater": np.tile(np.arange(k), n),
                         "rating": Y.ravel()})
    rounding = pingouin.options.get("round.column.CI95")
    pingouin.options["round.column.CI95"] = None
    try:
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore")  # pingouin's divisions by zero and its pandas notices
            res = pingouin.intraclass_corr(long, "target", "rater", "rating")
    finally:
        pingouin.options["round.column.CI95"] = rounding
    res["Type"] = [canonical_label(t) for t in res["Type"]]
    res = res.set_index("Type").loc[list(LABELS)]
    estimate = np.array([float(values[t]) for t in LABELS])
    # pingouin sums squares by subtraction: an error mean square that is exactly 0 here (perfect
    # consistency) is rounding noise there, so F, p and the interval take their exact limits
    exact = np.array([float(ms.msw if t.startswith("ICC(1,") else ms.mse) == 0 for t in LABELS])
    F, pval = res["F"].to_numpy(float), res["pval"].to_numpy(float)
    F, pval = np.where(exact, np.inf, F), np.where(exact, 0.0, pval)
    if float(ms.sst) == 0:
        F, pval = np.full(len(LABELS), np.nan), np.full(len(LABELS), np.nan)

    def interval(ci, value: float, limit: bool) -> np.ndarray:
        if np.isnan(value):
            return np.array([np.nan, np.nan])
        if limit and value == 1:
            return np.array([1.0, 1.0])
        ci = np.asarray(ci, dtype=float)
        return np.where(np.isfinite(ci), ci, np.nan)

    return pd.DataFrame({
        "Type": list(LABELS),
        "Description": [DESCRIPTIONS[t] for t in LABELS],
        "ICC": estimate,
        "F": F,
        "df1": res["df1"].to_numpy(int),
        "df2": res["df2"].to_numpy(int),
        "pval": pval,
        "CI95": [interval(ci, v, e) for ci, v, e in zip(res["CI95"], estimate, exact)],
    })


def _wide(table: pd.DataFrame, nan_policy: str) -> np.ndarray:
    """Long (targets, raters, ratings) -> complete ``n x k`` matrix, without a Python loop."""
    t_codes, t_names = pd.factorize(table["targets"])
    r_codes, r_names = pd.factorize(table["raters"])
    n, k = len(t_names), len(r_names)
    cell = t_codes * k + r_codes
    counts = np.bincount(cell, minlength=n * k)
    if (counts > 1).any():
        c = int(np.flatnonzero(counts > 1)[0])
        raise ValueError(f"icc: target {t_names[c // k]!r} is rated more than once by rater "
                         f"{r_names[c % k]!r}; expected one rating per (target, rater)")
    Y = np.full(n * k, np.nan)
    Y[cell] = table["ratings"].to_numpy(dtype=float)
    Y = Y.reshape(n, k)
    complete = (counts.reshape(n, k) == 1).all(axis=1)
    if not complete.all():
        if nan_policy == "raise":
            t, = np.flatnonzero(~complete)[:1]
            r, = np.flatnonzero(counts.reshape(n, k)[t] == 0)[:1]
            raise ValueError(f"icc: unbalanced design: target {t_names[t]!r} has no rating from rater "
                             f"{r_names[r]!r}; every rater must rate every target (or nan_policy='omit')")
        Y = Y[complete]
    return Y


def metric_human_table(
    data: pd.DataFrame,
    set_col: str,
    rank_col: str,
    distance_col: str,
    candidate_col: str | None = None,
    metric_name: str = "metric",
    human_name: str = "human",
) -> pd.DataFrame:
    """The paper's metric-versus-human table for an ICC.

    Within each ranking set the metric's distances become ranks (1 = smallest
    distance = most similar; ties get their average rank), so that the
    metric and the person are two "raters" of the same items on the same
    scale.

    Parameters
    ----------
    data : pandas.DataFrame
        Ranking table: one row per (set, candidate).
    set_col : str
        Column of ranking-set ids (one target image and its candidates).
    rank_col : str
        Column of the human ranks, 1 = most similar; used as the human
        ratings unchanged (they should be ``1..m`` within each set).
    distance_col : str
        Column of metric distances, lower = more similar.
    candidate_col : str, optional
        Column of candidate ids; by default the row's position within its set.
    metric_name, human_name : str
        Rater labels.

    Returns
    -------
    pandas.DataFrame
        Long table, two rows per (set, candidate), columns ``set_col``,
        ``candidate_col`` (or ``"candidate"``), ``target``
        (``"<set>/<candidate>"``), ``rater``
        (``human_name`` or ``metric_name``) and ``rating`` (ranks). Pass it to
        :func:`icc` with ``targets="target", raters="rater", ratings="rating"``.

    Notes
    -----
    Both raters give ranks ``1..m`` in each set, so the between-rater mean square is
    exactly zero and ICC(A,k) differs from ICC(C,k) by an O(1/n) term only
    (``book/method.md``, *ICC on ranks*).

    Examples
    --------
    >>> import pandas as pd
    >>> from clpips.stats import metric_human_table, icc
    >>> df = pd.DataFrame({"set": [1, 1, 1, 2, 2, 2], "rank": [1, 2, 3, 1, 2, 3],
    ...                    "lpips": [0.10, 0.30, 0.20, 0.05, 0.40, 0.60]})
    >>> tab = metric_human_table(df, "set", "rank", "lpips")
    >>> tab.head(4)
       set  candidate target   rater  rating
    0    1          0    1/0   human     1.0
    1    1          0    1/0  metric     1.0
    2    1          1    1/1   human     2.0
    3    1          1    1/1  metric     3.0
    >>> res = icc(tab, "target", "rater", "rating").set_index("Type")
    >>> print(res["ICC"].round(4).to_string())
    Type
    ICC(1,1)    0.7872
    ICC(A,1)    0.7826
    ICC(C,1)    0.7500
    ICC(1,k)    0.8810
    ICC(A,k)    0.8780
    ICC(C,k)    0.8571
    """
    columns = {"set_col": set_col, "rank_col": rank_col, "distance_col": distance_col}
    if candidate_col is not None:
        columns["candidate_col"] = candidate_col
    table = check_table(data, columns, numeric=("rank_col", "distance_col"), caller="metric_human_table")
    groups = table.groupby("set_col", sort=False)
    candidate = table["candidate_col"] if candidate_col is not None else groups.cumcount()
    metric_rank = groups["distance_col"].rank(method="average")
    n = len(table)
    target = table["set_col"].astype(str) + "/" + candidate.astype(str)
    out = pd.DataFrame({
        set_col: np.repeat(table["set_col"].to_numpy(), 2),
        candidate_col or "candidate": np.repeat(candidate.to_numpy(), 2),
        "target": np.repeat(target.to_numpy(), 2),
        "rater": np.tile([human_name, metric_name], n),
        "rating": np.column_stack([table["rank_col"].to_numpy(dtype=float),
                                   metric_rank.to_numpy(dtype=float)]).ravel(),
    })
    return out
