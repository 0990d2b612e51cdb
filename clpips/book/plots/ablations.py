"""Figures of the ablations chapter (06), drawn from the tables of :mod:`clpips.book.ablations`.

* :func:`plot_factor`: one factor's levels, held-out ICC(A,k) (or rho) per replicate
  with the replicates of one split joined by thin lines (the comparison is paired),
  mean ± sd across replicates, baseline LPIPS as a reference line;
* :func:`plot_learning_curve`: the same against the number of training rankings;
* :func:`plot_per_rater`: per rater, LPIPS, the pooled model and the rater's own model
  on the rater's held-out rankings;
* :func:`plot_differences`: every level's paired difference from its factor's default,
  with its interval (the chapter's summary).

Each returns a :class:`matplotlib.figure.Figure`.
"""
from __future__ import annotations

from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from clpips.book.plots.style import COLUMN_INCHES, SMALL

__all__ = ["plot_factor", "plot_learning_curve", "plot_per_rater", "plot_differences", "METRIC_LABELS"]

METRIC_LABELS = {"icc": "held-out ICC(A,k)", "rho": "held-out Spearman's rho",
                 "delta_icc": "ICC(A,k) minus LPIPS", "delta_rho": "rho minus LPIPS"}
_LPIPS_COLOUR = "tab:red"
_VERDICT_COLOURS = {"higher": "tab:green", "lower": "tab:red", "within noise": "tab:grey"}


def _check(results: pd.DataFrame, factor: str, metric: str) -> pd.DataFrame:
    if metric not in METRIC_LABELS:
        raise ValueError(f"metric must be one of {sorted(METRIC_LABELS)}, got {metric!r}")
    frame = results[results["factor"] == factor]
    if frame.empty:
        raise ValueError(f"no rows for factor {factor!r}")
    return frame


def _baseline_column(metric: str) -> Optional[str]:
    return {"icc": "base_icc", "rho": "base_rho"}.get(metric)


def _reference_line(ax, frame: pd.DataFrame, metric: str, label: str = "LPIPS (AlexNet, v0.1)") -> None:
    column = _baseline_column(metric)
    if column is None:  # a difference from LPIPS: LPIPS is 0
        ax.axhline(0, color=_LPIPS_COLOUR, ls="--", lw=1, label=label)
        return
    per_replicate = frame.groupby(["split", "seed"])[column].first()
    mean, sd = float(per_replicate.mean()), float(per_replicate.std(ddof=1)) if len(per_replicate) > 1 else 0.0
    ax.axhline(mean, color=_LPIPS_COLOUR, ls="--", lw=1, label=f"{label}, mean")
    if sd > 0:
        ax.axhspan(mean - sd, mean + sd, color=_LPIPS_COLOUR, alpha=0.08, lw=0)


def plot_factor(results: pd.DataFrame, factor: str, metric: str = "icc", title: Optional[str] = None,
                ax=None) -> Figure:
    """One factor: each replicate's value per level, joined by split; mean ± sd; LPIPS line.

    Parameters
    ----------
    results
        Rows of :func:`clpips.book.ablations.run_ablation`.
    factor
        The factor to draw; levels keep their order in ``results``, the reference level is
        marked with an asterisk.
    metric
        ``"icc"``, ``"rho"``, ``"delta_icc"`` or ``"delta_rho"``.
    """
    frame = _check(results, factor, metric)
    if ax is None:
        fig, ax = plt.subplots(figsize=(min(COLUMN_INCHES, max(3.6, 1.0 + 0.75 * frame["level"].nunique())), 3.2))
    else:
        fig = ax.figure
    levels = list(dict.fromkeys(frame["level"]))
    x_of = {level: i for i, level in enumerate(levels)}
    for _, rep in frame.groupby(["split", "seed"], sort=False):
        xs = rep["level"].map(x_of).to_numpy()
        order = np.argsort(xs)
        ax.plot(xs[order], rep[metric].to_numpy(float)[order], color="0.6", lw=0.7, marker="o", ms=3,
                alpha=0.8, zorder=1)
    stats = frame.groupby("level", sort=False)[metric].agg(["mean", "std"]).reindex(levels)
    ax.errorbar(range(len(levels)), stats["mean"], yerr=stats["std"].fillna(0), color="k", marker="s", ms=6,
                capsize=4, lw=1.5, ls="none", zorder=3, label="mean ± sd over replicates")
    if factor == "net" and metric in ("icc", "rho"):  # each backbone's own LPIPS
        own = frame.groupby("level", sort=False)[f"lpips_{metric}"].mean().reindex(levels)
        ax.scatter(range(len(levels)), own, marker="x", color=_LPIPS_COLOUR, zorder=2,
                   label="LPIPS of that backbone")
    _reference_line(ax, frame, metric)
    reference = set(frame.loc[frame["reference"], "level"])
    ax.set_xticks(range(len(levels)), [f"{lv}*" if lv in reference else lv for lv in levels])
    ax.set_xlim(-0.5, len(levels) - 0.5)
    ax.set_ylabel(METRIC_LABELS[metric])
    ax.set_xlabel(title or factor)
    ax.legend(fontsize=SMALL, loc="best")
    fig.tight_layout()
    return fig


