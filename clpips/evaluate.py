"""Alignment of metrics with held-out human rankings (the paper's Table 3).

The unit of evaluation is one *ranking*: one rater's order of one set's
candidates (``ranking = set_id | rater``). For each metric the candidates'
distances to the target are turned into ranks within the ranking (1 = smallest
distance), and compared with the person's ranks:

* Spearman's rho pooled over all rankings, under two definitions (:data:`RHO_DEFINITIONS`):
  ``spearman_raw``, the human rank against the metric's *raw distance* over all
  sets, as the paper pools; and ``spearman``, the human rank against the metric's
  *within-ranking rank*, which with untied ranks and equal set sizes equals the
  mean per-ranking rho (``spearman_per_ranking``); Kendall's tau-b on within-ranking ranks;
* pair accuracy: the share of the person's ordered candidate pairs that the
  metric orders the same way (a tie counts one half);
* ICC(A,k) of the metric-vs-human table (metric and human as the two raters of
  each (ranking, candidate) item), with its F-based 95% interval and p-value.

Because both "raters" give ranks 1..k, the between-rater mean square is zero,
so ICC(C,k) = 2 rho / (1 + rho) exactly when neither side has ties (the
Spearman-Brown formula applied to the pooled rank correlation), and ICC(A,k)
differs from ICC(C,k) only by a term of order 1/n items (see
:func:`clpips.stats.icc`): on rank data the paper's ICC restates its rho.

:func:`rank_scores` is the one scorer, vectorised over metrics: :func:`alignment` is it for one
metric with every statistic and p-value, :func:`distance_scores` and :func:`heldout_scores` are it
without extras (from distances, from weight vectors).
"""
from __future__ import annotations

import warnings
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats as sps

from clpips.pairs import ranking_pairs
from clpips.stats import (icc_from_mean_squares, icc_inference, interpret_icc, mean_squares, set_correlations,
                          spearman_pvalue, spearman_rho)

RANKING = "ranking"
#: the two pooled Spearman definitions, by the column name they are reported under
RHO_DEFINITIONS = {
    "spearman_raw": "raw distances pooled across sets, as the paper",
    "spearman": "within-ranking ranks, = mean per-ranking rho",
}
#: columns of a scored table that are not metrics
_NON_METRIC = {"set_id", "target", "candidate", "rater", "rank", "group", "iteration", "prompt", RANKING}


def ranking_ids(table: pd.DataFrame) -> pd.Series:
    """``set_id|rater``: one id per human ranking."""
    return table["set_id"].astype(str) + "|" + table["rater"].astype(str)


def score_rankings(table: pd.DataFrame, features, metrics: Mapping[str, torch.Tensor]) -> pd.DataFrame:
    """Add one distance column per weight-vector metric to a ranking table.

    ``features`` are :class:`clpips.features.PairFeatures` covering the table's
    (target, candidate) pairs; each metric is a weight vector ``w`` with
    ``distance = phi . w``.
    """
    out = table.copy()
    out[RANKING] = ranking_ids(out)
    rows = features.rows(out["target"], out["candidate"])
    phi = features.matrix[rows]
    for name, w in metrics.items():
        out[name] = (phi @ torch.as_tensor(w, dtype=phi.dtype)).numpy().astype(float)
    return out


def within_ranking_ranks(scored: pd.DataFrame, column: str) -> pd.Series:
    """A metric's distances as ranks within each ranking (1 = most similar, ties averaged)."""
    return scored.groupby(RANKING, sort=False)[column].rank(method="average")


def alignment(scored: pd.DataFrame, column: str) -> dict[str, float]:
    """Every statistic of one metric column against the human ranks: :func:`rank_scores` with all
    extras and p-values, the Koo & Li label of its ICC(A,k) and the table's counts."""
    row = rank_scores(scored, scored[[column]].to_numpy(float), [column], per_ranking=True, kendall=True,
                      interval=True, pvalues=True).iloc[0]
    out = {key: float(row[key]) for key in ("spearman_raw", "spearman_raw_pval", "spearman", "spearman_pval",
                                             "spearman_per_ranking", "kendall", "kendall_pval", "icc_A_k",
                                             "icc_A_k_ci_low", "icc_A_k_ci_high", "icc_A_k_F", "icc_A_k_pval")}
    return {**out, "icc_A_k_koo_li": interpret_icc(out["icc_A_k"], "koo_li"),
            "pair_accuracy": float(row["pair_accuracy"]), "n_rankings": int(row["n_rankings"]),
            "n_targets": int(scored["target"].nunique()), "n_rows": int(len(scored))}


