r"""The paper's Example 1, worked by hand: two rankings, Spearman's rho and the ICC.

Trinh et al. illustrate their two agreement statistics on four images ranked
three times: a *reference* ranking and two others, R1 and R2. This module holds
the arithmetic of that example in small, inspectable steps, for chapter 02 and
its tests:

* :func:`parse_ranking`: a ranking written as text, ``"1,3,4,2"`` (the rank of
  images A, B, C, D; 1 = most similar), checked to be a strict order;
* :func:`rank_difference_table` and :func:`spearman_by_hand`: the rank
  differences :math:`d_i` and :math:`\rho = 1 - 6\sum d_i^2 / (n(n^2-1))`;
* :func:`two_way_anova`: grand, row and column means, sums of squares and mean
  squares of the items x raters table;
* :func:`icc_formulas`: ICC(A,1), ICC(A,k), ICC(C,1), ICC(C,k) from the mean
  squares (Shrout & Fleiss 1979; McGraw & Wong 1996), *without* the guards of
  :func:`clpips.stats.icc`, i.e. as the formulas (and pingouin) give them;
* :func:`icc_ck_from_rho`, :func:`icc_ak_from_rho`: the closed forms that hold
  when both raters rank the same ``n`` items ``1..n`` without ties;
* :func:`compare_rankings` and :func:`permutation_table`: the example's summary
  and the same statistics over every ranking of the ``n`` items.

The closed forms
----------------
Let both raters rank ``n`` items ``1..n`` without ties, with Spearman
correlation :math:`\rho` (the Pearson correlation of the ranks). Both columns
have mean :math:`(n+1)/2` and the same sum of squares about it,
:math:`S = n(n^2-1)/12`, so

.. math::

    SS_C = 0,\qquad SS_R = S(1+\rho),\qquad SS_E = S(1-\rho) = \tfrac12\sum d_i^2,

and with :math:`df_R = df_E = n-1`, :math:`MS_C = 0`,

.. math::

    ICC(C,k) = \frac{MS_R - MS_E}{MS_R} = \frac{2\rho}{1+\rho}, \qquad
    ICC(A,k) = \frac{MS_R - MS_E}{MS_R + (MS_C - MS_E)/n}
             = \frac{2\rho}{1 + \rho - (1-\rho)/n}.

ICC(C,k) is the Spearman-Brown step-up of :math:`\rho` to two raters, exactly.
ICC(A,k) is not: it keeps a :math:`-(1-\rho)/n` in its denominator, so it is a
little larger for :math:`0 < \rho < 1` and converges to ICC(C,k) as ``n``
grows; its denominator vanishes at :math:`\rho = -(n-1)/(n+1)` and is negative
below, where the formula returns values above 1 (for a reversed ranking,
exactly ``n``).
"""
from __future__ import annotations

import itertools
import math
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from clpips.stats.spearman_brown import icc_ak_from_rho, icc_ak_pole, icc_ck_from_rho, spearman_brown

__all__ = ["parse_ranking", "item_names", "ranking_text", "rank_difference_table", "spearman_by_hand",
           "ratings_table", "AnovaSteps", "two_way_anova", "icc_formulas", "spearman_brown",
           "icc_ck_from_rho", "icc_ak_from_rho", "icc_ak_pole", "compare_rankings", "rankings_of",
           "permutation_table", "pooled_rank_table", "MAX_PERMUTATIONS"]

#: :func:`rankings_of` lists every ranking up to this many (7! = 5040), else samples this many
MAX_PERMUTATIONS = 5040

#: ICC variants of a two-way table computed here (the one-way ICC(1,.) is not needed)
VARIANTS = ("ICC(A,1)", "ICC(A,k)", "ICC(C,1)", "ICC(C,k)")

#: short names of :data:`VARIANTS` for identifiers (e.g. glue keys): ``"ICC(A,k)"`` -> ``"icc_ak"``
VARIANT_KEYS = {v: "icc_" + v[4:-1].replace(",", "").lower() for v in VARIANTS}


