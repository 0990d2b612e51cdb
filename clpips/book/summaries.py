"""Descriptive summaries of a ranking table, as tidy DataFrames.

* :func:`counts`: how much data there is (sets, raters, rankings, pairs...);
* :func:`rater_agreement`: mean pairwise Spearman between the raters of each set;
* :func:`noise_ceiling_bounds`: per (set, rater), the lower (leave one rater out) and
  upper (rater included) noise-ceiling correlations;
* :func:`noise_ceiling`: the lower bound per rater and over all;
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
            rho = np.corrcoef(pd.DataFrame(ranks).rank(axis=1, method="average").to_numpy())  # Spearman
        upper = rho[np.triu_indices(len(raters), k=1)]
        rows.append({"set_id": set_id, "n_raters": len(raters), "k": ranks.shape[1],
                     "mean_rho": float(np.nanmean(upper)) if np.isfinite(upper).any() else np.nan})
    return pd.DataFrame(rows, columns=["set_id", "n_raters", "k", "mean_rho"])


def noise_ceiling_bounds(table: pd.DataFrame) -> pd.DataFrame:
    """Lower and upper noise-ceiling correlations for every (set, rater) of sets with 2+ raters.

    ``lower``: Spearman of the rater's ranks with the mean rank the *other* raters of the
    set gave (leave one rater out). ``upper``: with the mean rank of *all* raters, the
    rater included, which flatters the rater (Nili et al. 2014). The best single ranking
    of a set for predicting its raters has an expected correlation between the two.

    Returns
    -------
    pandas.DataFrame
        ``set_id, rater, n_raters, lower, upper``; empty when no set has two raters.
    """
    from clpips.book.truth import row_spearman
    parts = []
    for set_id, raters, y in _rank_matrices(table):
        m = len(raters)
        total = y.sum(axis=0, keepdims=True)
        parts.append(pd.DataFrame({"set_id": set_id, "rater": raters, "n_raters": m,
                                   "lower": row_spearman(y, (total - y) / (m - 1)),
                                   "upper": row_spearman(y, np.repeat(total / m, m, axis=0))}))
    if not parts:
        return pd.DataFrame(columns=["set_id", "rater", "n_raters", "lower", "upper"])
    return pd.concat(parts, ignore_index=True)


def noise_ceiling(table: pd.DataFrame) -> pd.DataFrame:
    """Leave-one-rater-out agreement: the lower bound of the noise ceiling.

    :func:`noise_ceiling_bounds`'s ``lower`` (each rater's Spearman with the mean rank of
    the set's other raters), averaged per rater and over all. The others' mean is a noisy
    estimate of the consensus, so this *understates* what the best single ranking per set
    achieves: a lower bound of the noise ceiling (Nili et al., 2014). A metric, which ranks
    a set the same way for everyone, can exceed it.

    Returns
    -------
    pandas.DataFrame
        ``rater, n_sets, rho`` (mean over the rater's sets), one row per rater
        and a last row ``rater="all"`` averaging over every (set, rater).
    """
    bounds = noise_ceiling_bounds(table)
    if bounds.empty:
        return pd.DataFrame(columns=["rater", "n_sets", "rho"])
    per_set = bounds.rename(columns={"lower": "rho"})
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
