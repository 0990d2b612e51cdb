"""Figures of the nested protocol (:mod:`clpips.protocol`): per-fold differences and their summary.

* :func:`plot_fold_deltas`: for each statistic a panel; for each run (a split mode, or a
  dataset and split mode) the per-fold differences CLPIPS - LPIPS as dots, their mean
  with the corrected resampled t interval, and the target-bootstrap interval where
  there is one; optional reference values (the paper's) as marks.

Each returns a :class:`matplotlib.figure.Figure`; the numbers come from
:meth:`clpips.protocol.CrossvalResult.summary`, nothing is computed here.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from clpips.book.plots.style import COLUMN_INCHES

#: axis titles of the protocol's statistics
TITLES = {"icc_A_k": "ΔICC(A,k)", "spearman_raw": "Δρ, raw distances pooled (paper)",
          "spearman": "Δρ, within-ranking ranks", "pair_accuracy": "Δ pair accuracy"}


def _overlapping(ax) -> bool:
    ax.figure.canvas.draw()
    # 3 px of room on each side: labels that merely touch read as one word ("simulatedsimulated")
    boxes = [t.get_window_extent().padded(3) for t in ax.get_xticklabels() if t.get_text()]
    return any(a.overlaps(b) for a, b in zip(boxes, boxes[1:]))


def _fit_tick_labels(ax, runs: Sequence[str]) -> None:
    """Run names as x tick labels that do not overlap: as given when they fit; else broken after each
    ``_`` (``alien_eggs`` on two lines); else upright (many runs with long names do not fit side by
    side in the text column)."""
    ax.set_xticks(range(len(runs)), runs)
    if _overlapping(ax):
        ax.set_xticks(range(len(runs)), [run.replace("_", "_\n") for run in runs])
    if _overlapping(ax):
        ax.tick_params(axis="x", labelrotation=90)


def plot_fold_deltas(folds: Mapping[str, pd.DataFrame], summaries: Mapping[str, pd.DataFrame],
                     statistics: Sequence[str] = tuple(TITLES), reference: Optional[Mapping[str, float]] = None,
                     reference_label: str = "paper", seed: int = 0) -> Figure:
    """Per-fold Δ (dots) and mean Δ with intervals, one panel per statistic, one column per run.

    Parameters
    ----------
    folds : mapping run label -> ``CrossvalResult.folds``
    summaries : mapping run label -> ``CrossvalResult.summary()``
    statistics : the statistics to draw (keys of :data:`TITLES`)
    reference : optional mapping statistic -> value drawn as a horizontal mark (e.g. the paper's)
    seed : seeds the horizontal jitter of the dots
    """
    runs = list(folds)
    rng = np.random.default_rng(seed)
    # panels two across for a few runs; one per row for many (each run's label needs its width)
    ncols = min(2, len(statistics)) if len(runs) <= 3 else 1
    nrows = -(-len(statistics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(COLUMN_INCHES, 2.9 * nrows + 0.5), squeeze=False)
    for ax in axes.flat[len(statistics):]:
        ax.set_visible(False)
    axes = axes.reshape(1, -1)[:, :len(statistics)]
    for ax, stat in zip(axes[0], statistics):
        for x, run in enumerate(runs):
            d = folds[run][f"delta_{stat}"].to_numpy(float)
            ax.scatter(x - 0.12 + rng.uniform(-0.06, 0.06, len(d)), d, s=12, color="0.55", zorder=2,
                       label="one outer fold" if x == 0 else None)
            row = summaries[run].loc[stat]
            ax.errorbar([x + 0.08], [row["delta"]], yerr=[[row["delta"] - row["nb_low"]], [row["nb_high"] - row["delta"]]],
                        fmt="o", color="C0", capsize=3, zorder=3, label="mean, corrected t" if x == 0 else None)
            if np.isfinite(row["boot_low"]):
                ax.errorbar([x + 0.22], [row["boot_delta"]],
                            yerr=[[row["boot_delta"] - row["boot_low"]], [row["boot_high"] - row["boot_delta"]]],
                            fmt="s", color="C1", capsize=3, zorder=3,
                            label="out-of-fold, target bootstrap" if x == 0 else None)
        ax.axhline(0, color="k", lw=0.8)
        if reference and stat in reference and np.isfinite(reference[stat]):
            ax.axhline(reference[stat], color="C3", lw=1, ls="--", label=reference_label)
        _fit_tick_labels(ax, runs)
        ax.set_xlim(-0.6, len(runs) - 0.4)
        ax.set_title(TITLES.get(stat, stat))
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[0][::ncols]:
        ax.set_ylabel("CLPIPS − LPIPS,\nheld out")
    handles, labels = [], []
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0.55 / fig.get_figheight(), 1, 1))
    return fig
