"""Intraclass correlation coefficients (ICC) from a two-way ANOVA.

:func:`icc` has the call and output of :func:`pingouin.intraclass_corr`;
:func:`icc_from_matrix` works on a ``targets x raters`` array (or a batch of
them) and is what the bootstrap uses; :func:`metric_human_table` builds the
paper's metric-versus-human table from a ranking table.

This module also holds the input-validation helper :func:`check_table` used by
every function of :mod:`clpips.stats` that takes a table.
"""
from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "icc",
    "icc_from_matrix",
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


# --------------------------------------------------------------------------- validation
def check_table(
    data: pd.DataFrame | None,
    columns: Mapping[str, object],
    *,
    numeric: Sequence[str] = (),
    nan_policy: Literal["raise", "omit"] = "raise",
    caller: str = "",
) -> pd.DataFrame:
    """Validate a table given as DataFrame columns or as arrays; return a clean copy.

    The one input-validation helper of :mod:`clpips.stats`.

    Parameters
    ----------
    data : pandas.DataFrame or None
        The table. If None, every value of ``columns`` must be an array-like
        (the columns themselves).
    columns : mapping
        Parameter name -> what the user passed for it: a column label of
        ``data``, or a 1-D array when ``data`` is None. For example
        ``{"rank_col": "rank", "distance_col": "lpips"}``.
    numeric : sequence of str
        Parameter names whose column must be numeric and finite.
    nan_policy : {"raise", "omit"}
        Missing values raise a ValueError, or drop the rows that have them.
    caller : str
        Function name used in error messages.

    Returns
    -------
    pandas.DataFrame
        One column per parameter, *named by the parameter* (``"rank_col"``...),
        with a fresh ``RangeIndex``.

    Raises
    ------
    TypeError
        ``data`` is neither a DataFrame nor None.
    ValueError
        A column is missing, arrays differ in length, the table is empty, a
        numeric column is not numeric or holds inf, or (``nan_policy="raise"``)
        a value is missing. The message names the parameter and the column.
    """
    where = f"{caller}: " if caller else ""
    if nan_policy not in ("raise", "omit"):
        raise ValueError(f"{where}nan_policy must be 'raise' or 'omit', got {nan_policy!r}")
    if data is None:
        arrays = {}
        for param, values in columns.items():
            arr = np.asarray(values)
            if arr.ndim != 1:
                raise ValueError(f"{where}{param} must be a 1-D array when data is None, "
                                 f"got shape {arr.shape}")
            arrays[param] = arr
        lengths = {param: len(arr) for param, arr in arrays.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"{where}arrays must have the same length, got {lengths}")
        table = pd.DataFrame(arrays)
        names = {param: param for param in columns}
    elif isinstance(data, pd.DataFrame):
        names = {}
        for param, label in columns.items():
            if not isinstance(label, Hashable) or label not in data.columns:
                raise ValueError(f"{where}{param}={label!r} is not a column of data; "
                                 f"columns are {list(data.columns)}")
            names[param] = label
        labels = list(columns.values())
        if len(set(labels)) != len(labels):
            raise ValueError(f"{where}each parameter needs its own column, got {dict(columns)}")
        table = pd.DataFrame({param: data[label].to_numpy() for param, label in columns.items()})
    else:
        raise TypeError(f"{where}data must be a pandas DataFrame (or None with arrays as columns), "
                        f"got {type(data).__name__}")
    for param in numeric:
        col = table[param]
        if col.dtype.kind == "b":
            table[param] = col.astype(float)
        elif col.dtype.kind not in "iuf":
            raise ValueError(f"{where}{param}={names[param]!r} must be numeric, got dtype {col.dtype}")
    missing = table.isna()
    if missing.to_numpy().any():
        counts = {f"{p}={names[p]!r}": int(c) for p, c in missing.sum().items() if c}
        if nan_policy == "raise":
            raise ValueError(f"{where}missing values (NaN) in {counts}; remove those rows"
                             + (" or pass nan_policy='omit'" if caller == "icc" else ""))
        table = table.loc[~missing.any(axis=1)]
    for param in numeric:
        values = table[param].to_numpy(dtype=float)
        if np.isinf(values).any():
            raise ValueError(f"{where}{param}={names[param]!r} holds infinite values")
    if len(table) == 0:
        raise ValueError(f"{where}the table has no (complete) rows")
    return table.reset_index(drop=True)


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
    The ratings are first shifted by their first element (the ANOVA is
    shift-invariant), so that a constant matrix gives sums of squares that are
    exactly zero instead of rounding noise. The residual sum of squares is
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


