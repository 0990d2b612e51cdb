"""Alignment of metrics with held-out human rankings (the paper's Table 3).

The unit is one *ranking*: one rater's order of one set's candidates (``set_id|rater``). Each
metric's distances become ranks within the ranking (1 = smallest) and are compared with the person's:
Spearman's rho pooled on the paper's raw distances (``spearman_raw``) and on within-ranking ranks
(``spearman``, which with untied ranks and equal set sizes equals the mean per-ranking rho),
Kendall's tau-b, pair accuracy (the share of the person's ordered pairs the metric orders alike, ties
one half) and ICC(A,k) with metric and person as two raters of each item. Both raters give ranks
1..k, so on rank data the ICC restates rho (``book/method.md``). :func:`rank_scores` is the one
scorer, vectorised over metrics; :func:`alignment`, :func:`distance_scores` and :func:`heldout_scores`
are it with all extras, from distances, and from weight vectors.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats as sps

from clpips.moved import moved_name
from clpips.pairs import ranking_pairs
from clpips.stats import (icc_from_mean_squares, icc_inference, koo_li_label, mean_squares, set_correlations,
                          spearman_pvalue, spearman_rho)
from clpips.train import torch_threads

RANKING = "ranking"
#: columns of a scored table that are not metrics
_NON_METRIC = {"set_id", "target", "candidate", "rater", "rank", "group", "iteration", "prompt", RANKING}


def ranking_ids(table: pd.DataFrame) -> pd.Series:
    """``set_id|rater``: one id per human ranking."""
    return table["set_id"].astype(str) + "|" + table["rater"].astype(str)


def pair_distances(features, table: pd.DataFrame, weights) -> np.ndarray:
    """``d = phi . w`` of every (target, candidate) row of ``table`` for each column of ``weights`` (``D`` or
    ``D x C``): rows x C, in the features' precision (float32 for the project's features; float64 features,
    as the tests use, are scored in float64 so that a float64 fit is judged without float32's rounding).

    On one thread, always: a product's last bits depend on the thread count, and they break the exact ties
    (one pair in several rankings) of the raw distances the pooled rho ranks across sets. Measured: one
    thread against two moved a fold's pooled rho by up to 0.009 (alien_eggs split by image).
    """
    rows = features.rows(table["target"], table["candidate"])
    W = torch.as_tensor(weights, dtype=features.matrix.dtype)
    with torch_threads(1):
        return (features.matrix[rows] @ (W[:, None] if W.ndim == 1 else W)).numpy().astype(float)


def score_rankings(table: pd.DataFrame, features, metrics: Mapping[str, torch.Tensor]) -> pd.DataFrame:
    """``table`` with one distance column per weight vector ``w`` (:func:`pair_distances`, ``features``
    covering its pairs) and the ``ranking`` ids.
    """
    out = table.copy()
    out[RANKING] = ranking_ids(out)
    for name, w in metrics.items():
        out[name] = pair_distances(features, out, w)[:, 0]
    return out


def within_ranking_ranks(scored: pd.DataFrame, column: str) -> pd.Series:
    """A metric's distances as ranks within each ranking (1 = most similar, ties averaged)."""
    return scored.groupby(RANKING, sort=False)[column].rank(method="average")


def alignment(scored: pd.DataFrame, column: str) -> dict[str, float]:
    """Every statistic of one metric column (:func:`rank_scores` with all extras), its ICC(A,k)'s Koo & Li
    label and the table's counts.
    """
    row = rank_scores(scored, scored[[column]].to_numpy(float), [column], per_ranking=True, kendall=True,
                      interval=True, pvalues=True).iloc[0]
    out = {key: float(row[key]) for key in ("spearman_raw", "spearman_raw_pval", "spearman", "spearman_pval",
                                             "spearman_per_ranking", "kendall", "kendall_pval", "icc_A_k",
                                             "icc_A_k_ci_low", "icc_A_k_ci_high", "icc_A_k_F", "icc_A_k_pval")}
    return {**out, "icc_A_k_koo_li": koo_li_label(out["icc_A_k"]),
            "pair_accuracy": float(row["pair_accuracy"]), "n_rankings": int(row["n_rankings"]),
            "n_targets": int(scored["target"].nunique()), "n_rows": int(len(scored))}


