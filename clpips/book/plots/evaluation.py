"""Figures of the evaluation (04) and bootstrap (05) chapters.

They draw the tables of :mod:`clpips.evaluate` and :mod:`clpips.book.set_scores` (per ranking and
per set); the report tables are :mod:`clpips.book.report`'s.
Each returns a :class:`matplotlib.figure.Figure`:

* :func:`plot_alignment`: ICC(A,k) with its CI and mean per-ranking rho for every metric,
  against the lower bound of the noise ceiling;
* :func:`plot_orders`: a target and its candidates in human, LPIPS and CLPIPS order (the paper's Figure 3);
* :func:`plot_rho_scatter`: per-ranking rho of one metric against another;
* :func:`plot_bootstrap`: bootstrap distributions of ΔICC(A,k) and Δrho, observed Δ and CI marked.

Conventions: lower distance = more similar, rank 1 = most similar, a positive
correlation means the metric agrees with the person.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from clpips.book.baselines import label as metric_label
from clpips.book.plots.style import COLUMN_INCHES, SMALL
from clpips.book.report import format_p
from clpips.book.set_scores import set_orders

__all__ = ["plot_alignment", "plot_orders", "plot_rho_scatter", "plot_bootstrap"]

# =========================================================================== figures
def plot_alignment(alignment: pd.DataFrame, ceiling: Optional[float] = None,
                   highlight: Sequence[str] = ("lpips", "clpips")) -> Figure:
    """ICC(A,k) with its 95% CI (left) and mean per-ranking rho (right) for every metric.

    Parameters
    ----------
    alignment : pandas.DataFrame
        :func:`clpips.evaluate.alignment_table`.
    ceiling : float, optional
        Lower bound of the noise ceiling for the per-ranking rho
        (:func:`clpips.book.summaries.noise_ceiling`, row ``"all"``): how well the other
        raters' mean rank predicts each rater (the ceiling itself lies above it).
    highlight : sequence of str
        Metrics drawn in colour; the others in grey.
    """
    order = alignment.sort_values("icc_A_k").index.tolist()
    y = np.arange(len(order))
    colours = ["tab:blue" if m == "clpips" else "tab:orange" if m in highlight else "tab:grey" for m in order]
    # the whole column: the metrics' names take ~2.9 in at 9 pt, and narrower the two panels collapse
    fig, axes = plt.subplots(1, 2, figsize=(COLUMN_INCHES, 0.45 * len(order) + 1.3), sharey=True,
                             constrained_layout=True)
    icc = alignment.loc[order, "icc_A_k"].astype(float).to_numpy()
    lo = alignment.loc[order, "icc_A_k_ci_low"].astype(float).to_numpy()
    hi = alignment.loc[order, "icc_A_k_ci_high"].astype(float).to_numpy()
    axes[0].barh(y, icc, color=colours, alpha=0.8)
    axes[0].errorbar(icc, y, xerr=[icc - lo, hi - icc], fmt="none", ecolor="black", capsize=3, lw=1)
    axes[0].set_xlabel("ICC(A,k), 95% CI")
    rho = alignment.loc[order, "spearman_per_ranking"].astype(float).to_numpy()
    axes[1].barh(y, rho, color=colours, alpha=0.8)
    if ceiling is not None and np.isfinite(ceiling):
        axes[1].axvline(ceiling, color="black", ls="--", lw=1.2, label="noise ceiling\n(lower bound)")
        axes[1].legend(loc="best", fontsize=SMALL)
    axes[1].set_xlabel("mean per-ranking ρ")
    axes[0].set_yticks(y, [metric_label(m) for m in order], fontsize=SMALL)
    for ax in axes:
        ax.axvline(0, color="black", lw=0.8)
        ax.grid(axis="x", alpha=0.3)
    return fig


def plot_orders(dataset, scored: pd.DataFrame, set_id: str, metrics: Sequence[str] = ("lpips", "clpips"),
                rho: Optional[Mapping[str, float]] = None, image_inches: Optional[float] = None,
                title: str = "") -> Figure:
    """A target and its candidates in the human order and in each metric's order (the paper's Figure 3).

    Row 1 orders the candidates by their mean human rank over the set's raters
    (one rater: that person's order); each further row by a metric's distance
    (smallest first). Under every candidate is its mean human rank, so a metric
    that agrees with people shows increasing numbers from left to right.

    Parameters
    ----------
    dataset
        Gives the images (``open_image(ref)``).
    scored : pandas.DataFrame
        Ranking rows with the metric distance columns.
    set_id : str
        The set to show (e.g. from :func:`example_sets`).
    metrics : sequence of str
        Metric columns, one row each.
    rho : mapping, optional
        Metric -> a number to print in its row title (e.g. its mean per-ranking rho on this set).
    """
    orders = set_orders(scored, set_id, list(metrics))
    target = scored.loc[scored["set_id"] == set_id, "target"].iloc[0]
    n_raters = int(orders["n_raters"].iloc[0])
    rows = [(f"people\n(mean of {n_raters})" if n_raters > 1 else "person", orders.index.tolist())]
    for m in metrics:
        title_m = metric_label(m).split(" (")[0]
        if rho is not None and m in rho:
            title_m += f"\nρ = {rho[m]:.2f}"
        rows.append((title_m, orders.sort_values(f"{m}_rank").index.tolist()))
    k = len(orders)
    if image_inches is None:            # the row of images and its label fill the text column
        image_inches = (COLUMN_INCHES - 1.2) / (k + 1)
    fig, axes = plt.subplots(len(rows), k + 1, figsize=(image_inches * (k + 1) + 0.9, (image_inches + 0.45) * len(rows)),
                             squeeze=False, gridspec_kw={"wspace": 0.05, "hspace": 0.45})
    target_img = dataset.open_image(target)
    cache = {}
    for axrow, (name, cands) in zip(axes, rows):
        for ax in axrow:
            ax.set_xticks([])
            ax.set_yticks([])
        axrow[0].imshow(target_img)
        for spine in axrow[0].spines.values():
            spine.set_linewidth(2.5)
        axrow[0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=SMALL, labelpad=4)
        for pos, (ax, cand) in enumerate(zip(axrow[1:], cands), start=1):
            if cand not in cache:
                cache[cand] = dataset.open_image(cand)
            ax.imshow(cache[cand])
            for spine in ax.spines.values():
                spine.set_visible(False)
            ax.set_title(f"{pos}", fontsize=SMALL, pad=2)
            ax.text(0.5, -0.04, f"{orders.at[cand, 'human_mean_rank']:.1f}", transform=ax.transAxes,
                    ha="center", va="top", fontsize=SMALL)
    axes[0][0].set_title("target", fontsize=SMALL, fontweight="bold", pad=2)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_rho_scatter(per_ranking: pd.DataFrame, a: str = "lpips", b: str = "clpips",
                     highlight: Sequence[str] = (), seed: int = 0) -> Figure:
    """Per-ranking Spearman rho of metric ``b`` (y) against metric ``a`` (x).

    Rho of k candidates takes few values, so points are jittered by up to
    ±0.01 (seeded) and drawn translucent; above the diagonal ``b`` agrees
    better with that person. Rankings of the sets in ``highlight`` are circled.
    """
    rng = np.random.default_rng(seed)
    x = per_ranking[a].to_numpy(float)
    y = per_ranking[b].to_numpy(float)
    jx, jy = rng.uniform(-0.01, 0.01, len(x)), rng.uniform(-0.01, 0.01, len(y))
    fig, ax = plt.subplots(figsize=(4.6, 4.4), constrained_layout=True)
    ax.scatter(x + jx, y + jy, s=10, alpha=0.35, color="tab:blue", edgecolors="none")
    for set_id, colour in zip(highlight, ("tab:green", "tab:red", "tab:purple")):
        mask = (per_ranking["set_id"] == set_id).to_numpy()
        ax.scatter(x[mask] + jx[mask], y[mask] + jy[mask], s=28, facecolors="none", edgecolors=colour,
                   label=f"set {set_id}")
    ax.plot([-1, 1], [-1, 1], color="grey", lw=0.8)
    above, below = int(np.sum(y > x)), int(np.sum(y < x))
    short_a, short_b = metric_label(a).split(" (")[0], metric_label(b).split(" (")[0]
    ax.text(-0.95, 0.92, f"{short_b} better: {above}", fontsize=SMALL)
    ax.text(0.95, -0.95, f"{short_a} better: {below}\nequal: {len(x) - above - below}", fontsize=SMALL, ha="right")
    ax.set_xlim(-1.02, 1.02)
    ax.set_ylim(-1.02, 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel(f"ρ per ranking, {metric_label(a)}", fontsize=SMALL)
    ax.set_ylabel(f"ρ per ranking, {metric_label(b)}", fontsize=SMALL)
    ax.axhline(0, color="black", lw=0.5, alpha=0.5)
    ax.axvline(0, color="black", lw=0.5, alpha=0.5)
    if highlight:
        ax.legend(fontsize=SMALL, loc="lower left", bbox_to_anchor=(0.0, 0.1))
    return fig


def plot_bootstrap(results: Mapping[str, object], bca: Optional[Mapping[str, object]] = None,
                   paper_ci: Optional[tuple[float, float]] = None, bins: int = 60) -> Figure:
    """Bootstrap distributions of ΔICC(A,k) (left) and Δrho (right), one row per result.

    The observed Δ is a solid line, the percentile 95% CI a shaded band (BCa, when
    given, dashed lines), 0 a thin black line; ``paper_ci`` (the paper's ΔICC
    interval) is drawn as a bar above the ΔICC histograms.

    Parameters
    ----------
    results : mapping
        Label -> :class:`clpips.stats.PairedBootstrapResult` (percentile intervals).
    bca : mapping, optional
        The same labels -> results with BCa intervals.
    """
    fig, axes = plt.subplots(len(results), 2, figsize=(COLUMN_INCHES, 2.6 * len(results) + 0.3), squeeze=False,
                             constrained_layout=True)
    span = [np.inf, -np.inf]
    for axrow, (name, res) in zip(axes, results.items()):
        for ax, stat, column, title in ((axrow[0], "ΔICC(A,k)", "delta_icc", "ΔICC(A,k)"),
                                        (axrow[1], "Δrho", "delta_rho", "Δρ (pooled Spearman)")):
            values = res.distribution[column].to_numpy(float)
            values = values[np.isfinite(values)]
            summary = res.summary().loc[stat]
            ax.hist(values, bins=bins, color="tab:blue", alpha=0.55)
            ax.axvspan(summary["ci_low"], summary["ci_high"], color="tab:blue", alpha=0.12,
                       label=f"95% CI [{summary['ci_low']:+.3f}, {summary['ci_high']:+.3f}]")
            ax.axvline(summary["delta"], color="tab:blue", lw=2, label=f"observed {summary['delta']:+.3f}")
            if bca and name in bca:
                lo, hi = bca[name].summary().loc[stat, ["ci_low", "ci_high"]]
                ax.axvline(lo, color="tab:purple", ls="--", lw=1, label=f"BCa [{lo:+.3f}, {hi:+.3f}]")
                ax.axvline(hi, color="tab:purple", ls="--", lw=1)
            ax.axvline(0, color="black", lw=0.8)
            if paper_ci is not None and column == "delta_icc":
                top = ax.get_ylim()[1]
                ax.plot(paper_ci, [top * 0.92] * 2, color="tab:red", lw=4, solid_capstyle="butt",
                        label=f"paper's 95% CI [{paper_ci[0]:.3f}, {paper_ci[1]:.3f}]")
                span = [min(span[0], paper_ci[0]), max(span[1], paper_ci[1])]
            ax.set_title(f"{title}: resampling {name} ({format_p(summary['p_value'], style='prose')})", fontsize=9)
            ax.set_yticks([])
            ax.legend(fontsize=SMALL, loc="upper left")
            span = [min(span[0], values.min()), max(span[1], values.max())]
    pad = 0.05 * (span[1] - span[0])
    for ax in axes.ravel():
        ax.set_xlim(span[0] - pad, span[1] + pad)
    return fig