# --------------------------------------------------------------------------- rankings
def parse_ranking(text: str | Sequence[int], name: str = "ranking") -> np.ndarray:
    """A ranking written as ``"1,3,4,2"`` (or a sequence of ints), checked.

    Parameters
    ----------
    text : str or sequence of int
        The rank of each item in item order (A, B, C, ...), comma- or
        space-separated; 1 = most similar.
    name : str
        What to call the ranking in an error message (e.g. ``"example_r1"``).

    Returns
    -------
    numpy.ndarray
        Integer ranks, a permutation of ``1..n``.

    Raises
    ------
    ValueError
        If a value is not a whole number, or the ranks are not a permutation of
        ``1..n`` (ties, gaps), or there are fewer than 3 or more than 26 items.

    Examples
    --------
    >>> parse_ranking("1, 3, 4, 2")
    array([1, 3, 4, 2])
    """
    if isinstance(text, str):
        parts = [p for p in text.replace(",", " ").split() if p]
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"{name}: expected whole-number ranks such as '1,3,4,2', got {text!r}") from None
    else:
        values = [int(v) for v in text]
    ranks = np.asarray(values, dtype=int)
    n = len(ranks)
    if not 3 <= n <= 26:
        raise ValueError(f"{name}: expected 3 to 26 ranks (one per item A, B, C, ...), got {n}: {text!r}")
    if sorted(ranks.tolist()) != list(range(1, n + 1)):
        raise ValueError(f"{name}: the ranks must be 1..{n}, each once (no ties or gaps), got {text!r}")
    return ranks


def item_names(n: int) -> list[str]:
    """The names of ``n`` items: ``A``, ``B``, ... (at most 26)."""
    if not 1 <= n <= 26:
        raise ValueError(f"expected 1 to 26 items, got {n}")
    return list(string.ascii_uppercase[:n])


def ranking_text(ranks: Sequence[int]) -> str:
    """``[1, 3, 4, 2]`` -> ``"1,3,4,2"`` (the inverse of :func:`parse_ranking`)."""
    return ",".join(str(int(r)) for r in ranks)


