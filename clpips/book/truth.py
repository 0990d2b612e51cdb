"""A simulated study's rankings against its ground truth (:mod:`clpips.book.simulated`).

* :func:`attribute_matches`: per row, which scene attributes the candidate shares with its target;
* :func:`truth_agreement`: per set, the Spearman correlation of the rater's ranks with the
  ranking implied by several weightings of the attributes (:data:`WEIGHTINGS`: the rater's
  own, their group's, everyone's, equal).

Conventions: rank 1 = most similar; a rater's ranks are correlated with ``-utility``
(higher utility = more similar), so that agreement is positive.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from clpips.stats import spearman_rho

__all__ = ["attribute_matches", "WEIGHTINGS", "truth_agreement"]


def attribute_matches(table: pd.DataFrame, image_info: pd.DataFrame, attributes: Sequence[str]) -> pd.DataFrame:
    """Which attributes each candidate shares with its target (a simulated study).

    Parameters
    ----------
    table : pandas.DataFrame
        Rankings.
    image_info : pandas.DataFrame
        One row per image (``image`` column) with one column per attribute.
    attributes : sequence of str
        Attribute columns (e.g. :data:`clpips.book.scenes.NAMES`).

    Returns
    -------
    pandas.DataFrame
        Aligned with ``table``: one boolean column per attribute and ``n_match``,
        the number of attributes matched.
    """
    info = image_info.set_index("image")[list(attributes)]
    cand = info.reindex(table["candidate"]).to_numpy()
    targ = info.reindex(table["target"]).to_numpy()
    if pd.isna(cand).any() or pd.isna(targ).any():
        raise ValueError("image_info lacks attributes for some images of the table")
    match = pd.DataFrame(cand == targ, columns=list(attributes), index=table.index)
    match["n_match"] = match[list(attributes)].sum(axis=1)
    return match


#: weightings of the attributes compared by :func:`truth_agreement`, in display order
WEIGHTINGS = ("own weights", "group weights", "everyone's weights", "equal weights")


def truth_agreement(table: pd.DataFrame, matches: pd.DataFrame, weights: pd.DataFrame,
                    group_weights: pd.DataFrame) -> pd.DataFrame:
    """Spearman correlation of each set's ranks with the ranking implied by a weighting of attributes.

    A candidate's utility under weights ``w`` is ``sum_a w_a * match_a``
    (the simulated study's model, without its judgement noise). Four weightings:
    the rater's own ``w_r`` (the ground truth), their group's mean ``mu_g``, the
    mean of all raters' weights (one metric for everyone) and equal weights.

    Parameters
    ----------
    table : pandas.DataFrame
        Rankings of a simulated study (``set_id, rater, candidate, rank``); every
        set has one rater.
    matches : pandas.DataFrame
        :func:`attribute_matches` of ``table``.
    weights, group_weights : pandas.DataFrame
        ``dataset.truth.weights`` (``rater``, ``group``, one column per
        attribute) and ``dataset.truth.group_weights`` (``group``, attributes).

    Returns
    -------
    pandas.DataFrame
        One row per set: ``set_id, rater, group`` and one column per name in
        :data:`WEIGHTINGS` (NaN where a set's utilities are all equal).
    """
    attributes = [c for c in matches.columns if c != "n_match"]
    w = weights.set_index("rater")
    order = table.assign(_row=np.arange(len(table))).sort_values(["set_id", "candidate"], kind="stable")
    sets = order["set_id"].drop_duplicates().to_numpy()
    k_per_set = order.groupby("set_id", sort=False).size()
    if k_per_set.nunique() != 1:
        raise ValueError("truth_agreement expects every set to have the same number of candidates")
    k = int(k_per_set.iloc[0])
    raters = order.groupby("set_id", sort=False)["rater"].agg(["first", "nunique"])
    if (raters["nunique"] > 1).any():
        raise ValueError("truth_agreement expects one rater per set (a simulated study)")
    rater_of_set = raters["first"].to_numpy()
    ranks = order["rank"].to_numpy(dtype=float).reshape(len(sets), k)
    m = matches.iloc[order["_row"].to_numpy()][attributes].to_numpy(dtype=float).reshape(len(sets), k, -1)
    row_weights = {
        "own weights": w.loc[rater_of_set, attributes].to_numpy(),
        "group weights": group_weights.set_index("group").loc[w.loc[rater_of_set, "group"], attributes].to_numpy(),
        "everyone's weights": np.broadcast_to(w[attributes].mean().to_numpy(), (len(sets), len(attributes))),
        "equal weights": np.full((len(sets), len(attributes)), 1.0 / len(attributes)),
    }
    out = pd.DataFrame({"set_id": sets, "rater": rater_of_set,
                        "group": w.loc[rater_of_set, "group"].to_numpy()})
    with np.errstate(invalid="ignore", divide="ignore"):
        for name in WEIGHTINGS:
            utility = np.einsum("ska,sa->sk", m, row_weights[name])
            out[name] = row_spearman(ranks, -utility)
    return out


def row_spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row of ``a`` with the same row of ``b`` (NaN where constant or with a gap):
    :func:`clpips.stats.spearman_rho` along the rows."""
    return spearman_rho(np.asarray(a, dtype=float), np.asarray(b, dtype=float), axis=1)
