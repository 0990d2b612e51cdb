"""Per ranking and per ranking set: where a metric agrees with people, and where it gains on another.

The evaluation chapter's look behind the pooled numbers of :func:`clpips.evaluate.alignment`:

* :func:`per_ranking_spearman`: Spearman's rho of each metric with each human ranking, as a
  table (:func:`clpips.evaluate.per_ranking_spearman` is its kernel);
* :func:`set_gains`: per ranking set, the mean per-ranking rho of two metrics and its change;
* :func:`example_sets`: the documented rule that picks the sets the chapter shows;
* :func:`set_orders`: one set's candidates with the human mean rank and each metric's rank.

Conventions: lower distance = more similar, rank 1 = most similar.
"""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from clpips.evaluate import per_ranking_spearman as kernel

__all__ = ["per_ranking_spearman", "set_gains", "example_sets", "set_orders"]

RANKING = "ranking"


def _ranking_ids(scored: pd.DataFrame) -> pd.Series:
    if RANKING in scored.columns:
        return scored[RANKING]
    return scored["set_id"].astype(str) + "|" + scored["rater"].astype(str)


def per_ranking_spearman(scored: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Spearman's rho between each human ranking and each metric's distances.

    Parameters
    ----------
    scored : pandas.DataFrame
        Ranking rows with ``set_id, target, rater, rank`` and one distance column per metric
        (:func:`clpips.evaluate.score_rankings`).
    columns : sequence of str
        Metric columns.

    Returns
    -------
    pandas.DataFrame
        One row per ranking (``set_id|rater``): ``ranking, set_id, target, rater, k`` and
        one rho column per metric (average ranks for ties; NaN when a side is constant).
        The mean of a column is the ``spearman_per_ranking`` of
        :func:`clpips.evaluate.alignment`.
    """
    frame = scored.assign(**{RANKING: _ranking_ids(scored)})
    out = frame.groupby(RANKING, sort=False).agg(set_id=("set_id", "first"), target=("target", "first"),
                                                 rater=("rater", "first"), k=("rank", "size")).reset_index()
    rho = kernel(frame[RANKING].to_numpy(), frame["rank"].to_numpy(float), frame[list(columns)].to_numpy(float))
    for i, col in enumerate(columns):
        out[col] = rho[i].reindex(out[RANKING]).to_numpy()
    return out


def set_gains(per_ranking: pd.DataFrame, a: str = "lpips", b: str = "clpips") -> pd.DataFrame:
    """Per ranking set: mean per-ranking rho of metrics ``a`` and ``b`` and ``gain = b − a``.

    Returns
    -------
    pandas.DataFrame
        ``set_id, target, n_rankings, rho_<a>, rho_<b>, gain``, sorted by ``gain``
        (largest first), ties by ``set_id``.
    """
    out = per_ranking.groupby("set_id", sort=True).agg(target=("target", "first"), n_rankings=(a, "size"),
                                                       **{f"rho_{a}": (a, "mean"), f"rho_{b}": (b, "mean")})
    out["gain"] = out[f"rho_{b}"] - out[f"rho_{a}"]
    out = out.reset_index()
    return out.sort_values(["gain", "set_id"], ascending=[False, True], kind="stable").reset_index(drop=True)


def example_sets(gains: pd.DataFrame) -> dict[str, str]:
    """The sets the chapter shows, by a fixed rule.

    ``"gain"``: the set where ``b`` gains most over ``a`` in mean per-ranking rho;
    ``"loss"``: the set where it loses most (the smallest gain). Ties go to the
    first ``set_id`` in sort order. ``gains`` is :func:`set_gains`.
    """
    if gains.empty:
        raise ValueError("no ranking sets")
    gains = gains.dropna(subset=["gain"])
    best = gains.sort_values(["gain", "set_id"], ascending=[False, True], kind="stable").iloc[0]
    worst = gains.sort_values(["gain", "set_id"], ascending=[True, True], kind="stable").iloc[0]
    return {"gain": str(best["set_id"]), "loss": str(worst["set_id"])}


def set_orders(scored: pd.DataFrame, set_id: str, metrics: Sequence[str]) -> pd.DataFrame:
    """One set's candidates: mean human rank over its raters and each metric's distance and rank.

    Returns
    -------
    pandas.DataFrame
        Index ``candidate``; ``human_mean_rank``, ``n_raters``, ``<metric>`` (distance) and
        ``<metric>_rank`` (1 = smallest distance), sorted by ``human_mean_rank``.
        A metric scores a (target, candidate) pair once, so its distances are the
        same for every rater of the set.
    """
    part = scored[scored["set_id"] == set_id]
    if part.empty:
        raise ValueError(f"no rows for set {set_id!r}")
    out = part.groupby("candidate").agg(human_mean_rank=("rank", "mean"), n_raters=("rank", "size"),
                                        **{m: (m, "first") for m in metrics})
    for m in metrics:
        out[f"{m}_rank"] = out[m].rank(method="first").astype(int)
    return out.sort_values(["human_mean_rank", metrics[0]] if metrics else ["human_mean_rank"])
