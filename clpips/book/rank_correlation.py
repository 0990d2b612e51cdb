"""Rank correlations of a table's distances with its human ranks, pooled and per set, with p-values.

A table-level front to the core's one Spearman (:func:`clpips.stats.spearman_rho`, applied per set by
:func:`clpips.stats.set_correlations`), with Kendall's tau-b and tau-c beside it (as
:func:`scipy.stats.kendalltau`: pooled through scipy, per set by a vectorised count of pairs). Two
aggregations: ``pooled`` (the paper's: all rows in one correlation, which also rewards distances
comparable across sets) and ``per_set_mean`` (each set's correlation, averaged).
"""
from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from clpips.stats import DegenerateDataWarning, check_table, set_correlations, spearman_pvalue, spearman_rho

__all__ = ["rank_correlation", "spearman", "kendall", "per_set_correlation", "pooled_spearman", "PER_SET"]

Method = Literal["spearman", "kendall_b", "kendall_c"]


def _kendall_per_set(variant: str):
    """Kendall's tau-``variant`` of ``sets x n x 1`` with ``sets x n x M`` along axis 1 (for :data:`PER_SET`)."""
    def tau(X: np.ndarray, Y: np.ndarray, axis: int = 1) -> np.ndarray:
        n = X.shape[1]
        sx = np.sign(X[:, :, None] - X[:, None, :])                      # each pair twice, in both orders
        sy = np.sign(Y[:, :, None] - Y[:, None, :])
        s = (sx * sy).sum((1, 2)) / 2                                     # concordant - discordant
        with np.errstate(invalid="ignore", divide="ignore"):
            if variant == "b":
                return s / np.sqrt((sx * sx).sum((1, 2)) / 2 * (sy * sy).sum((1, 2)) / 2)
            m = np.minimum(_distinct(X), _distinct(Y))
            return 2 * s / (n * n * (m - 1) / m)
    return tau


def _distinct(a: np.ndarray) -> np.ndarray:
    a = np.sort(a, axis=1)
    return 1 + (np.diff(a, axis=1) != 0).sum(1)


#: method -> the vectorised per-set correlation :func:`clpips.stats.set_correlations` takes
PER_SET = {"spearman": spearman_rho, "kendall_b": _kendall_per_set("b"), "kendall_c": _kendall_per_set("c")}


