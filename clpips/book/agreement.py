"""How far people agree with each other: split-half reliability, one estimator for every dataset (chapters 01, 08).

"How far do people agree?" is asked as "how reproducible is their ranking of each set?": the judgements
are cut into two random halves, each half ranks every set, the two rankings are scored against each
other with the package's statistics, and the half-data correlation is stepped up to the full data
(Spearman–Brown). Only what is halved depends on the data (:func:`reliability`):

* a crowd dataset (:mod:`clpips.datasets.zappos`, :mod:`clpips.datasets.alien_eggs`) has no individual
  raters: the halves are two random halves of each target's triplets (:func:`split_half_ranks`,
  :func:`split_half`);
* a dataset with several raters per set (mur92): two random halves of the raters, each ranking a set
  by its raters' mean rank (:func:`split_half_raters`);
* one ranking per set (the simulated study, most CSV studies): nothing to halve, no estimate.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from clpips.datasets import alien_eggs, zappos
from clpips.datasets.zappos import ALPHA, HeadTriplets, as_heads, bradley_terry_many, head_wins, strength_ranks
from clpips.defaults import DEFAULTS
from clpips.stats import metric_statistics
from clpips.stats.spearman_brown import spearman_brown

__all__ = ["reliability", "split_half", "split_half_raters", "split_half_ranks"]


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
    return _halves_scored(ranks, seed)


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


def _halves_scored(ranks: pd.DataFrame, seed: int) -> dict[str, float]:
    """Two halves' ranks of every set (``rank_a``, ``rank_b``) scored against each other, stepped up."""
    stats = metric_statistics(ranks, "set_id", "rank_a", "rank_b")
    return {"rho_half": stats["rho"], "rho_spearman_brown": spearman_brown(stats["rho"], 2),
            "icc_A_k": stats["icc"], "n_sets": int(ranks["set_id"].nunique()), "n_rows": int(len(ranks)),
            "seed": int(seed)}


def split_half_raters(table: pd.DataFrame, seed: int = DEFAULTS.seed) -> dict[str, float]:
    """:func:`split_half` for a table with several raters per set: the raters cut into two random halves
    (``default_rng(seed)``, the first ``n // 2`` of a permutation of the sorted rater names are half A), each
    half ranking every set by its raters' mean rank (ties averaged); sets that one half did not rank are
    left out. The same statistics and step-up as :func:`split_half`."""
    raters = np.array(sorted(table["rater"].astype(str).unique()))
    if len(raters) < 2:
        raise ValueError(f"split_half_raters needs two raters or more, the table has {len(raters)}")
    order = np.random.default_rng(seed).permutation(len(raters))
    half = np.where(table["rater"].astype(str).isin(set(raters[order[: len(raters) // 2]])), "rank_a", "rank_b")
    means = (table.assign(half=half).groupby(["set_id", "target", "candidate", "half"])["rank"].mean()
             .unstack("half").dropna().reset_index())
    ranks = means.assign(**{c: means.groupby("set_id")[c].rank(method="average") for c in ("rank_a", "rank_b")})
    return _halves_scored(ranks, seed)


def reliability(data, seed: int = DEFAULTS.seed) -> dict[str, Any]:
    """The split-half reliability of a dataset's rankings (the module docstring), and ``halves``: what was
    halved; ``rho_spearman_brown`` NaN where there is one ranking per set and no crowd to halve."""
    if data.name == "zappos":
        return {**split_half(data.table, zappos.triplets(), seed=seed), "halves": "the crowd's triplets"}
    if data.name == "alien_eggs":
        heads = alien_eggs.head_triplets(alien_eggs.triplets())
        return {**split_half(data.table, heads, seed=seed), "halves": "the crowd's triplets"}
    if int(data.table.groupby("set_id")["rater"].nunique().min()) >= 2:
        return {**split_half_raters(data.table, seed=seed), "halves": "the raters"}
    return {"rho_half": float("nan"), "rho_spearman_brown": float("nan"), "icc_A_k": float("nan"),
            "n_sets": int(data.table["set_id"].nunique()), "n_rows": int(len(data.table)), "seed": int(seed),
            "halves": "none: one ranking per set"}
