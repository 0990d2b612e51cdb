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
from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from clpips.book.plots.style import COLUMN_INCHES, SMALL
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


def plot_ranking_sets(views: Sequence[SetView], image_inches: Optional[float] = None, per_line: int = 5) -> Figure:
    """Targets and their candidates, each set one rater's order (rank 1 first).

    Parameters
    ----------
    views : sequence of SetView
        One set each.
    image_inches : float, optional
        Width of one image in the figure; by default the target and ``per_line`` candidates fill the
        text column (:data:`clpips.book.plots.style.COLUMN_INCHES`).
    per_line : int
        Candidates per line of images: a set of more wraps onto the next line, under its first
        candidates, so that images and their notes stay large enough to read.
    """
    sets = []
    for v in views:
        part = v.dataset.table
        part = part.loc[(part["set_id"] == v.set_id) & (part["rater"] == v.rater)].sort_values("rank")
        if part.empty:
            raise ValueError(f"no ranking of set {v.set_id!r} by rater {v.rater!r}")
        sets.append((v, part["target"].iloc[0], part["candidate"].tolist(), part["rank"].tolist()))
    ncols = 1 + min(per_line, max(len(s[2]) for s in sets))
    image_inches = image_inches or (COLUMN_INCHES - 1.1) / ncols
    lines = [(v, target if start == 0 else None, cands[start:start + ncols - 1], ranks[start:start + ncols - 1])
             for v, target, cands, ranks in sets for start in range(0, len(cands), ncols - 1)]
    fig, axes = plt.subplots(len(lines), ncols, figsize=(image_inches * ncols + 1.1, (image_inches + 0.75) * len(lines)),
                             squeeze=False, gridspec_kw={"wspace": 0.06, "hspace": 0.7})
    for axrow, (v, target, candidates, ranks) in zip(axes, lines):
        for ax in axrow:
            ax.axis("off")
        if target is not None:
            _draw_target(axrow[0], v, target)
        for ax, cand, rank in zip(axrow[1:], candidates, ranks):
            _draw_candidate(ax, v, cand, rank)
    return fig


def _draw_target(ax, view: SetView, target: str) -> None:
    ax.imshow(view.dataset.open_image(target))
    ax.set_title("target", fontweight="bold")
    ax.axis("on")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_linewidth(3)
    ax.set_ylabel(view.title, fontsize=SMALL, rotation=0, ha="right", va="center", labelpad=6)


def _draw_candidate(ax, view: SetView, cand: str, rank: float) -> None:
    ax.imshow(view.dataset.open_image(cand))
    ax.set_title(f"rank {rank:g}", fontsize=SMALL)
    if view.notes.get(cand):
        ax.text(0.5, -0.05, view.notes[cand], transform=ax.transAxes, ha="center", va="top", fontsize=SMALL,
                linespacing=0.95)
    if view.highlight.get(cand):
        ax.axis("on")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_edgecolor("tab:orange")
            spine.set_linewidth(3)