def _check_pair(reference: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reference, other = np.asarray(reference, dtype=int), np.asarray(other, dtype=int)
    if reference.shape != other.shape or reference.ndim != 1:
        raise ValueError(f"the two rankings must rank the same items: got {len(reference)} and {len(other)} ranks")
    return reference, other


def rank_difference_table(reference: Sequence[int], other: Sequence[int],
                          names: Sequence[str] = ("reference", "other")) -> pd.DataFrame:
    """Item by item: both ranks, the difference :math:`d_i` and :math:`d_i^2`.

    Parameters
    ----------
    reference, other : sequence of int
        Two rankings of the same items (see :func:`parse_ranking`).
    names : (str, str)
        Column names of the two rankings.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``item`` (A, B, ...): the two rank columns, ``d`` (other
        minus reference) and ``d²``.
    """
    reference, other = _check_pair(reference, other)
    d = other - reference
    return pd.DataFrame({names[0]: reference, names[1]: other, "d": d, "d²": d ** 2},
                        index=pd.Index(item_names(len(reference)), name="item"))


def spearman_by_hand(reference: Sequence[int], other: Sequence[int]) -> float:
    r"""Spearman's rho of two untied rankings: :math:`1 - 6\sum d_i^2 / (n(n^2-1))`.

    Only valid without ties (with ties use the Pearson correlation of average
    ranks, as :func:`scipy.stats.spearmanr` does).
    """
    reference, other = _check_pair(reference, other)
    n = len(reference)
    return 1.0 - 6.0 * float(((other - reference) ** 2).sum()) / (n * (n ** 2 - 1))


def ratings_table(rankings: Mapping[str, Sequence[int]]) -> pd.DataFrame:
    """Items x raters table of ranks (the layout of an ICC), items named A, B, ..."""
    columns = {name: np.asarray(r, dtype=float) for name, r in rankings.items()}
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise ValueError(f"every ranking must rank the same items, got lengths {sorted(lengths)}")
    return pd.DataFrame(columns, index=pd.Index(item_names(lengths.pop()), name="item"))


# --------------------------------------------------------------------------- ANOVA and ICC
@dataclass(frozen=True)
class AnovaSteps:
    """Every intermediate of the two-way ANOVA (one rating per cell) of an items x raters table.

    Rows are items ("targets", Shrout & Fleiss's subjects), columns are raters.
    """

    ratings: pd.DataFrame
    grand_mean: float
    row_means: pd.Series
    col_means: pd.Series
    ss_rows: float
    ss_cols: float
    ss_error: float
    ss_total: float

    @property
    def n(self) -> int:
        """Number of items (rows)."""
        return self.ratings.shape[0]

    @property
    def k(self) -> int:
        """Number of raters (columns)."""
        return self.ratings.shape[1]

    @property
    def df_rows(self) -> int:
        return self.n - 1

    @property
    def df_cols(self) -> int:
        return self.k - 1

    @property
    def df_error(self) -> int:
        return (self.n - 1) * (self.k - 1)

    @property
    def msr(self) -> float:
        """Mean square between items (rows)."""
        return self.ss_rows / self.df_rows

    @property
    def msc(self) -> float:
        """Mean square between raters (columns)."""
        return self.ss_cols / self.df_cols

    @property
    def mse(self) -> float:
        """Residual mean square."""
        return self.ss_error / self.df_error

    def table(self) -> pd.DataFrame:
        """The ANOVA table: ``SS``, ``df``, ``MS`` for rows, columns, error and total."""
        return pd.DataFrame(
            {"SS": [self.ss_rows, self.ss_cols, self.ss_error, self.ss_total],
             "df": [self.df_rows, self.df_cols, self.df_error, self.n * self.k - 1],
             "MS": [self.msr, self.msc, self.mse, np.nan]},
            index=pd.Index(["items (rows)", "raters (columns)", "error", "total"], name="source"))


def two_way_anova(ratings: pd.DataFrame | np.ndarray) -> AnovaSteps:
    """The two-way ANOVA of an items x raters table, step by step.

    Parameters
    ----------
    ratings : pandas.DataFrame or array, shape (n, k)
        ``n >= 2`` items by ``k >= 2`` raters, complete.

    Returns
    -------
    AnovaSteps
        Means, sums of squares (``ss_rows + ss_cols + ss_error == ss_total``)
        and, as properties, degrees of freedom and mean squares.
    """
    table = ratings if isinstance(ratings, pd.DataFrame) else pd.DataFrame(np.asarray(ratings, dtype=float))
    Y = table.to_numpy(dtype=float)
    if Y.ndim != 2 or min(Y.shape) < 2 or not np.isfinite(Y).all():
        raise ValueError(f"expected a complete items x raters table with at least 2 of each, got shape {Y.shape}")
    n, k = Y.shape
    grand = Y.mean()
    rows, cols = Y.mean(axis=1), Y.mean(axis=0)
    residual = Y - rows[:, None] - cols[None, :] + grand
    return AnovaSteps(
        ratings=table, grand_mean=float(grand),
        row_means=pd.Series(rows, index=table.index, name="item mean"),
        col_means=pd.Series(cols, index=table.columns, name="rater mean"),
        ss_rows=float(k * ((rows - grand) ** 2).sum()),
        ss_cols=float(n * ((cols - grand) ** 2).sum()),
        ss_error=float((residual ** 2).sum()),
        ss_total=float(((Y - grand) ** 2).sum()),
    )


def icc_formulas(msr, msc, mse, n, k) -> dict[str, np.ndarray | float]:
    r"""ICC(A,1), ICC(A,k), ICC(C,1), ICC(C,k) from the mean squares, as the formulas give them.

    .. math::

        ICC(A,1) = \frac{MS_R - MS_E}{MS_R + (k-1)MS_E + \frac{k}{n}(MS_C - MS_E)}, \quad
        ICC(A,k) = \frac{MS_R - MS_E}{MS_R + \frac{MS_C - MS_E}{n}},

        ICC(C,1) = \frac{MS_R - MS_E}{MS_R + (k-1)MS_E}, \quad
        ICC(C,k) = \frac{MS_R - MS_E}{MS_R}.

    No guard: a zero denominator gives ``±inf`` (or NaN for 0/0) and a
    negative one a value of either sign, as in :func:`pingouin.intraclass_corr`;
    :func:`clpips.stats.icc` returns NaN with a warning instead. Works
    element-wise on arrays.
    """
    msr, msc, mse = (np.asarray(x, dtype=float) for x in (msr, msc, mse))
    num = msr - mse
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "ICC(A,1)": num / (msr + (k - 1) * mse + k * (msc - mse) / n),
            "ICC(A,k)": num / (msr + (msc - mse) / n),
            "ICC(C,1)": num / (msr + (k - 1) * mse),
            "ICC(C,k)": num / msr,
        }
    return {key: (float(v) if v.ndim == 0 else v) for key, v in out.items()}


# --------------------------------------------------------------------------- summaries
def compare_rankings(reference: Sequence[int], rankings: Mapping[str, Sequence[int]]) -> pd.DataFrame:
    """Each ranking against the reference: rho, the four two-way ICCs and their verbal labels.

    Parameters
    ----------
    reference : sequence of int
        The reference ranking.
    rankings : mapping
        Name -> ranking of the same items.

    Returns
    -------
    pandas.DataFrame
        Indexed by name: ``ranking`` (as text), ``Σd²``, ``rho`` (by hand),
        ``ICC(A,1)``, ``ICC(A,k)``, ``ICC(C,1)``, ``ICC(C,k)`` (the formulas),
        and the Koo & Li and Cicchetti labels of ICC(A,k) (``"undefined"``
        where its denominator is not positive).
    """
    from clpips.stats import interpret_icc

    rows = []
    for name, other in rankings.items():
        ref, oth = _check_pair(reference, other)
        steps = two_way_anova(ratings_table({"reference": ref, name: oth}))
        values = icc_formulas(steps.msr, steps.msc, steps.mse, steps.n, steps.k)
        defined = steps.msr + (steps.msc - steps.mse) / steps.n > 0
        label_of = (lambda scale: interpret_icc(values["ICC(A,k)"] if defined else math.nan, scale))
        rows.append({"name": name, "ranking": ranking_text(oth), "Σd²": int(((oth - ref) ** 2).sum()),
                     "rho": spearman_by_hand(ref, oth), **values,
                     "Koo & Li": label_of("koo_li"), "Cicchetti": label_of("cicchetti")})
    return pd.DataFrame(rows).set_index("name")