def _f_tests(ms: MeanSquares) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """F, df1, df2, p per variant: one-way F = MSB/MSW, two-way F = MSB/MSE."""
    n, k = ms.n, ms.k
    df1, df_one, df_two = n - 1, n * (k - 1), (n - 1) * (k - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        f_one = np.asarray(ms.msb / ms.msw, dtype=float)  # inf when msw == 0 < msb: exact limit
        f_two = np.asarray(ms.msb / ms.mse, dtype=float)
    p_one = stats.f.sf(f_one, df1, df_one)
    p_two = stats.f.sf(f_two, df1, df_two)
    one, two = (f_one, df1, df_one, p_one), (f_two, df1, df_two, p_two)
    return {"ICC(1,1)": one, "ICC(A,1)": two, "ICC(C,1)": two, "ICC(1,k)": one, "ICC(A,k)": two, "ICC(C,k)": two}


def _confidence_intervals(ms: MeanSquares, icc_a1: np.ndarray, alpha: float = 0.05) -> dict[str, tuple]:
    """F-based confidence limits (McGraw & Wong 1996, Table 7; as pingouin and R psych).

    The limits are written in mean squares rather than in F = MSB/MSE, which
    is algebraically the same and keeps the exact limit (1) when MSE = 0.
    """
    msb, msj, mse, msw, n, k = ms.msb, ms.msj, ms.mse, ms.msw, ms.n, ms.k
    q = 1 - alpha / 2
    df1, df_one, df_two = n - 1, n * (k - 1), (n - 1) * (k - 1)

    def f_limits(mserr, df2):
        lo_div = stats.f.ppf(q, df1, df2)  # F_L = F / lo_div
        hi_mul = stats.f.ppf(q, df2, df1)  # F_U = F * hi_mul
        b_lo, b_hi = msb / lo_div, msb * hi_mul
        single = (_ratio(b_lo - mserr, b_lo + (k - 1) * mserr), _ratio(b_hi - mserr, b_hi + (k - 1) * mserr))
        average = (_ratio(b_lo - mserr, b_lo), _ratio(b_hi - mserr, b_hi))
        return single, average

    ci1, ci1k = f_limits(msw, df_one)
    ci3, ci3k = f_limits(mse, df_two)

    # ICC(A,1): Satterthwaite-type df v (McGraw & Wong 1996, Table 7, case 2A)
    r = icc_a1
    a = n * (1 + (k - 1) * r) - k * r
    vn = df_two * (k * r * msj + a * mse) ** 2
    vd = df1 * (k * r * msj) ** 2 + (a * mse) ** 2
    # vd == 0 only when MSE == MSJ == 0; then the limits below are 1 whatever v is
    v = np.where(vd > 0, _ratio(vn, vd), df_two)
    f2u = stats.f.ppf(q, df1, v)
    f2l = stats.f.ppf(q, v, df1)
    base = k * msj + (k * n - k - n) * mse
    l2 = _ratio(n * (msb - f2u * mse), f2u * base + n * msb)
    u2 = _ratio(n * (f2l * msb - mse), base + n * f2l * msb)
    l2k = _ratio(l2 * k, 1 + l2 * (k - 1))
    u2k = _ratio(u2 * k, 1 + u2 * (k - 1))
    return {"ICC(1,1)": ci1, "ICC(A,1)": (l2, u2), "ICC(C,1)": ci3,
            "ICC(1,k)": ci1k, "ICC(A,k)": (l2k, u2k), "ICC(C,k)": ci3k}


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
    r"""Intraclass correlation coefficients, as :func:`pingouin.intraclass_corr`.

    Parameters
    ----------
    data : pandas.DataFrame
        Long-format table: one row per (target, rater) rating.
    targets : str
        Column of target (subject, item) identifiers.
    raters : str
        Column of rater (judge) identifiers.
    ratings : str
        Column of numeric ratings.
    nan_policy : {"raise", "omit"}
        ``"raise"`` (default): missing ratings or an unbalanced design raise a
        ValueError. ``"omit"``: drop targets that lack a rating from any
        rater (listwise deletion).

    Returns
    -------
    pandas.DataFrame
        One row per variant, in the order of :data:`LABELS`, with columns

        * ``Type``: ``ICC(1,1)``, ``ICC(A,1)``, ``ICC(C,1)``, ``ICC(1,k)``,
          ``ICC(A,k)``, ``ICC(C,k)`` (pingouin 0.7 labels; Shrout & Fleiss's
          ICC(1,1), ICC(2,1), ICC(3,1), ICC(1,k), ICC(2,k), ICC(3,k))
        * ``Description``: the variant in words (as in pingouin < 0.7)
        * ``ICC``: the estimate
        * ``F``, ``df1``, ``df2``, ``pval``: F test of H0: ICC = 0
          (``MSB/MSW`` for the one-way variants, ``MSB/MSE`` otherwise)
        * ``CI95``: 95% confidence interval, a 2-element float array, *not*
          rounded (pingouin rounds it to 2 decimals by default)

    Raises
    ------
    ValueError
        Missing columns, non-numeric ratings, NaN (with ``nan_policy="raise"``),
        a (target, rater) pair rated twice, an unbalanced design, or fewer
        than 2 targets or 2 raters.

    Warns
    -----
    DegenerateDataWarning
        When all ratings are equal (every statistic NaN), when a variant's
        denominator is zero or negative (that ICC NaN), or when the residual
        mean square is zero (F = inf, p = 0: the exact limits).

    Notes
    -----
    With :math:`n` targets, :math:`k` raters and the mean squares of the
    two-way ANOVA without interaction, :math:`MS_R` (targets, df
    :math:`n-1`), :math:`MS_C` (raters, df :math:`k-1`), :math:`MS_E`
    (residual) and the one-way within-target :math:`MS_W`:

    .. math::

        ICC(1,1) = \frac{MS_R - MS_W}{MS_R + (k-1) MS_W} \qquad
        ICC(1,k) = \frac{MS_R - MS_W}{MS_R}

        ICC(A,1) = \frac{MS_R - MS_E}{MS_R + (k-1) MS_E + \frac{k}{n}(MS_C - MS_E)} \qquad
        ICC(A,k) = \frac{MS_R - MS_E}{MS_R + \frac{MS_C - MS_E}{n}}

        ICC(C,1) = \frac{MS_R - MS_E}{MS_R + (k-1) MS_E} \qquad
        ICC(C,k) = \frac{MS_R - MS_E}{MS_R}

    **Choosing a variant** (Shrout & Fleiss 1979; McGraw & Wong 1996; Koo &
    Li 2016) takes three decisions:

    1. *Model*: one-way (``1``: each target rated by different, random
       raters) or two-way (the same raters rate every target).
    2. *Definition*: absolute agreement (``A``: a rater's systematic offset
       counts as disagreement; Shrout & Fleiss's ICC(2,.), raters random) or
       consistency (``C``: offsets ignored; Shrout & Fleiss's ICC(3,.),
       raters fixed). ``ICC(C,k)`` equals Cronbach's alpha.
    3. *Unit*: the reliability of a single rater (``,1``) or of the mean of
       the ``k`` raters (``,k``, the Spearman-Brown step-up of ``,1``).

    **Why the paper uses ICC(A,k).** Trinh et al. compare a metric's ranks
    with a person's ranks for the same targets: the same two "raters" (human,
    metric) rate every item (two-way), the question is whether the metric
    *gives the same ranks* (absolute agreement), and the score is the
    agreement of the pair as a whole (average measure).

    **Ranks as ratings.** When every rater ranks the same items ``1..m``
    (average ranks for ties), every rater's ratings sum to ``m(m+1)/2``
    within each set, so all raters have the same mean and the between-rater
    mean square is *exactly zero*, :math:`MS_C = 0`. Absolute agreement then
    has no rater offset to penalise, and ICC(A,k) differs from ICC(C,k) only
    through the :math:`-MS_E/n` left in its denominator:

    .. math::

        ICC(A,k) = \frac{MS_R - MS_E}{MS_R - MS_E / n}
        \quad\text{vs}\quad ICC(C,k) = \frac{MS_R - MS_E}{MS_R},

    so they are *not* identical (4 ranked items: 32/35 vs 8/9, see the
    tests) but converge as the number of items ``n`` grows: ICC(A,k) is the
    larger and the relative gap is about :math:`MS_E / (n\,MS_R)`, e.g.
    below 1e-3 for 1,000 (set, candidate) items whenever
    :math:`MS_E \le MS_R`.

    The confidence intervals are the F-based intervals of McGraw & Wong
    (1996, Table 7), as in R ``psych::ICC`` and pingouin. This function
    agrees with ``pingouin.intraclass_corr`` to floating-point precision,
    except that undefined estimates are NaN with a warning.

    References
    ----------
    Shrout, P. E., & Fleiss, J. L. (1979). Intraclass correlations: uses in
    assessing rater reliability. *Psychological Bulletin*, 86(2), 420-428.

    McGraw, K. O., & Wong, S. P. (1996). Forming inferences about some
    intraclass correlation coefficients. *Psychological Methods*, 1(1), 30-46.

    Koo, T. K., & Li, M. Y. (2016). A guideline of selecting and reporting
    intraclass correlation coefficients for reliability research. *Journal of
    Chiropractic Medicine*, 15(2), 155-163.

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
    >>> res.at[4, "CI95"]  # unrounded
    array([0.07113682, 0.92723204])
    >>> res["CI95"] = res["CI95"].map(lambda ci: ci.round(3))  # for display
    >>> res.drop(columns="Description").round(3).set_index("Type")
                ICC       F  df1  df2   pval             CI95
    Type
    ICC(1,1)  0.166   1.795    5   18  0.165  [-0.133, 0.723]
    ICC(A,1)  0.290  11.027    5   15  0.000   [0.019, 0.761]
    ICC(C,1)  0.715  11.027    5   15  0.000   [0.342, 0.946]
    ICC(1,k)  0.443   1.795    5   18  0.165  [-0.884, 0.912]
    ICC(A,k)  0.620  11.027    5   15  0.000   [0.071, 0.927]
    ICC(C,k)  0.909  11.027    5   15  0.000   [0.676, 0.986]

    These are Shrout & Fleiss's published .17, .29, .71, .44, .62, .91 and
    the output of R ``psych::ICC`` (lower bounds -0.133, 0.019, 0.342,
    -0.884, 0.071, 0.676).
    """
    table = check_table(data, {"targets": targets, "raters": raters, "ratings": ratings},
                        numeric=("ratings",), nan_policy=nan_policy, caller="icc")
    Y = _wide(table, nan_policy)
    ms = mean_squares(Y)
    values = _icc_values(ms)
    _warn_degenerate(ms, values)
    tests = _f_tests(ms)
    cis = _confidence_intervals(ms, values["ICC(A,1)"])
    return pd.DataFrame({
        "Type": list(LABELS),
        "Description": [DESCRIPTIONS[t] for t in LABELS],
        "ICC": [float(values[t]) for t in LABELS],
        "F": [float(tests[t][0]) for t in LABELS],
        "df1": [int(tests[t][1]) for t in LABELS],
        "df2": [int(tests[t][2]) for t in LABELS],
        "pval": [float(tests[t][3]) for t in LABELS],
        "CI95": [np.array([float(cis[t][0]), float(cis[t][1])]) for t in LABELS],
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
    Targets are the (set, candidate) items, raters are {human, metric}. Since
    both raters' ranks are permutations (or tie-averaged versions) of
    ``1..m`` in each set, the between-rater mean square is exactly zero, and
    ICC(A,k) differs from ICC(C,k) only by an O(1/n) term; see :func:`icc`.

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
