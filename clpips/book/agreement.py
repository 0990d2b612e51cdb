"""How far a crowd agrees with itself: the split-half reliability of a triplet dataset (chapters 01, 08).

A crowd dataset (:mod:`clpips.datasets.zappos`, :mod:`clpips.datasets.alien_eggs`) has no individual
raters, so "how far do people agree?" becomes "how reproducible is the crowd's ranking?". The dataset
ranks every set twice, from two random halves of its target's triplets
(:func:`clpips.datasets.zappos.split_half_ranks`); :func:`split_half` scores the two rankings against
each other with the package's statistics and steps the half-data correlation up to the full data.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from clpips.datasets.zappos import ALPHA, HeadTriplets, split_half_ranks
from clpips.defaults import DEFAULTS
from clpips.stats import metric_statistics
from clpips.stats.spearman_brown import spearman_brown

__all__ = ["split_half"]


def split_half(table: pd.DataFrame, triplets: np.ndarray | HeadTriplets, seed: int = DEFAULTS.seed,
               alpha: float = ALPHA) -> dict[str, float]:
    """The data's split-half reliability: agreement of the rankings from two random halves of the triplets.

    Uses :func:`clpips.datasets.zappos.split_half_ranks` (``triplets``: zappos's array, or another
    dataset's :class:`~clpips.datasets.zappos.HeadTriplets`, e.g.
    ``alien_eggs.head_triplets(alien_eggs.triplets())``), then the package's one computation of the
    paper's statistics (:func:`clpips.stats.metric_statistics`, half B's ranks as the "metric"), and
    the Spearman–Brown prophecy (:func:`clpips.stats.spearman_brown.spearman_brown`) to step the
    half-data correlation up to the full data.

    Returns
    -------
    dict
        ``rho_half`` (pooled Spearman of half-A vs half-B ranks), ``rho_spearman_brown``
        (``2 rho / (1 + rho)``: the reliability of rankings from all triplets),
        ``icc_A_k`` (ICC(A,k) of the two halves as two raters; with two raters it is
        itself a step-up to their mean, close to ``rho_spearman_brown``), ``n_sets``,
        ``n_rows``, ``seed``.
    """
    ranks = split_half_ranks(table, triplets, seed=seed, alpha=alpha)
    stats = metric_statistics(ranks, "set_id", "rank_a", "rank_b")
    return {"rho_half": stats["rho"], "rho_spearman_brown": spearman_brown(stats["rho"], 2),
            "icc_A_k": stats["icc"], "n_sets": int(ranks["set_id"].nunique()), "n_rows": int(len(ranks)),
            "seed": int(seed)}