def alignment_table(scored: pd.DataFrame, columns: Optional[list[str]] = None) -> pd.DataFrame:
    """:func:`alignment` for several metric columns, one row each (the paper's Table 3)."""
    columns = columns or [c for c in scored.columns if c not in _NON_METRIC]
    return pd.DataFrame({c: alignment(scored, c) for c in columns}).T.rename_axis("metric")


def pair_accuracy(table: pd.DataFrame, distances: np.ndarray) -> np.ndarray:
    """Per column of ``distances`` (rows aligned with ``table``): the share of the person's ordered pairs
    ``(better, worse)`` of each ranking for which the metric puts ``better`` closer (ties count 1/2)."""
    frame = table[["set_id", "rater", "target", "rank"]].assign(candidate=np.arange(len(table)))
    pairs = ranking_pairs(frame)
    if pairs.empty:
        return np.full(distances.shape[1], np.nan)
    gap = distances[pairs["worse"].to_numpy(int)] - distances[pairs["better"].to_numpy(int)]
    return ((gap > 0).mean(axis=0) + 0.5 * (gap == 0).mean(axis=0)).astype(float)


def heldout_scores(table: pd.DataFrame, features, weights: Mapping[str, torch.Tensor]) -> pd.DataFrame:
    """:func:`rank_scores` (without extras) of several weight vectors on a ranking table, all in one pass.

    ``table`` holds rankings (``set_id, target, candidate, rater, rank``), ``features`` are
    :class:`clpips.features.PairFeatures` covering its (target, candidate) pairs and ``weights`` maps
    names to weight vectors, as the protocol, the ablations and the learning curves need. Returns a
    table indexed by name: ``icc_A_k``, ``spearman``, ``spearman_raw``, ``pair_accuracy``, ``n_rankings``.
    """
    names = list(weights)
    if table.empty or not names:
        return pd.DataFrame({"icc_A_k": np.nan, "spearman": np.nan, "spearman_raw": np.nan, "pair_accuracy": np.nan,
                             "n_rankings": 0}, index=pd.Index(names, name="metric"))
    rows = features.rows(table["target"], table["candidate"])
    W = torch.stack([torch.as_tensor(weights[n], dtype=torch.float32).flatten() for n in names], dim=1)
    dist = (features.matrix[rows] @ W).numpy().astype(float)
    return distance_scores(table, dist, names)


