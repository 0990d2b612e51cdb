"""alien_eggs against its known parameter (:mod:`clpips.datasets.alien_eggs`).

The 30 shapes differ in *smoothness* only, so ``|smoothness(candidate) - smoothness(target)|``
orders any set's candidates (:func:`truth_ranks`, ties averaged), and the project's one scorer
(:func:`clpips.evaluate.rank_scores`) says how closely the crowd and any metric follow it
(:func:`against_truth`).

The queries were not all drawn at random: five samplers chose them (:data:`SAMPLERS`), some
actively, so the answers over-represent hard comparisons: of ``UncertaintySampling``'s answers 66%
pick the candidate nearer in smoothness, of ``RandomSampling``'s 83% (:func:`truth_agreement`). The
queries, answered or not, are :func:`queries`.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from clpips.datasets.alien_eggs import ANSWERS_FILE, RATER, SAMPLERS, fetch_files, index, read_queries
from clpips.evaluate import RANKING, rank_scores, ranking_ids, within_ranking_ranks

__all__ = ["queries", "smoothness", "sampler_counts", "truth_agreement", "smoothness_gap", "truth_ranks", "truth_table",
           "against_truth"]


def queries(base_url: str | None = None, mirror: str | os.PathLike | None = None) -> pd.DataFrame:
    """:func:`clpips.datasets.alien_eggs.read_queries` of the verified export, fetched as the dataset's files."""
    return read_queries(fetch_files(base_url=base_url, mirror=mirror)[ANSWERS_FILE])


def smoothness() -> pd.Series:
    """The known parameter of each image, indexed by image reference."""
    table = index()
    return pd.Series(table["smoothness"].to_numpy(), index=pd.Index(table["image"], name="image"),
                     name="smoothness")


def _sampler_order(names) -> list[str]:
    """``names`` in :data:`SAMPLERS` order, any others after them, sorted."""
    return [s for s in SAMPLERS if s in set(names)] + sorted(set(names) - set(SAMPLERS))


def sampler_counts(queries: pd.DataFrame) -> pd.DataFrame:
    """Per sampler (:data:`SAMPLERS` order): the queries it chose that were ``answered`` and ``skipped``."""
    answered = queries["winner"] >= 0
    counts = pd.DataFrame({"answered": answered, "skipped": ~answered}).groupby(queries["sampler"]).sum()
    return counts.loc[_sampler_order(counts.index)].astype(np.int64).rename_axis("sampler")


def truth_agreement(queries: pd.DataFrame) -> pd.Series:
    """Per sampler (:data:`SAMPLERS` order): the share of its answers whose winner is strictly nearer the head
    in smoothness (an answer to two equally near candidates counts as not, as in salmon's
    ``Noise-model.ipynb``, which reports 0.8348 for ``RandomSampling``)."""
    done = queries[queries["winner"] >= 0]
    known = index()["smoothness"].to_numpy()
    head, left, right, winner = (known[done[c].to_numpy()] for c in ("head", "left", "right", "winner"))
    loser = np.where(winner == left, right, left)
    nearer = pd.Series(np.abs(winner - head) < np.abs(loser - head), index=done.index)
    shares = nearer.groupby(done["sampler"]).mean()
    return shares.loc[_sampler_order(shares.index)].rename_axis("sampler").rename("nearer_won")


def smoothness_gap(table: pd.DataFrame) -> np.ndarray:
    """``|smoothness(candidate) - smoothness(target)|`` of each row: the ground truth as a distance."""
    known = smoothness()
    unknown = sorted((set(table["target"]) | set(table["candidate"])) - set(known.index))
    if unknown:
        raise ValueError(f"alien_eggs: {unknown[0]!r} is not one of its images ({known.index[0]} ...)")
    return np.abs(known.reindex(table["candidate"]).to_numpy(float) - known.reindex(table["target"]).to_numpy(float))


def truth_ranks(table: pd.DataFrame) -> pd.Series:
    """Each ranking's candidates ranked by :func:`smoothness_gap` (1 = nearest in smoothness, ties
    averaged), aligned with ``table``: the ranks a judge who sees only smoothness would give."""
    gaps = pd.DataFrame({RANKING: ranking_ids(table).to_numpy(), "gap": smoothness_gap(table)}, index=table.index)
    return within_ranking_ranks(gaps, "gap").rename("rank")


def truth_table(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its ranks replaced by :func:`truth_ranks` (same rows, sets and raters)."""
    return table.assign(rank=truth_ranks(table).to_numpy(float))


def against_truth(table: pd.DataFrame, dist: np.ndarray | None = None, names: Sequence[str] = ()) -> pd.DataFrame:
    """How closely the table's (crowd's) ranks and each metric follow the ground truth.

    The project's one scorer (:func:`clpips.evaluate.rank_scores`) on :func:`truth_table` as the
    reference: row ``crowd`` scores the table's own ranks, one row per metric its distances
    (``dist``: rows of ``table`` x ``names``, lower = more similar).
    """
    dist = np.zeros((len(table), 0)) if dist is None else np.asarray(dist, dtype=float).reshape(len(table), -1)
    if dist.shape[1] != len(names):
        raise ValueError(f"dist has {dist.shape[1]} columns for {len(names)} names")
    scored = np.column_stack([table["rank"].to_numpy(float), dist])
    return rank_scores(truth_table(table), scored, [RATER, *names], per_ranking=True, kendall=True)
