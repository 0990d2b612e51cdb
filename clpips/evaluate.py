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
"""
from __future__ import annotations

import warnings
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats as sps

from clpips.stats import (DegenerateDataWarning, icc, icc_ak_inference, icc_from_matrix, interpret_icc, mean_squares,
                    metric_human_table, rank_correlation, set_correlations)

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
    """Spearman, Kendall and ICC(A,k) of one metric column against the human ranks."""
    metric_rank = within_ranking_ranks(scored, column)
    frame = pd.DataFrame({"ranking": scored[RANKING].to_numpy(), "rank": scored["rank"].to_numpy(float),
                          "metric_rank": metric_rank.to_numpy(float)})
    rho = rank_correlation(frame, "ranking", "rank", "metric_rank", method="spearman")
    tau = rank_correlation(frame, "ranking", "rank", "metric_rank", method="kendall_b")
    table = metric_human_table(frame, "ranking", "rank", "metric_rank")
    res = icc(table, "target", "rater", "rating").set_index("Type").loc["ICC(A,k)"]
    ci = np.asarray(res["CI95"], dtype=float)
    raw = sps.spearmanr(scored["rank"].to_numpy(float), scored[column].to_numpy(float))
    return {
        "spearman_raw": float(raw.statistic), "spearman_raw_pval": float(raw.pvalue),
        "spearman": float(rho.at["pooled", "r"]), "spearman_pval": float(rho.at["pooled", "pval"]),
        "spearman_per_ranking": float(rho.at["per_set_mean", "r"]),
        "kendall": float(tau.at["pooled", "r"]), "kendall_pval": float(tau.at["pooled", "pval"]),
        "icc_A_k": float(res["ICC"]), "icc_A_k_ci_low": float(ci[0]), "icc_A_k_ci_high": float(ci[1]),
        "icc_A_k_F": float(res["F"]), "icc_A_k_pval": float(res["pval"]),
        "icc_A_k_koo_li": interpret_icc(float(res["ICC"]), "koo_li"),
        "pair_accuracy": float(pair_accuracy(scored, scored[[column]].to_numpy(float))[0]),
        "n_rankings": int(scored[RANKING].nunique()), "n_targets": int(scored["target"].nunique()),
        "n_rows": int(len(scored)),
    }


def alignment_table(scored: pd.DataFrame, columns: Optional[list[str]] = None) -> pd.DataFrame:
    """:func:`alignment` for several metric columns, one row each (the paper's Table 3)."""
    columns = columns or [c for c in scored.columns if c not in _NON_METRIC]
    return pd.DataFrame({c: alignment(scored, c) for c in columns}).T.rename_axis("metric")


def pair_accuracy(table: pd.DataFrame, distances: np.ndarray) -> np.ndarray:
    """Per column of ``distances`` (rows aligned with ``table``): the share of the person's ordered pairs
    ``(better, worse)`` of each ranking for which the metric puts ``better`` closer (ties count 1/2)."""
    from clpips.pairs import ranking_pairs
    frame = table[["set_id", "rater", "target", "rank"]].assign(candidate=np.arange(len(table)))
    pairs = ranking_pairs(frame)
    if pairs.empty:
        return np.full(distances.shape[1], np.nan)
    gap = distances[pairs["worse"].to_numpy(int)] - distances[pairs["better"].to_numpy(int)]
    return ((gap > 0).mean(axis=0) + 0.5 * (gap == 0).mean(axis=0)).astype(float)


def heldout_scores(table: pd.DataFrame, features, weights: Mapping[str, torch.Tensor]) -> pd.DataFrame:
    """Agreement of several weight vectors with a ranking table, all in one pass.

    The same numbers as :func:`alignment` (ICC(A,k) of the metric-versus-human
    table on within-ranking ranks, ties averaged; pooled Spearman under both
    :data:`RHO_DEFINITIONS`; pair accuracy), vectorised over the weight vectors,
    which the protocol, the ablations and the learning curves need.

    Parameters
    ----------
    table : DataFrame
        Rankings (``set_id, target, candidate, rater, rank``).
    features : clpips.features.PairFeatures
        Covering the table's (target, candidate) pairs.
    weights : mapping name -> weight vector

    Returns
    -------
    DataFrame indexed by name: ``icc_A_k``, ``spearman``, ``spearman_raw``, ``pair_accuracy``, ``n_rankings``.
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
                kendall: bool = False, interval: bool = False) -> pd.DataFrame:
    """Agreement of several metrics with the human ranks: the package's one rank-vs-rank scorer.

    Parameters
    ----------
    table : DataFrame
        Rankings (``set_id, rater, target, rank``).
    dist : array (rows of ``table``) x (metrics)
        Distances, lower = more similar.
    names : the metrics' names, one per column of ``dist``
    per_ranking : add ``spearman_per_ranking``, the mean over rankings of :func:`per_ranking_spearman`
    kendall : add ``kendall``, Kendall's tau-b of the human ranks with the within-ranking ranks, pooled
    interval : add ``icc_A_k_ci_low``, ``icc_A_k_ci_high``, ``icc_A_k_F``, ``icc_A_k_pval``
        (:func:`clpips.stats.icc_ak_inference`, the F-based 95% interval and test)

    Returns
    -------
    DataFrame indexed by metric: ``icc_A_k`` (metric and person as two raters of each item,
    on within-ranking ranks), ``spearman`` (pooled over rankings on within-ranking ranks),
    ``spearman_raw`` (pooled on raw distances, as the paper), ``pair_accuracy``,
    ``n_rankings`` and the columns asked for. The definitions are :data:`RHO_DEFINITIONS`;
    with p-values, for one metric, see :func:`alignment`.
    """
    ids = ranking_ids(table).to_numpy()
    dist = np.asarray(dist, dtype=float).reshape(len(table), -1)
    metric_rank = pd.DataFrame(dist).groupby(ids, sort=False).rank(method="average").to_numpy(float)
    human = table["rank"].to_numpy(float)
    Y = np.stack([np.broadcast_to(human[:, None], metric_rank.shape), metric_rank], axis=-1)  # N x M x 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)
        icc = np.atleast_1d(icc_from_matrix(np.moveaxis(Y, 1, 0), "ICC(A,k)")) if len(human) >= 2 \
            else np.full(len(names), np.nan)
    out = pd.DataFrame({"icc_A_k": icc.astype(float), "spearman": spearman_columns(human, metric_rank),
                        "spearman_raw": spearman_columns(human, dist),
                        "pair_accuracy": pair_accuracy(table, dist),
                        "n_rankings": int(pd.unique(ids).size)}, index=pd.Index(list(names), name="metric"))
    if per_ranking:
        out["spearman_per_ranking"] = per_ranking_spearman(ids, human, dist).mean(axis=0).to_numpy(float)
    if kendall:
        out["kendall"] = kendall_columns(human, metric_rank)
    if interval:
        ranks = np.ascontiguousarray(metric_rank.T)                                       # M x N
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            warnings.simplefilter("ignore", DegenerateDataWarning)
            inference = icc_ak_inference(mean_squares(np.stack([np.broadcast_to(human, ranks.shape), ranks], -1)))
        for key in ("ci_low", "ci_high", "F", "pval"):
            out[f"icc_A_k_{key}"] = np.atleast_1d(inference[key]).astype(float)
    return out


def spearman_columns(x: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Spearman's rho of ``x`` with each column of ``Y``, pooled over all rows (NaN where one is constant)."""
    rh = sps.rankdata(x)
    rm = sps.rankdata(Y, axis=0)
    rh = rh - rh.mean()
    rm = rm - rm.mean(axis=0)
    den = np.sqrt((rh ** 2).sum() * (rm ** 2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rh @ rm) / np.where(den > 0, den, 1), np.nan)


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
    """Spearman's rho of each row of ``a`` with the same row of ``b``: :func:`per_ranking_spearman`
    with one ranking per row."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    rows = np.repeat(np.arange(a.shape[0]), a.shape[1])
    rho = per_ranking_spearman(rows, a.ravel(), b.ravel()).to_numpy(float)[:, 0]
    return np.where(np.isnan(a).any(axis=1) | np.isnan(b).any(axis=1), np.nan, rho)  # a gap: undefined


def kendall_columns(x: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of ``x`` with each column of ``Y``, pooled over all rows (NaN where a column is constant)."""
    Y = np.asarray(Y, dtype=float).reshape(len(x), -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.array([sps.kendalltau(x, Y[:, j], variant="b").statistic if np.ptp(Y[:, j]) > 0 else np.nan
                         for j in range(Y.shape[1])], dtype=float)