def distance_scores(table: pd.DataFrame, dist: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    """:func:`heldout_scores` from distances (one column per metric, rows aligned with ``table``)."""
    return rank_scores(table, dist, names)


# --------------------------------------------------------------------------- the rank-vs-rank scorer
def rank_scores(table: pd.DataFrame, dist: np.ndarray, names: Sequence[str], *, per_ranking: bool = False,
                kendall: bool = False, interval: bool = False, pvalues: bool = False) -> pd.DataFrame:
    """Agreement of several metrics with the human ranks: the package's one rank-vs-rank scorer.

    ``table`` holds rankings (``set_id, rater, target, rank``); ``dist`` the distances (lower = more
    similar), one column per metric of ``names``, rows aligned with ``table``.

    Returns a table indexed by metric: ``icc_A_k`` (metric and person as two raters of each item, on
    within-ranking ranks), ``spearman`` (pooled over rankings on within-ranking ranks),
    ``spearman_raw`` (pooled on raw distances, as the paper), ``pair_accuracy``, ``n_rankings``
    (definitions: :data:`RHO_DEFINITIONS`), and the columns asked for:

    * ``per_ranking``: ``spearman_per_ranking``, the mean over rankings of :func:`per_ranking_spearman`;
    * ``kendall``: ``kendall``, Kendall's tau-b of the human ranks with the within-ranking ranks, pooled;
    * ``interval``: ``icc_A_k_ci_low``, ``icc_A_k_ci_high``, ``icc_A_k_F``, ``icc_A_k_pval``
      (:func:`clpips.stats.icc_inference`, the F-based 95% interval and test);
    * ``pvalues``: ``spearman_raw_pval``, ``spearman_pval`` and, with ``kendall``, ``kendall_pval``
      (two-sided, rows taken as independent, as :func:`scipy.stats.spearmanr` and ``kendalltau``).
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
    tau, tau_p = _kendall_columns(human, metric_rank) if kendall else (None, None)
    if kendall:
        out["kendall"] = tau
    out = out.assign(**icc)
    if pvalues:
        out["spearman_raw_pval"] = spearman_pvalue(out["spearman_raw"].to_numpy(float), len(human))
        out["spearman_pval"] = spearman_pvalue(out["spearman"].to_numpy(float), len(human))
        if kendall:
            out["kendall_pval"] = tau_p
    return out


def _icc_columns(human: np.ndarray, metric_rank: np.ndarray, interval: bool) -> dict[str, np.ndarray]:
    """ICC(A,k) of the (human rank, metric rank) items for each metric column (and with ``interval``
    its F test and interval): the vectorised path of :mod:`clpips.stats.icc`, one batch of metrics."""
    n_metrics = metric_rank.shape[1]
    keys = ("ci_low", "ci_high", "F", "pval") if interval else ()
    if len(human) < 2:
        return {"icc_A_k": np.full(n_metrics, np.nan), **{f"icc_A_k_{key}": np.full(n_metrics, np.nan) for key in keys}}
    Y = np.stack([np.broadcast_to(human[:, None], metric_rank.shape), metric_rank], axis=-1)  # N x M x 2
    ms = mean_squares(np.moveaxis(Y, 1, 0))                                                  # one per metric
    if not interval:
        return {"icc_A_k": np.atleast_1d(icc_from_mean_squares(ms, "ICC(A,k)")).astype(float)}
    row = icc_inference(ms)["ICC(A,k)"]
    return {"icc_A_k": np.atleast_1d(row["ICC"]).astype(float),
            **{f"icc_A_k_{key}": np.atleast_1d(row[key]).astype(float) for key in keys}}


def spearman_columns(x: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Spearman's rho of ``x`` with each column of ``Y``, pooled over all rows (NaN where one is constant):
    :func:`clpips.stats.spearman_rho` along the rows."""
    x = np.asarray(x, dtype=float)
    return spearman_rho(x[:, None], np.asarray(Y, dtype=float).reshape(len(x), -1), axis=0)


def per_ranking_spearman(ids, human, Y) -> pd.DataFrame:
    """Spearman's rho of the human ranks with each column of ``Y`` within each ranking.

    ``ids`` name the ranking of each row; both sides are ranked within the ranking
    (average ranks for ties). Returns one row per ranking (in order of first appearance)
    and one column per column of ``Y``; NaN where a side is constant within the ranking
    (:func:`clpips.stats.set_correlations`).
    """
    ids = np.asarray(ids)
    Y = np.asarray(Y, dtype=float).reshape(len(ids), -1)
    return pd.DataFrame(set_correlations(ids, np.asarray(human, dtype=float), Y, "spearman"),
                        index=pd.Index(pd.unique(pd.Series(ids))))


def row_spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row of ``a`` with the same row of ``b`` (:func:`clpips.stats.spearman_rho`
    along the rows); NaN where a row is constant or has a gap (NaN)."""
    return spearman_rho(np.asarray(a, dtype=float), np.asarray(b, dtype=float), axis=1)


def kendall_columns(x: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of ``x`` with each column of ``Y``, pooled over all rows (NaN where a column is constant)."""
    return _kendall_columns(x, Y)[0]


def _kendall_columns(x: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tau-b, two-sided p) of ``x`` with each column of ``Y``: :func:`scipy.stats.kendalltau` per column."""
    Y = np.asarray(Y, dtype=float).reshape(len(x), -1)
    out = np.full((2, Y.shape[1]), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for j in range(Y.shape[1]):
            if np.ptp(Y[:, j]) > 0:
                res = sps.kendalltau(x, Y[:, j], variant="b")
                out[:, j] = res.statistic, res.pvalue
    return out[0], out[1]