def _correlate(x: np.ndarray, y: np.ndarray, method: Method) -> tuple[float, float]:
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return np.nan, np.nan
    if method == "spearman":
        r = float(spearman_rho(x, y))
        return r, float(spearman_pvalue(r, len(x)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy's own small-n warnings
        res = stats.kendalltau(x, y, variant=method[-1])
    return float(res.statistic), float(res.pvalue)


def pooled_spearman(ranks: np.ndarray, distances: np.ndarray) -> float:
    """:func:`clpips.stats.spearman_rho` of two 1-D arrays, as a float (no validation)."""
    return float(spearman_rho(np.asarray(ranks, float), np.asarray(distances, float)))


def _ranking_table(data, set_col, rank_col, distance_col, caller) -> pd.DataFrame:
    return check_table(data, {"set_col": set_col, "rank_col": rank_col, "distance_col": distance_col},
                       numeric=("rank_col", "distance_col"), caller=caller)


def per_set_correlation(data: pd.DataFrame | None = None, set_col: object = "set", rank_col: object = "rank",
                        distance_col: object = "distance", method: Method = "spearman",
                        pvalues: bool = True) -> pd.DataFrame:
    """The correlation of distance with rank inside each set: ``set``, ``n``, ``r``, ``pval`` (one row per set).

    Arguments as :func:`rank_correlation`'s; ``pvalues=False`` leaves ``pval`` NaN. Undefined sets (NaN)
    come with a :class:`DegenerateDataWarning`.
    """
    _check_method(method)
    table = _ranking_table(data, set_col, rank_col, distance_col, "per_set_correlation")
    sets = table["set_col"].to_numpy()
    ranks, dist = table["rank_col"].to_numpy(float), table["distance_col"].to_numpy(float)
    codes, first = pd.factorize(pd.Series(sets), sort=False)
    out = pd.DataFrame({"set": first, "n": np.bincount(codes, minlength=len(first)),
                        "r": set_correlations(sets, ranks, dist, PER_SET[method]), "pval": np.nan})
    if pvalues and method == "spearman":
        out["pval"] = np.where(np.isfinite(out["r"]), spearman_pvalue(out["r"], out["n"]), np.nan)
    elif pvalues:
        for i, (_, rows) in enumerate(pd.Series(np.arange(len(codes))).groupby(codes, sort=True)):
            if np.isfinite(out.at[i, "r"]):
                out.at[i, "pval"] = _correlate(ranks[rows.to_numpy()], dist[rows.to_numpy()], method)[1]
    undefined = int(out["r"].isna().sum())
    if undefined:
        warnings.warn(f"{method} is undefined (NaN) in {undefined} of {len(out)} sets (fewer than 2 "
                      "candidates, or constant ranks or distances); they are left out of per-set means",
                      DegenerateDataWarning, stacklevel=2)
    return out


def rank_correlation(data: pd.DataFrame | None = None, set_col: object = "set", rank_col: object = "rank",
                     distance_col: object = "distance", method: Method = "spearman") -> pd.DataFrame:
    """Correlation of a metric's distances with human ranks, pooled and per set.

    ``data``: one row per (set, candidate), or None with the three columns given as arrays. ``method``:
    ``"spearman"``, ``"kendall_b"`` or ``"kendall_c"`` (as :func:`scipy.stats.kendalltau`). Returns rows
    ``pooled`` and ``per_set_mean`` with ``method, n, n_sets, r, pval``. The pooled p treats rows as
    independent although a set's candidates are not (use the set bootstrap); the per-set mean's is a
    one-sample t-test over sets. Constant input: NaN with a :class:`DegenerateDataWarning`.
    """
    _check_method(method)
    table = _ranking_table(data, set_col, rank_col, distance_col, "rank_correlation")
    r, p = _correlate(table["rank_col"].to_numpy(float), table["distance_col"].to_numpy(float), method)
    if np.isnan(r):
        warnings.warn(f"pooled {method} is undefined (NaN): the ranks or the distances are constant "
                      "over all rows", DegenerateDataWarning, stacklevel=2)
    pooled = {"method": method, "n": len(table), "n_sets": table["set_col"].nunique(), "r": r, "pval": p}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)
        per_set = per_set_correlation(table, "set_col", "rank_col", "distance_col", method, pvalues=False)
    defined = per_set.dropna(subset=["r"])
    if len(defined) < len(per_set):
        warnings.warn(f"{method} is undefined in {len(per_set) - len(defined)} of {len(per_set)} sets "
                      "(fewer than 2 candidates, or constant ranks or distances); they are left out of "
                      "the per-set mean", DegenerateDataWarning, stacklevel=2)
    mean_r, mean_p = _mean_and_ttest(defined["r"].to_numpy(float))
    per = {"method": method, "n": int(defined["n"].sum()), "n_sets": len(defined), "r": mean_r, "pval": mean_p}
    return pd.DataFrame([pooled, per], index=pd.Index(["pooled", "per_set_mean"], name="scope"))


def _mean_and_ttest(r: np.ndarray) -> tuple[float, float]:
    if len(r) == 0:
        return np.nan, np.nan
    mean = float(r.mean())
    if len(r) < 2 or np.ptp(r) == 0:
        warnings.warn("the t-test of the per-set correlations is undefined (fewer than 2 sets, or all "
                      "equal): its p-value is NaN", DegenerateDataWarning, stacklevel=3)
        return mean, np.nan
    return mean, float(stats.ttest_1samp(r, 0.0).pvalue)


def _check_method(method: str) -> None:
    if method not in PER_SET:
        raise ValueError(f"method must be one of {list(PER_SET)}, got {method!r}")


def spearman(data: pd.DataFrame | None = None, set_col: object = "set", rank_col: object = "rank",
             distance_col: object = "distance") -> pd.DataFrame:
    """Spearman's rho of distances with human ranks; see :func:`rank_correlation`."""
    return rank_correlation(data, set_col, rank_col, distance_col, method="spearman")


def kendall(data: pd.DataFrame | None = None, set_col: object = "set", rank_col: object = "rank",
            distance_col: object = "distance", variant: Literal["b", "c"] = "b") -> pd.DataFrame:
    """Kendall's tau-b (default) or tau-c of distances with human ranks; see :func:`rank_correlation`."""
    if variant not in ("b", "c"):
        raise ValueError(f"variant must be 'b' or 'c', got {variant!r}")
    return rank_correlation(data, set_col, rank_col, distance_col, method=f"kendall_{variant}")