def rankings_of(n: int, limit: int = MAX_PERMUTATIONS, seed: int = 0) -> np.ndarray:
    """Every ranking of ``n`` items (``n! x n``, lexicographic) or, when ``n! > limit``, ``limit`` random ones.

    The random ones are distinct, drawn with ``numpy.random.default_rng(seed)``
    and sorted lexicographically.
    """
    if math.factorial(n) <= limit:
        return np.array(list(itertools.permutations(range(1, n + 1))), dtype=int)
    rng = np.random.default_rng(seed)
    found: set[tuple[int, ...]] = set()
    while len(found) < limit:
        found.add(tuple(int(v) for v in rng.permutation(n) + 1))
    return np.array(sorted(found), dtype=int)


def permutation_table(reference: Sequence[int], limit: int = MAX_PERMUTATIONS, seed: int = 0) -> pd.DataFrame:
    """Rho and the two-way ICCs of the reference against every other ranking of its items.

    Parameters
    ----------
    reference : sequence of int
        The reference ranking of ``n`` items.
    limit, seed
        See :func:`rankings_of` (all ``n!`` rankings for ``n <= 7``).

    Returns
    -------
    pandas.DataFrame
        One row per ranking: ``ranking`` (text), ``Σd²``, ``rho``, ``MSR``,
        ``MSC``, ``MSE``, the four ICC formulas and ``defined`` (ICC(A,k)'s
        denominator is positive). Mean squares are computed for all rankings
        at once with the same formulas as :func:`two_way_anova`.
    """
    reference = np.asarray(reference, dtype=int)
    n = len(reference)
    others = rankings_of(n, limit=limit, seed=seed)
    Y = np.stack([np.broadcast_to(reference, others.shape), others], axis=-1).astype(float)  # (m, n, 2)
    grand = Y.mean(axis=(1, 2), keepdims=True)
    rows, cols = Y.mean(axis=2, keepdims=True), Y.mean(axis=1, keepdims=True)
    msr = 2 * ((rows - grand) ** 2).sum(axis=(1, 2)) / (n - 1)
    msc = n * ((cols - grand) ** 2).sum(axis=(1, 2)) / 1
    mse = ((Y - rows - cols + grand) ** 2).sum(axis=(1, 2)) / (n - 1)
    sum_d2 = ((others - reference) ** 2).sum(axis=1)
    values = icc_formulas(msr, msc, mse, n, 2)
    return pd.DataFrame({"ranking": [ranking_text(o) for o in others], "Σd²": sum_d2,
                         "rho": 1 - 6 * sum_d2 / (n * (n ** 2 - 1)), "MSR": msr, "MSC": msc, "MSE": mse,
                         **values, "defined": msr + (msc - mse) / n > 0})


def pooled_rank_table(n_sets: int = 100, k: int = 10, noise: float = 5.0, set_spread: float = 3.0,
                      seed: int = 0) -> pd.DataFrame:
    """A synthetic evaluation: many ranking sets, a person's ranks and a metric's distances.

    In each of ``n_sets`` sets a person ranks ``k`` candidates ``1..k``; the
    metric's distance to candidate ``i`` of set ``s`` is ``o_s + rank + noise * e``
    with a set offset ``o_s ~ N(0, set_spread^2)`` (some targets have generally
    farther candidates, as with a real metric) and ``e ~ N(0, 1)``. Used to
    show that the relation between ICC and rho survives pooling over sets when
    rho compares *within-set ranks*, but not when it compares raw distances.

    Returns
    -------
    pandas.DataFrame
        ``set, candidate, rank, distance``, one row per (set, candidate).
    """
    rng = np.random.default_rng(seed)
    offsets = rng.normal(0.0, set_spread, size=(n_sets, 1))
    ranks = np.tile(np.arange(1, k + 1), (n_sets, 1))
    distances = offsets + ranks + noise * rng.standard_normal((n_sets, k))
    return pd.DataFrame({"set": np.repeat(np.arange(n_sets), k), "candidate": np.tile(np.arange(k), n_sets),
                         "rank": ranks.ravel(), "distance": distances.ravel()})