def plot_learning_curve(results: pd.DataFrame, metric: str = "icc", factor: str = "train_size",
                        ax=None) -> Figure:
    """Held-out alignment against the number of training rankings (log axis), per replicate and mean ± sd."""
    frame = _check(results, factor, metric)
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.2))
    else:
        fig = ax.figure
    for _, rep in frame.groupby(["split", "seed"], sort=False):
        rep = rep.sort_values("n_train_rankings")
        ax.plot(rep["n_train_rankings"], rep[metric], color="0.6", lw=0.7, marker="o", ms=3, alpha=0.8, zorder=1)
    stats = frame.groupby("level", sort=False).agg(n=("n_train_rankings", "mean"), mean=(metric, "mean"),
                                                   sd=(metric, "std")).sort_values("n")
    ax.errorbar(stats["n"], stats["mean"], yerr=stats["sd"].fillna(0), color="k", marker="s", ms=6, capsize=4,
                lw=1.5, zorder=3, label="mean ± sd over replicates")
    _reference_line(ax, frame, metric)
    ax.set_xscale("log")
    ax.set_xlabel("training rankings (log scale)")
    ax.set_ylabel(METRIC_LABELS[metric])
    ax.legend(fontsize=SMALL, loc="best")
    fig.tight_layout()
    return fig


def plot_per_rater(results: pd.DataFrame, metric: str = "icc", factor: str = "raters", ax=None) -> Figure:
    """Per rater (one line each): LPIPS, the pooled model and the rater's own model, on the rater's held-out rankings.

    Values are averaged over replicates first; the mean over raters is drawn in black.
    """
    if metric not in ("icc", "rho"):
        raise ValueError(f"metric must be 'icc' or 'rho', got {metric!r}")
    frame = _check(results, factor, metric)
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.2, 3.4))
    else:
        fig = ax.figure
    wide = frame.pivot_table(index="rater", columns="level", values=metric, aggfunc="mean")
    lpips = frame.groupby("rater")[f"lpips_{metric}"].mean()
    table = pd.DataFrame({"LPIPS": lpips, "pooled": wide["pooled"], "personal": wide["personal"]}).dropna()
    xs = np.arange(3)
    for _, row in table.iterrows():
        ax.plot(xs, row.to_numpy(float), color="0.6", lw=0.7, marker="o", ms=3, alpha=0.8)
    ax.plot(xs, table.mean().to_numpy(float), color="k", lw=2, marker="s", ms=6, label="mean over raters")
    ax.set_xticks(xs, ["LPIPS", "pooled CLPIPS", "per-rater CLPIPS"])
    ax.set_xlim(-0.3, 2.3)
    ax.set_ylabel(f"{METRIC_LABELS[metric]}\n(the rater's own rankings)")
    ax.legend(fontsize=SMALL, loc="best")
    fig.tight_layout()
    return fig


def plot_differences(summary: pd.DataFrame, titles: Optional[dict] = None, ax=None) -> Figure:
    """Every non-reference level's paired difference from its factor's default, with its interval.

    ``summary`` is :func:`clpips.book.ablations.summarize`'s table; colours give the verdict
    (green: reliably higher, red: reliably lower, grey: within noise).
    """
    rows = summary[~summary["reference"]].reset_index(drop=True)
    if rows.empty:
        raise ValueError("no non-reference levels to draw")
    titles = titles or {}
    refs = summary[summary["reference"]].set_index("factor")["level"]
    if ax is None:
        fig, ax = plt.subplots(figsize=(COLUMN_INCHES - 0.3, 0.9 + 0.26 * len(rows)))
    else:
        fig = ax.figure
    ys = np.arange(len(rows))[::-1]
    for y, (_, row) in zip(ys, rows.iterrows()):
        colour = _VERDICT_COLOURS.get(row["verdict"], "tab:grey")
        low, high = row["diff_low"], row["diff_high"]
        if np.isfinite(low) and np.isfinite(high):
            ax.plot([low, high], [y, y], color=colour, lw=2)
        ax.plot(row["diff"], y, "o", color=colour, ms=5)
    labels = [f"{titles.get(r.factor, r.factor)}: {r.level} (vs {refs.get(r.factor, '?')})"
              for r in rows.itertuples()]
    ax.set_yticks(ys, labels, fontsize=SMALL)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("paired difference from the factor's default level")
    ax.set_ylim(-0.7, len(rows) - 0.3)
    fig.tight_layout()
    return fig
