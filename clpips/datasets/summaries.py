"""Descriptive summaries of a ranking table, as tidy DataFrames.

* :func:`counts`: how much data there is (sets, raters, rankings, pairs...);
* :func:`rater_agreement`: mean pairwise Spearman between the raters of each set;
* :func:`noise_ceiling`: each rater's Spearman with the mean rank of the other
  raters of the same set (leave one rater out), per rater and over all: the
  *lower bound* of the noise ceiling;
* :func:`rank_distribution`: how often candidates of each label land at each rank.

Agreement needs sets ranked by two or more raters (``mur92``); in a study where
every set has one rater (``simulated``) those tables are empty.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd


def counts(table: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Sets, raters, targets, candidate images, rankings and ordered pairs.

    Parameters
    ----------
    table : pandas.DataFrame
        Rankings in the schema of :mod:`clpips.datasets.schema`.
    by : str, optional
        A column (e.g. ``"group"``) to count within; default: one row for all.

    Returns
    -------
    pandas.DataFrame
        Columns ``sets, raters, targets, candidates, images, rankings, pairs,
        k_min, k_max`` (and ``by``). ``pairs`` counts candidate pairs a ranking
        orders, i.e. with different ranks.
    """
    def one(part: pd.DataFrame) -> dict:
        k = part.groupby(["set_id", "rater"]).size()
        tie_sizes = part.groupby(["set_id", "rater", "rank"]).size()
        return {"sets": part["set_id"].nunique(), "raters": part["rater"].nunique(),
                "targets": part["target"].nunique(), "candidates": part["candidate"].nunique(),
                "images": len(set(part["target"]) | set(part["candidate"])), "rankings": len(k),
                "pairs": int((k * (k - 1) // 2).sum() - (tie_sizes * (tie_sizes - 1) // 2).sum()),
                "k_min": int(k.min()), "k_max": int(k.max())}

    if by is None:
        return pd.DataFrame([one(table)])
    return pd.DataFrame([{by: key, **one(part)} for key, part in table.groupby(by, sort=True)])


def _rank_matrices(table: pd.DataFrame):
    """For each set with two or more raters: (set_id, raters, rater x candidate ranks)."""
    for set_id, part in table.groupby("set_id", sort=True):
        ranks = part.pivot(index="rater", columns="candidate", values="rank")
        if len(ranks) >= 2:
            yield set_id, ranks.index.to_list(), ranks.to_numpy(dtype=float)


def _row_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``a`` with the same row of ``b`` (NaN if constant)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis=1) / np.sqrt((a ** 2).sum(axis=1) * (b ** 2).sum(axis=1))


def _spearman_rows(values: np.ndarray) -> np.ndarray:
    """Rank each row (average ranks for ties), so that Pearson on them is Spearman."""
    return pd.DataFrame(values).rank(axis=1, method="average").to_numpy()


def rater_agreement(table: pd.DataFrame) -> pd.DataFrame:
    """Mean pairwise Spearman correlation between the raters of each shared set.

    Returns
    -------
    pandas.DataFrame
        One row per set ranked by two or more raters: ``set_id, n_raters, k,
        mean_rho``. The overall agreement is ``mean_rho.mean()``.
    """
    rows = []
    for set_id, raters, ranks in _rank_matrices(table):
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = np.corrcoef(_spearman_rows(ranks))
        upper = rho[np.triu_indices(len(raters), k=1)]
        rows.append({"set_id": set_id, "n_raters": len(raters), "k": ranks.shape[1],
                     "mean_rho": float(np.nanmean(upper)) if np.isfinite(upper).any() else np.nan})
    return pd.DataFrame(rows, columns=["set_id", "n_raters", "k", "mean_rho"])


def noise_ceiling(table: pd.DataFrame) -> pd.DataFrame:
    """Leave-one-rater-out agreement: the lower bound of the noise ceiling.

    For every shared set and rater, the Spearman correlation between the
    rater's ranks and the mean rank the other raters of the set gave. The
    others' mean is a noisy estimate of the consensus, so this *understates*
    what the best single ranking per set achieves: it is a lower bound of the
    noise ceiling, not the ceiling (the upper bound, with the rater included,
    is :func:`clpips.plots.datasets.noise_ceiling_bounds`'s ``upper``; Nili et
    al., 2014). A metric, which ranks a set the same way for everyone, can
    exceed it.

    Returns
    -------
    pandas.DataFrame
        ``rater, n_sets, rho`` (mean over the rater's sets), one row per rater
        and a last row ``rater="all"`` averaging over every (set, rater).
    """
    parts = []
    for set_id, raters, ranks in _rank_matrices(table):
        others = (ranks.sum(axis=0, keepdims=True) - ranks) / (len(raters) - 1)
        rho = _row_correlations(_spearman_rows(ranks), _spearman_rows(others))
        parts.append(pd.DataFrame({"set_id": set_id, "rater": raters, "rho": rho}))
    if not parts:
        return pd.DataFrame(columns=["rater", "n_sets", "rho"])
    per_set = pd.concat(parts, ignore_index=True)
    per_rater = per_set.groupby("rater", sort=True)["rho"].agg(n_sets="count", rho="mean").reset_index()
    overall = pd.DataFrame([{"rater": "all", "n_sets": int(per_set["rho"].count()), "rho": per_set["rho"].mean()}])
    return pd.concat([per_rater, overall], ignore_index=True)


def rank_distribution(table: pd.DataFrame, labels: str | Mapping | pd.Series) -> pd.DataFrame:
    """How often candidates of each label land at each rank.

    Parameters
    ----------
    table : pandas.DataFrame
        Rankings.
    labels : str, mapping or Series
        A column of ``table`` (e.g. ``"iteration"``), or a map from candidate
        image to label, e.g. ``image_info.set_index("image")["category"]``.

    Returns
    -------
    pandas.DataFrame
        ``<label>, rank, count, share`` for every label and rank (zeros
        included); ``share`` is the label's count at that rank over its count
        at all ranks.
    """
    if isinstance(labels, str):
        name, label = labels, table[labels]
    else:
        name = getattr(labels, "name", None) or "label"
        label = table["candidate"].map(labels)
    grid = pd.crosstab(pd.Series(label.to_numpy(), name=name), pd.Series(table["rank"].to_numpy(), name="rank"))
    tally = grid.stack().rename("count").reset_index()  # every label x rank, zeros included
    tally["share"] = tally["count"] / tally.groupby(name)["count"].transform("sum")
    return tally
