"""Figures of the dataset chapter (01).

They draw the tables of :mod:`clpips.book.summaries` (agreement, noise ceiling, rank
distributions), :mod:`clpips.book.labels` (same-category candidates) and
:mod:`clpips.book.truth` (a simulated study against its ground truth).
Each returns a :class:`matplotlib.figure.Figure`:

* :func:`plot_ranking_sets`: targets and candidates in a rater's order;
* :func:`plot_category_ranks`: where same-category candidates land (mur92);
* :func:`plot_agreement`: agreement between raters and the noise-ceiling bounds (lower and upper);
* :func:`plot_truth_agreement`: attribute matches by rank and agreement with the truth (simulated).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from clpips.book.truth import WEIGHTINGS

__all__ = ["SetView", "plot_ranking_sets", "plot_category_ranks", "plot_agreement", "plot_truth_agreement"]


# =========================================================================== figures
@dataclass
class SetView:
    """One row of :func:`plot_ranking_sets`: a ranking set as one rater ordered it.

    Attributes
    ----------
    dataset : clpips.datasets.RankingDataset
        Where the images are (``open_image``) and the rankings (``table``).
    set_id, rater : str
        Which set, ranked by whom.
    title : str
        Row title (left of the target).
    notes : mapping
        Candidate -> short text under its image (e.g. its category).
    highlight : mapping
        Candidate -> True to frame its image (e.g. same category as the target).
    """

    dataset: object
    set_id: str
    rater: str
    title: str = ""
    notes: Mapping[str, str] = field(default_factory=dict)
    highlight: Mapping[str, bool] = field(default_factory=dict)


def plot_ranking_sets(views: Sequence[SetView], image_inches: float = 1.05) -> Figure:
    """Targets and their candidates, each row one rater's order (rank 1 first).

    Parameters
    ----------
    views : sequence of SetView
        One row each.
    image_inches : float
        Width of one image in the figure.
    """
    rows = []
    for v in views:
        part = v.dataset.table
        part = part.loc[(part["set_id"] == v.set_id) & (part["rater"] == v.rater)].sort_values("rank")
        if part.empty:
            raise ValueError(f"no ranking of set {v.set_id!r} by rater {v.rater!r}")
        rows.append((v, part["target"].iloc[0], part["candidate"].tolist(), part["rank"].tolist()))
    ncols = 1 + max(len(r[2]) for r in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(image_inches * ncols + 0.4, (image_inches + 0.75) * len(rows)),
                             squeeze=False, gridspec_kw={"wspace": 0.06, "hspace": 0.7})
    for axrow, (v, target, candidates, ranks) in zip(axes, rows):
        for ax in axrow:
            ax.axis("off")
        ax = axrow[0]
        ax.imshow(v.dataset.open_image(target))
        ax.set_title("target", fontsize=9, fontweight="bold")
        ax.axis("on")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_linewidth(3)
        ax.set_ylabel(v.title, fontsize=9, rotation=0, ha="right", va="center", labelpad=6)
        for ax, cand, rank in zip(axrow[1:], candidates, ranks):
            ax.imshow(v.dataset.open_image(cand))
            ax.set_title(f"rank {rank:g}", fontsize=8.5)
            if v.notes.get(cand):
                ax.text(0.5, -0.05, v.notes[cand], transform=ax.transAxes, ha="center", va="top", fontsize=7,
                        linespacing=0.95)
            if v.highlight.get(cand):
                ax.axis("on")
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_edgecolor("tab:orange")
                    spine.set_linewidth(3)
    return fig


def plot_category_ranks(distribution: pd.DataFrame, flag: str, mean_ranks: pd.DataFrame, k: int) -> Figure:
    """Where candidates of the target's category land (left) and mean rank by category pair (right).

    Parameters
    ----------
    distribution : pandas.DataFrame
        :func:`clpips.book.summaries.rank_distribution` by ``flag``
        (columns ``flag, rank, count, share``).
    flag : str
        The boolean label column of ``distribution`` (e.g. ``"same_category"``).
    mean_ranks : pandas.DataFrame
        :func:`category_mean_rank`.
    k : int
        Candidates per set (chance share ``1/k`` at each rank).
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.5, 4.3), gridspec_kw={"width_ratios": [1, 1.15]})
    for value, colour, label in ((True, "tab:orange", "same category as the target"),
                                 (False, "tab:blue", "another category")):
        part = distribution.loc[distribution[flag] == value].sort_values("rank")
        left.plot(part["rank"], part["share"], "o-", color=colour, label=label)
    left.axhline(1 / k, color="0.4", ls="--", lw=1, label=f"chance, 1/{k}")
    left.set_xlabel("rank given (1 = most similar)")
    left.set_ylabel("share of such candidates at this rank")
    left.set_xticks(range(1, k + 1))
    left.legend(fontsize=8)
    left.set_ylim(0, None)
    im = right.imshow(mean_ranks.to_numpy(), cmap="viridis_r", vmin=1, vmax=k)
    right.set_xticks(range(mean_ranks.shape[1]), mean_ranks.columns, rotation=35, ha="right", fontsize=8)
    right.set_yticks(range(mean_ranks.shape[0]), mean_ranks.index, fontsize=8)
    right.set_xlabel("candidate category")
    right.set_ylabel("target category")
    for (i, j), value in np.ndenumerate(mean_ranks.to_numpy()):
        if np.isfinite(value):
            right.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=7.5,
                       color="white" if value < (1 + k) / 2 else "black")
    fig.colorbar(im, ax=right, label="mean rank", shrink=0.85)
    fig.tight_layout()
    return fig


