"""Ordered training pairs from human rankings.

A ranking of ``k`` candidates by one rater yields ``k (k - 1) / 2`` ordered
pairs ``(better, worse)``: ``better`` was ranked more similar to the target
(smaller rank) than ``worse``. The margin ranking loss asks the metric to put
``better`` closer to the target than ``worse`` by at least a margin.
"""
from __future__ import annotations

from typing import Optional

import pandas as pd

PAIR_COLUMNS = ["set_id", "rater", "target", "better", "worse", "rank_better", "rank_worse"]


def ranking_pairs(table: pd.DataFrame, rater: Optional[object] = None, pool: bool = True) -> pd.DataFrame:
    """Every ordered (more similar, less similar) pair of each (set, rater) ranking.

    Parameters
    ----------
    table : DataFrame
        Ranking rows in the dataset schema (``set_id``, ``target``, ``candidate``,
        ``rater``, ``rank``; rank 1 = most similar).
    rater : optional
        Keep only this rater's rankings.
    pool : bool
        If True (default) all raters' pairs are kept together; if False, one
        rater must be given (per-person training).

    Returns
    -------
    DataFrame with columns ``set_id, rater, target, better, worse, rank_better, rank_worse``,
    one row per pair, ``rank_better < rank_worse``. Tied ranks give no pair.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"set_id": "s", "target": "t.png", "rater": "r",
    ...                   "candidate": ["a.png", "b.png", "c.png"], "rank": [2, 1, 3]})
    >>> ranking_pairs(t)[["better", "worse"]].values.tolist()
    [['b.png', 'a.png'], ['b.png', 'c.png'], ['a.png', 'c.png']]
    """
    missing = {"set_id", "target", "candidate", "rater", "rank"} - set(table.columns)
    if missing:
        raise ValueError(f"ranking table lacks columns {sorted(missing)}")
    if not pool and rater is None:
        raise ValueError("pool=False needs a rater: pairs are built for one person at a time")
    rows = table[["set_id", "rater", "target", "candidate", "rank"]]
    if rater is not None:
        rows = rows[rows["rater"] == rater]
        if rows.empty:
            raise ValueError(f"rater {rater!r} has no rankings in this table")
    left = rows.rename(columns={"candidate": "better", "rank": "rank_better"})
    right = rows.rename(columns={"candidate": "worse", "rank": "rank_worse"}).drop(columns="target")
    pairs = left.merge(right, on=["set_id", "rater"])
    pairs = pairs[pairs["rank_better"] < pairs["rank_worse"]]
    pairs = pairs.sort_values(["set_id", "rater", "rank_better", "rank_worse"], kind="stable")
    return pairs[PAIR_COLUMNS].reset_index(drop=True)
