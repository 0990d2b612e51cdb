"""Figures of the worked example (chapter 02): the rankings, and the ICC as a function of rho."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from clpips.book.plots.style import COLUMN_INCHES, SMALL
from clpips.book.worked_example import icc_ak_pole, icc_ck_from_rho, item_names
from clpips.stats import icc_ak_from_rho

__all__ = ["plot_rankings", "plot_icc_vs_rho"]

#: background colours of the Koo & Li bands, lowest first
BAND_COLOURS = ("#f4cccc", "#fce5cd", "#d9ead3", "#b6d7a8")


def plot_rankings(rankings: Mapping[str, Sequence[int]], ax: plt.Axes | None = None) -> Figure:
    """A bump chart: each item's rank (1 at the top) under each ranking, left to right.

    Parameters
    ----------
    rankings : mapping
        Name -> ranks of items A, B, ... (all the same length), e.g.
        ``{"reference": [1, 2, 3, 4], "R1": [1, 3, 4, 2]}``.
    ax : matplotlib Axes, optional
        Where to draw; a new figure by default.
    """
    names = list(rankings)
    ranks = np.array([np.asarray(rankings[name], dtype=int) for name in names])  # (rankings, items)
    n = ranks.shape[1]
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(names), 0.6 + 0.55 * n))
    else:
        fig = ax.figure
    colours = plt.get_cmap("tab10")
    x = np.arange(len(names))
    for i, item in enumerate(item_names(n)):
        ax.plot(x, ranks[:, i], "-", color=colours(i % 10), lw=2, alpha=0.8, zorder=1)
        ax.scatter(x, ranks[:, i], s=330, color=colours(i % 10), zorder=2, edgecolor="white")
        for xi, r in zip(x, ranks[:, i]):
            ax.text(xi, r, item, ha="center", va="center", color="white", fontweight="bold", zorder=3)
    ax.set_xticks(x, names)
    ax.set_yticks(range(1, n + 1))
    ax.set_ylim(n + 0.6, 0.4)
    ax.set_xlim(-0.4, len(names) - 0.6)
    ax.set_ylabel("rank (1 = most similar)")
    ax.tick_params(axis="x", length=0)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    return fig


def _curves(ax: plt.Axes, n: int, rho_lo: float) -> None:
    """ICC(C,k) and ICC(A,k) as functions of rho, ICC(A,k) split at its pole."""
    pole = icc_ak_pole(n)
    grid = np.linspace(max(rho_lo, -0.999), 1, 800)
    ax.plot(grid, icc_ck_from_rho(grid), color="black", lw=1.5, label=r"ICC(C,k) $= 2\rho/(1+\rho)$")
    below, above = grid[grid < pole - 1e-3], grid[grid > pole + 1e-3]
    if len(below):
        ax.plot(below, icc_ak_from_rho(below, n), color="tab:red", lw=1.5, ls="--")
    ax.plot(above, icc_ak_from_rho(above, n), color="tab:red", lw=1.5, ls="--",
            label=rf"ICC(A,k) $= 2\rho/(1+\rho-(1-\rho)/{n})$")


def plot_icc_vs_rho(table: pd.DataFrame, n: int, examples: Mapping[str, tuple[float, float]] | None = None,
                    bands: pd.DataFrame | None = None, ylim: tuple[float, float] = (-10, 10)) -> Figure:
    """ICC(A,k) and ICC(C,k) of two rankings against their Spearman rho, over many rankings.

    Left: the whole range of rho, where ICC(A,k)'s formula has a pole at
    ``rho = -(n-1)/(n+1)`` (grey: its denominator is not positive, undefined;
    red band: values above 1, which no correlation can take). Right: rho and
    ICC in [0, 1] over the bands of an interpretation scale.

    Parameters
    ----------
    table : pandas.DataFrame
        one row per ranking of the items (``ranking``, ``rho``, ``ICC(A,k)``, ``ICC(C,k)``), as
        chapter 02's ``every_ranking`` makes it.
    n : int
        Number of ranked items.
    examples : mapping, optional
        Name -> (rho, ICC(A,k)) of rankings to label, e.g. R1 and R2.
    bands : pandas.DataFrame, optional
        :func:`clpips.book.worked_example.interpretation_scale` (``label``, ``lower``, ``upper``)
        to shade in the bottom panel.
    ylim : (float, float)
        Vertical range of the top panel; points outside it are drawn on its edge
        as triangles.
    """
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(COLUMN_INCHES, 8.4), gridspec_kw={"height_ratios": [1.2, 1]})
    pole = icc_ak_pole(n)
    counts = table.groupby("rho").agg(icc_ak=("ICC(A,k)", "first"), icc_ck=("ICC(C,k)", "first"),
                                      count=("ranking", "size")).reset_index()
    size = 18 + 60 * counts["count"] / counts["count"].max()

    # top: the whole range
    top.axvspan(-1.05, pole, color="0.88", zorder=0)
    top.text(-1.02, -0.6, "ICC(A,k)'s\ndenominator $\\leq 0$:\nundefined", fontsize=SMALL, va="top")
    top.axhspan(1, ylim[1], color="#f4cccc", alpha=0.6, zorder=0)
    top.text(0.98, ylim[1] * 0.9, "above 1: impossible\nfor a correlation", fontsize=SMALL, ha="right", va="top")
    _curves(top, n, -1)
    for column, colour, marker, label in (("icc_ck", "black", "o", "ICC(C,k), each ranking"),
                                          ("icc_ak", "tab:red", "s", "ICC(A,k) (pingouin), each ranking")):
        y = counts[column].to_numpy(dtype=float)
        finite = np.isfinite(y)
        inside = finite & (y >= ylim[0]) & (y <= ylim[1])
        top.scatter(counts["rho"][inside], y[inside], s=size[inside], color=colour, marker=marker,
                     alpha=0.7, zorder=3, label=label)
        outside = finite & ~inside
        top.scatter(counts["rho"][outside], np.clip(y[outside], *ylim), s=40, color=colour, zorder=3,
                     marker="^" if (y[outside] > 0).all() else "v", clip_on=False)
    top.axhline(0, color="0.5", lw=0.6)
    top.axvline(pole, color="tab:red", lw=0.8, ls=":")
    top.set_xlim(-1.05, 1.05)
    top.set_ylim(*ylim)
    top.set_xlabel(r"Spearman $\rho$ of the two rankings")
    top.set_ylabel("ICC of the two rankings")
    top.set_title(f"All {len(table)} rankings of {n} items against the reference", fontsize=10)
    top.legend(fontsize=SMALL, loc="lower right", framealpha=0.95)

    # bottom: the useful range, over the bands of a scale
    if bands is not None:
        for (_, band), colour in zip(bands.iterrows(), BAND_COLOURS):
            lo, hi = max(band["lower"], 0), min(band["upper"], 1)
            bottom.axhspan(lo, hi, color=colour, zorder=0)
            bottom.text(0.015, (lo + hi) / 2, band["label"], va="center", fontsize=SMALL, color="0.25")
    _curves(bottom, n, 0)
    keep = counts["rho"] >= 0
    bottom.scatter(counts["rho"][keep], counts["icc_ak"][keep], s=size[keep], color="tab:red", marker="s",
                  alpha=0.7, zorder=3)
    bottom.scatter(counts["rho"][keep], counts["icc_ck"][keep], s=size[keep], color="black", alpha=0.7, zorder=3)
    bottom.plot([0, 1], [0, 1], color="0.5", lw=0.6, ls=":", label=r"ICC $= \rho$")
    for name, (rho, value) in (examples or {}).items():
        if 0 <= rho <= 1 and 0 <= value <= 1:
            bottom.annotate(name, (rho, value), xytext=(-28, 12), textcoords="offset points", fontsize=9,
                           fontweight="bold", arrowprops={"arrowstyle": "-", "color": "0.3"})
    bottom.set_xlim(0, 1.02)
    bottom.set_ylim(0, 1.02)
    bottom.set_xlabel(r"Spearman $\rho$")
    bottom.set_ylabel("ICC")
    bottom.set_title(r"$\rho \geq 0$, over the Koo & Li bands" if bands is not None else r"$\rho \geq 0$",
                    fontsize=10)
    bottom.legend(fontsize=SMALL, loc="lower right", framealpha=0.95)
    fig.tight_layout()
    return fig