def plot_agreement(agreement: pd.DataFrame, bounds: pd.DataFrame) -> Figure:
    """Left: mean pairwise Spearman between raters, per set. Right: each rater's noise-ceiling bounds.

    Parameters
    ----------
    agreement : pandas.DataFrame
        :func:`clpips.book.summaries.rater_agreement` (``mean_rho`` per set).
    bounds : pandas.DataFrame
        :func:`noise_ceiling_bounds`.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1, 1.3]})
    left.hist(agreement["mean_rho"].dropna(), bins=np.linspace(-0.2, 1, 25), color="tab:blue", alpha=0.8)
    mean = agreement["mean_rho"].mean()
    left.axvline(mean, color="black", lw=1.2, label=f"mean over sets, {mean:.2f}")
    left.set_xlabel(r"mean pairwise Spearman $\rho$ between raters of a set")
    left.set_ylabel("sets")
    left.legend(fontsize=8)
    per_rater = bounds.groupby("rater")[["lower", "upper"]].mean().sort_values("lower")
    y = np.arange(len(per_rater))
    right.hlines(y, per_rater["lower"], per_rater["upper"], color="0.6", lw=2)
    right.plot(per_rater["lower"], y, "o", color="tab:blue", label="lower bound: others' mean rank")
    right.plot(per_rater["upper"], y, "o", color="tab:red", label="upper bound: all raters' mean rank")
    for value, colour in ((bounds["lower"].mean(), "tab:blue"), (bounds["upper"].mean(), "tab:red")):
        right.axvline(value, color=colour, ls="--", lw=1)
    right.set_yticks(y, per_rater.index, fontsize=7.5)
    right.set_xlabel(r"Spearman $\rho$ with the group's ranking (mean over the rater's sets)")
    right.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_truth_agreement(table: pd.DataFrame, matches: pd.DataFrame, agreement: pd.DataFrame) -> Figure:
    """Left: attributes a candidate shares with the target, by rank. Right: per-set agreement with each weighting.

    Parameters
    ----------
    table : pandas.DataFrame
        Rankings of a simulated study.
    matches : pandas.DataFrame
        :func:`attribute_matches` of ``table``.
    agreement : pandas.DataFrame
        :func:`truth_agreement`.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1, 1.2]})
    by_rank = matches.assign(rank=table["rank"].to_numpy()).groupby("rank")["n_match"]
    stats = by_rank.agg(["mean", lambda s: s.quantile(0.25), lambda s: s.quantile(0.75)])
    stats.columns = ["mean", "q25", "q75"]
    left.fill_between(stats.index, stats["q25"], stats["q75"], color="tab:green", alpha=0.2,
                      label="middle half of candidates")
    left.plot(stats.index, stats["mean"], "o-", color="tab:green", label="mean")
    n_attr = matches.shape[1] - 1
    left.set_ylim(0, n_attr)
    left.set_xticks(stats.index)
    left.set_xlabel("rank given (1 = most similar)")
    left.set_ylabel(f"attributes shared with the target (of {n_attr})")
    left.legend(fontsize=8)
    data = [agreement[name].dropna().to_numpy() for name in WEIGHTINGS]
    parts = right.boxplot(data, orientation="horizontal", widths=0.6, patch_artist=True, showmeans=True,
                          meanprops={"marker": "D", "markerfacecolor": "black", "markeredgecolor": "black",
                                     "markersize": 4})
    for box in parts["boxes"]:
        box.set_facecolor("#cfe2f3")
    right.set_yticks(range(1, len(WEIGHTINGS) + 1), WEIGHTINGS)
    right.invert_yaxis()
    right.set_xlabel(r"Spearman $\rho$ with the participant's ranks, per set")
    right.axvline(0, color="0.6", lw=0.8)
    fig.tight_layout()
    return fig