def plot_category_ranks(distribution: pd.DataFrame, flag: str, mean_ranks: pd.DataFrame, k: int) -> Figure:
    """Where candidates of the target's category land (top) and mean rank by category pair (bottom).

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
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(COLUMN_INCHES, 8.6), gridspec_kw={"height_ratios": [1, 1.3]})
    for value, colour, label in ((True, "tab:orange", "same category as the target"),
                                 (False, "tab:blue", "another category")):
        part = distribution.loc[distribution[flag] == value].sort_values("rank")
        top.plot(part["rank"], part["share"], "o-", color=colour, label=label)
    top.axhline(1 / k, color="0.4", ls="--", lw=1, label=f"chance, 1/{k}")
    top.set_xlabel("rank given (1 = most similar)")
    top.set_ylabel("share of such candidates at this rank")
    top.set_xticks(range(1, k + 1))
    top.legend(fontsize=SMALL)
    top.set_ylim(0, None)
    im = bottom.imshow(mean_ranks.to_numpy(), cmap="viridis_r", vmin=1, vmax=k)
    bottom.set_xticks(range(mean_ranks.shape[1]), mean_ranks.columns, rotation=35, ha="right", fontsize=SMALL)
    bottom.set_yticks(range(mean_ranks.shape[0]), mean_ranks.index, fontsize=SMALL)
    bottom.set_xlabel("candidate category")
    bottom.set_ylabel("target category")
    for (i, j), value in np.ndenumerate(mean_ranks.to_numpy()):
        if np.isfinite(value):
            bottom.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=SMALL,
                       color="white" if value < (1 + k) / 2 else "black")
    fig.colorbar(im, ax=bottom, label="mean rank", shrink=0.85)
    fig.tight_layout()
    return fig


def plot_agreement(agreement: pd.DataFrame, bounds: pd.DataFrame) -> Figure:
    """Top: mean pairwise Spearman between raters, per set. Bottom: each rater's noise-ceiling bounds.

    Parameters
    ----------
    agreement : pandas.DataFrame
        :func:`clpips.book.summaries.rater_agreement` (``mean_rho`` per set).
    bounds : pandas.DataFrame
        :func:`noise_ceiling_bounds`.
    """
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(COLUMN_INCHES, 7.8), gridspec_kw={"height_ratios": [1, 1.3]})
    top.hist(agreement["mean_rho"].dropna(), bins=np.linspace(-0.2, 1, 25), color="tab:blue", alpha=0.8)
    mean = agreement["mean_rho"].mean()
    top.axvline(mean, color="black", lw=1.2, label=f"mean over sets, {mean:.2f}")
    top.set_xlabel(r"mean pairwise Spearman $\rho$ between raters of a set")
    top.set_ylabel("sets")
    top.legend(fontsize=SMALL)
    per_rater = bounds.groupby("rater")[["lower", "upper"]].mean().sort_values("lower")
    y = np.arange(len(per_rater))
    bottom.hlines(y, per_rater["lower"], per_rater["upper"], color="0.6", lw=2)
    bottom.plot(per_rater["lower"], y, "o", color="tab:blue", label="lower bound: others' mean rank")
    bottom.plot(per_rater["upper"], y, "o", color="tab:red", label="upper bound: all raters' mean rank")
    for value, colour in ((bounds["lower"].mean(), "tab:blue"), (bounds["upper"].mean(), "tab:red")):
        bottom.axvline(value, color=colour, ls="--", lw=1)
    bottom.set_yticks(y, per_rater.index, fontsize=SMALL)
    bottom.set_xlabel(r"Spearman $\rho$ with the group's ranking (mean over the rater's sets)")
    bottom.legend(fontsize=SMALL, loc="lower right")
    fig.tight_layout()
    return fig


def plot_truth_agreement(table: pd.DataFrame, matches: pd.DataFrame, agreement: pd.DataFrame) -> Figure:
    """Top: attributes a candidate shares with the target, by rank. Bottom: per-set agreement with each weighting.

    Parameters
    ----------
    table : pandas.DataFrame
        Rankings of a simulated study.
    matches : pandas.DataFrame
        :func:`attribute_matches` of ``table``.
    agreement : pandas.DataFrame
        :func:`truth_agreement`.
    """
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(COLUMN_INCHES, 6.8))
    by_rank = matches.assign(rank=table["rank"].to_numpy()).groupby("rank")["n_match"]
    stats = by_rank.agg(["mean", lambda s: s.quantile(0.25), lambda s: s.quantile(0.75)])
    stats.columns = ["mean", "q25", "q75"]
    top.fill_between(stats.index, stats["q25"], stats["q75"], color="tab:green", alpha=0.2,
                      label="middle half of candidates")
    top.plot(stats.index, stats["mean"], "o-", color="tab:green", label="mean")
    n_attr = matches.shape[1] - 1
    top.set_ylim(0, n_attr)
    top.set_xticks(stats.index)
    top.set_xlabel("rank given (1 = most similar)")
    top.set_ylabel(f"attributes shared with the target (of {n_attr})")
    top.legend(fontsize=SMALL)
    data = [agreement[name].dropna().to_numpy() for name in WEIGHTINGS]
    parts = bottom.boxplot(data, orientation="horizontal", widths=0.6, patch_artist=True, showmeans=True,
                          meanprops={"marker": "D", "markerfacecolor": "black", "markeredgecolor": "black",
                                     "markersize": 4})
    for box in parts["boxes"]:
        box.set_facecolor("#cfe2f3")
    bottom.set_yticks(range(1, len(WEIGHTINGS) + 1), WEIGHTINGS)
    bottom.invert_yaxis()
    bottom.set_xlabel(r"Spearman $\rho$ with the participant's ranks, per set")
    bottom.axvline(0, color="0.6", lw=0.8)
    fig.tight_layout()
    return fig