def alignment_table(scored: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """:func:`alignment` for several metric columns, one row each (the paper's Table 3)."""
    columns = columns or [c for c in scored.columns if c not in _NON_METRIC]
    return pd.DataFrame({c: alignment(scored, c) for c in columns}).T.rename_axis("metric")


def pair_accuracy(table: pd.DataFrame, distances: np.ndarray) -> np.ndarray:
    """Per column of ``distances``: the share of the person's ordered pairs ``(better, worse)`` the metric
    puts in that order (ties count 1/2).
    """
    frame = table[["set_id", "rater", "target", "rank"]].assign(candidate=np.arange(len(table)))
    pairs = ranking_pairs(frame)
    if pairs.empty:
        return np.full(distances.shape[1], np.nan)
    gap = distances[pairs["worse"].to_numpy(int)] - distances[pairs["better"].to_numpy(int)]
    return ((gap > 0).mean(axis=0) + 0.5 * (gap == 0).mean(axis=0)).astype(float)


def heldout_scores(table: pd.DataFrame, features, weights: Mapping[str, torch.Tensor]) -> pd.DataFrame:
    """:func:`rank_scores` of several weight vectors (``weights``: name -> vector) on a ranking table, in one pass."""
    names = list(weights)
    if table.empty or not names:
        return pd.DataFrame({"icc_A_k": np.nan, "spearman": np.nan, "spearman_raw": np.nan, "pair_accuracy": np.nan,
                             "n_rankings": 0}, index=pd.Index(names, name="metric"))
    W = torch.stack([torch.as_tensor(weights[n], dtype=features.matrix.dtype).flatten() for n in names], dim=1)
    return distance_scores(table, pair_distances(features, table, W), names)


def distance_scores(table: pd.DataFrame, dist: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    """:func:`heldout_scores` from distances (one column per metric, rows aligned with ``table``)."""
    return rank_scores(table, dist, names)


# --------------------------------------------------------------------------- the rank-vs-rank scorer
def rank_scores(table: pd.DataFrame, dist: np.ndarray, names: Sequence[str], *, per_ranking: bool = False,
                kendall: bool = False, interval: bool = False, pvalues: bool = False) -> pd.DataFrame:
    """Agreement of several metrics (``dist``: one column per name, lower = more similar) with the human ranks.

    Indexed by metric: ``icc_A_k``, ``spearman``, ``spearman_raw``, ``pair_accuracy``, ``n_rankings``, and
    as asked ``spearman_per_ranking`` (``per_ranking``), ``kendall`` (tau-b on within-ranking ranks),
    ``icc_A_k_ci_low/ci_high/F/pval`` (``interval``: the F-based 95% interval and test) and the two-sided
    ``*_pval`` of rho and tau (``pvalues``: rows taken as independent, as scipy).
    """
    ids = ranking_ids(table).to_numpy()
    dist = np.asarray(dist, dtype=float).reshape(len(table), -1)
    metric_rank = pd.DataFrame(dist).groupby(ids, sort=False).rank(method="average").to_numpy(float)
    human = table["rank"].to_numpy(float)
    icc = _icc_columns(human, metric_rank, interval)
    out = pd.DataFrame({"icc_A_k": icc.pop("icc_A_k"), "spearman": spearman_columns(human, metric_rank),
                        "spearman_raw": spearman_columns(human, dist), "pair_accuracy": pair_accuracy(table, dist),
                        "n_rankings": int(pd.unique(ids).size)}, index=pd.Index(list(names), name="metric"))
    if per_ranking:
        out["spearman_per_ranking"] = per_ranking_spearman(ids, human, dist).mean(axis=0).to_numpy(float)
    if kendall:
        out["kendall"], tau_p = _kendall_columns(human, metric_rank)
    out = out.assign(**icc)
    if pvalues:
        out["spearman_raw_pval"] = spearman_pvalue(out["spearman_raw"].to_numpy(float), len(human))
        out["spearman_pval"] = spearman_pvalue(out["spearman"].to_numpy(float), len(human))
        if kendall:
            out["kendall_pval"] = tau_p
    return out


def _icc_columns(human: np.ndarray, metric_rank: np.ndarray, interval: bool) -> dict[str, np.ndarray]:
    """ICC(A,k) of the (human rank, metric rank) items per metric column, as one batch of mean squares."""
    n_metrics = metric_rank.shape[1]
    keys = ("ci_low", "ci_high", "F", "pval") if interval else ()
    if len(human) < 2:
        return {"icc_A_k": np.full(n_metrics, np.nan), **{f"icc_A_k_{key}": np.full(n_metrics, np.nan) for key in keys}}
    Y = np.stack([np.broadcast_to(human[:, None], metric_rank.shape), metric_rank], axis=-1)  # N x M x 2
    ms = mean_squares(np.moveaxis(Y, 1, 0))                                                  # one per metric
    row = icc_inference(ms)["ICC(A,k)"] if interval else {"ICC": icc_from_mean_squares(ms, "ICC(A,k)")}
    return {"icc_A_k": np.atleast_1d(row["ICC"]).astype(float),
            **{f"icc_A_k_{key}": np.atleast_1d(row[key]).astype(float) for key in keys}}


def spearman_columns(x: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Spearman's rho of ``x`` with each column of ``Y``, pooled over all rows."""
    x = np.asarray(x, dtype=float)
    return spearman_rho(x[:, None], np.asarray(Y, dtype=float).reshape(len(x), -1), axis=0)


def per_ranking_spearman(ids, human, Y) -> pd.DataFrame:
    """Spearman's rho of the human ranks with each column of ``Y`` within each ranking (one row per
    ranking, in order of first appearance; NaN where a side is constant).
    """
    ids = np.asarray(ids)
    Y = np.asarray(Y, dtype=float).reshape(len(ids), -1)
    return pd.DataFrame(set_correlations(ids, np.asarray(human, dtype=float), Y),
                        index=pd.Index(pd.unique(pd.Series(ids))))


def kendall_columns(x: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of ``x`` with each column of ``Y``, pooled over all rows."""
    return _kendall_columns(x, Y)[0]


def _kendall_columns(x: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tau-b, two-sided p) per column of ``Y``: :func:`scipy.stats.kendalltau` each."""
    Y = np.asarray(Y, dtype=float).reshape(len(x), -1)
    out = np.full((2, Y.shape[1]), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for j in range(Y.shape[1]):
            if np.ptp(Y[:, j]) > 0:
                res = sps.kendalltau(x, Y[:, j], variant="b")
                out[:, j] = res.statistic, res.pvalue
    return out[0], out[1]


def __getattr__(name: str):
    return moved_name(__name__, name)   # row_spearman: now chapter 01's and 08's (clpips.book.truth)
