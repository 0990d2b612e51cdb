"""How far a crowd agrees with itself: the split-half reliability of a triplet dataset (chapters 01, 08).

A crowd dataset (:mod:`clpips.datasets.zappos`, :mod:`clpips.datasets.alien_eggs`) has no individual
raters, so "how far do people agree?" becomes "how reproducible is the crowd's ranking?". The dataset
ranks every set twice, from two random halves of its target's triplets
(:func:`split_half_ranks`); :func:`split_half` scores the two rankings against
each other with the package's statistics and steps the half-data correlation up to the full data.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from clpips.datasets.zappos import ALPHA, HeadTriplets, as_heads, bradley_terry_many, head_wins, strength_ranks
from clpips.defaults import DEFAULTS
from clpips.stats import metric_statistics
from clpips.stats.spearman_brown import spearman_brown

__all__ = ["split_half", "split_half_ranks"]


def split_half(table: pd.DataFrame, triplets: np.ndarray | HeadTriplets, seed: int = DEFAULTS.seed,
               alpha: float = ALPHA) -> dict[str, float]:
    """The data's split-half reliability: agreement of the rankings from two random halves of the triplets.

    Uses :func:`split_half_ranks` (``triplets``: zappos's array, or another
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


def split_half_ranks(table: pd.DataFrame, triplets: np.ndarray | HeadTriplets, seed: int = DEFAULTS.seed,
                     alpha: float = ALPHA) -> pd.DataFrame:
    """Each set of ``table`` ranked twice, from two random halves of its target's triplets (the reliability).

    A head's triplets within the table's images are shuffled with ``default_rng([seed, head])`` and cut
    into halves A (first ``n // 2``) and B. Returns ``set_id, target, candidate, rank_a, rank_b`` in the
    table's row order.
    """
    heads = as_heads(triplets)
    refs = sorted(set(table["target"]) | set(table["candidate"]))
    pool = np.array(sorted(heads.index(r) for r in refs), dtype=np.int64)
    in_pool = np.zeros(len(heads.refs), dtype=bool)
    in_pool[pool] = True
    ranked, wins = [], []
    groups = list(table.groupby("target", sort=True))
    for target_ref, _ in groups:   # each head's two halves, then every fit as one stack
        head = heads.index(target_ref)
        own = heads.of(head)                      # the head's triplets in their original order
        own = own[in_pool[own[:, 1]] & in_pool[own[:, 2]]]
        order = np.random.default_rng([seed, head]).permutation(len(own))
        wins += [head_wins(half, head, pool[pool != head], len(heads.refs))
                 for half in (own[order[: len(own) // 2]], own[order[len(own) // 2:]])]
    strengths = bradley_terry_many(np.stack(wins), alpha) if wins else np.zeros((0, len(pool) - 1))
    for g, (target_ref, part) in enumerate(groups):
        others = pool[pool != heads.index(target_ref)].tolist()
        fits = [dict(zip(others, strengths[2 * g + half])) for half in (0, 1)]
        for sid, rows in part.groupby("set_id", sort=True):
            cands = rows["candidate"].drop_duplicates()
            idx = [heads.index(c) for c in cands]
            ranked.append(pd.DataFrame({
                "set_id": sid, "target": target_ref, "candidate": cands.to_numpy(),
                "rank_a": strength_ranks([fits[0][i] for i in idx]),
                "rank_b": strength_ranks([fits[1][i] for i in idx])}))
    out = pd.concat(ranked, ignore_index=True)
    keys = table[["set_id", "candidate"]].drop_duplicates()
    return keys.merge(out, on=["set_id", "candidate"], how="left")[
        ["set_id", "target", "candidate", "rank_a", "rank_b"]].reset_index(drop=True)
