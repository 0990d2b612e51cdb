"""Where candidates that share a label with their target land in the rankings (e.g. mur92's categories).

* :func:`same_category`: does each candidate share its target's label?
* :func:`top_rank_share`: per ranking, is the rank-1 candidate flagged, and how likely was that by chance?
* :func:`category_mean_rank`: mean rank of candidates by target label and candidate label.

:func:`clpips.book.summaries.rank_distribution` counts a label's candidates at each rank.
"""
from __future__ import annotations

import pandas as pd

__all__ = ["same_category", "top_rank_share", "category_mean_rank"]


def same_category(table: pd.DataFrame, image_info: pd.DataFrame, column: str = "category") -> pd.Series:
    """For each row of a ranking table: does the candidate share its target's ``column`` value?

    Parameters
    ----------
    table : pandas.DataFrame
        Rankings (``target``, ``candidate`` columns).
    image_info : pandas.DataFrame
        Per-image metadata with an ``image`` column and ``column``.
    column : str
        The label to compare (e.g. ``"category"`` of mur92).

    Returns
    -------
    pandas.Series
        Boolean, aligned with ``table``, named ``"same_<column>"``.
    """
    label = image_info.set_index("image")[column]
    missing = set(table["target"]).union(table["candidate"]) - set(label.index)
    if missing:
        raise ValueError(f"image_info has no {column!r} for {len(missing)} images, e.g. {sorted(missing)[0]!r}")
    same = table["candidate"].map(label).to_numpy() == table["target"].map(label).to_numpy()
    return pd.Series(same, index=table.index, name=f"same_{column}")


def top_rank_share(table: pd.DataFrame, flag: pd.Series) -> pd.DataFrame:
    """Per ranking (set, rater): is the rank-1 candidate flagged, and the chance of that.

    Parameters
    ----------
    table : pandas.DataFrame
        Rankings.
    flag : pandas.Series
        Boolean per row of ``table`` (e.g. :func:`same_category`).

    Returns
    -------
    pandas.DataFrame
        ``set_id, rater, k, n_flagged, top_flagged, chance`` where ``chance =
        n_flagged / k`` is the probability that a uniformly random order puts
        a flagged candidate first.
    """
    t = table[["set_id", "rater", "rank"]].assign(flag=flag.to_numpy(dtype=bool))
    groups = t.groupby(["set_id", "rater"], sort=True)
    out = groups.agg(k=("flag", "size"), n_flagged=("flag", "sum")).reset_index()
    top = t.loc[t["rank"] == 1].set_index(["set_id", "rater"])["flag"]
    out["top_flagged"] = top.reindex(pd.MultiIndex.from_frame(out[["set_id", "rater"]])).to_numpy(dtype=bool)
    out["chance"] = out["n_flagged"] / out["k"]
    return out


def category_mean_rank(table: pd.DataFrame, image_info: pd.DataFrame, column: str = "category") -> pd.DataFrame:
    """Mean rank of candidates by target category (rows) and candidate category (columns)."""
    label = image_info.set_index("image")[column]
    t = pd.DataFrame({"target category": table["target"].map(label).to_numpy(),
                      "candidate category": table["candidate"].map(label).to_numpy(),
                      "rank": table["rank"].to_numpy(dtype=float)})
    return t.pivot_table(index="target category", columns="candidate category", values="rank", aggfunc="mean")
