"""Figures of chapters 07 and 10: personal CLPIPS metrics (:mod:`clpips.book.personal`) and a class.

Every function returns a :class:`matplotlib.figure.Figure` and leaves showing
or saving it to the caller.
"""
from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from clpips.book.plots.style import COLUMN_INCHES, SMALL

_STAT_NAMES = {"icc": "ICC(A,k)", "rho": "Spearman's rho"}
_COLOURS = {"personal_vs_pooled": "tab:blue", "new_user": "tab:orange", "pooled_vs_lpips": "tab:grey",
            "personal_vs_lpips": "tab:green", "new_user_vs_lpips": "tab:red", "lopo_vs_lpips": "tab:purple"}


def plot_person_deltas(comparisons: pd.DataFrame, across: pd.DataFrame,
                       names: Sequence[str] = ("personal_vs_pooled", "new_user"),
                       labels: Optional[dict[str, str]] = None, statistic: str = "icc") -> Figure:
    """Forest plot: each person's held-out Δ with its bootstrap CI, and the mean over people
    with its two-way (people and targets) interval.

    Parameters
    ----------
    comparisons : DataFrame
        :attr:`clpips.book.personal.PersonalStudy.comparisons`.
    across : DataFrame
        :meth:`clpips.book.personal.PersonalStudy.across_people`.
    names : comparisons to draw, side by side (offset vertically).
    labels : legend text per comparison.
    statistic : ``"icc"`` or ``"rho"``.
    """
    labels = labels or {}
    raters = sorted(comparisons["rater"].unique())
    fig, ax = plt.subplots(figsize=(COLUMN_INCHES - 0.8, 0.32 * len(raters) + 1.6))
    offsets = np.linspace(-0.18, 0.18, len(names)) if len(names) > 1 else [0.0]
    y_mean = -1.2
    for off, name in zip(offsets, names):
        part = comparisons[comparisons["comparison"] == name].set_index("rater").reindex(raters)
        y = np.arange(len(raters)) + off
        d = part[f"delta_{statistic}"].to_numpy(float)
        lo, hi = part[f"ci_low_{statistic}"].to_numpy(float), part[f"ci_high_{statistic}"].to_numpy(float)
        colour = _COLOURS.get(name, None)
        ax.errorbar(d, y, xerr=[d - lo, hi - d], fmt="o", ms=4, color=colour, capsize=2, lw=1,
                    label=labels.get(name, name))
        row = across.loc[(name, statistic)]
        ax.errorbar([row["mean_delta"]], [y_mean + off], xerr=[[row["mean_delta"] - row["ci_low"]],
                                                                [row["ci_high"] - row["mean_delta"]]],
                    fmt="D", ms=6, color=colour, capsize=3, lw=2)
    ax.axvline(0, color="black", lw=0.8)
    ax.axhline(-0.6, color="lightgrey", lw=0.8)
    ax.set_yticks([y_mean, *range(len(raters))], ["mean over people", *raters])
    ax.invert_yaxis()
    ax.set_xlabel(f"Δ {_STAT_NAMES[statistic]} on the person's held-out rankings")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(names), fontsize=SMALL, frameon=False)
    fig.tight_layout()
    return fig


def plot_learning_curve(summary: pd.DataFrame, per_person: Optional[pd.DataFrame] = None,
                        statistic: str = "icc", base_label: str = "pooled model without the person") -> Figure:
    """Mean Δ (personal − base) against the number of rankings a person gave, with CIs over people.

    Parameters
    ----------
    summary : :meth:`clpips.book.personal.LearningCurve.summary`
    per_person : :meth:`clpips.book.personal.LearningCurve.per_person`, drawn as thin lines.
    """
    fig, ax = plt.subplots(figsize=(6, 3.6))
    x = summary["mean_rankings"].to_numpy(float)
    if per_person is not None:
        for _, part in per_person.groupby("rater"):
            part = part.sort_values("size_order")
            ax.plot(part["n_rankings"], part[f"delta_{statistic}"], color="tab:orange", alpha=0.18, lw=0.8)
    mean = summary[f"delta_{statistic}"].to_numpy(float)
    lo, hi = summary[f"ci_low_{statistic}"].to_numpy(float), summary[f"ci_high_{statistic}"].to_numpy(float)
    ax.fill_between(x, lo, hi, color="tab:orange", alpha=0.25, lw=0, label="95% CI over people")
    ax.plot(x, mean, "o-", color="tab:orange", label="mean over people")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.set_xticks(x, [f"{lab}\n({v:.0f})" if lab == "all" else lab for lab, v in zip(summary.index, x)])
    ax.minorticks_off()
    ax.set_xlabel("rankings the person gave (log scale)")
    ax.set_ylabel(f"Δ {_STAT_NAMES[statistic]}\n(personal − {base_label})")
    ax.legend(fontsize=SMALL, frameon=False, loc="lower right")
    fig.tight_layout()
    return fig


def plot_layer_weights(shares: pd.DataFrame, changes: pd.DataFrame) -> Figure:
    """Two heatmaps: each model's share of weight per layer, and how far each personal
    model moved from the pooled one within each layer (relative L2 change).

    Parameters
    ----------
    shares : :func:`clpips.book.layer_weights.layer_shares` (rows: models, e.g. lpips, pooled, people)
    changes : :func:`clpips.book.layer_weights.layer_changes` (rows: people)
    """
    n = max(len(shares), len(changes))
    fig, axes = plt.subplots(1, 2, figsize=(COLUMN_INCHES, 0.3 * n + 1.8), gridspec_kw={"wspace": 0.5})
    for ax, frame, title, cmap, fmt in (
            (axes[0], shares, "share of the total weight", "viridis", "{:.2f}"),
            (axes[1], changes, "relative change from pooled\n‖w_l − pooled_l‖ / ‖pooled_l‖", "magma", "{:.2f}")):
        values = frame.to_numpy(float)
        im = ax.imshow(values, aspect="auto", cmap=cmap)
        ax.set_xticks(range(frame.shape[1]), [c.replace("layer ", "") for c in frame.columns])
        ax.set_yticks(range(frame.shape[0]), frame.index)
        ax.set_xlabel("LPIPS layer (AlexNet conv1..conv5)")
        ax.set_title(title)
        fig.colorbar(im, ax=ax, shrink=0.8)
        if values.size <= 120:
            mid = np.nanmean(values)
            for (i, j), v in np.ndenumerate(values):
                ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=SMALL,
                        color="white" if v < mid else "black")
    return fig


def plot_cross_person(matrix: pd.DataFrame, statistic: str = "icc") -> Figure:
    """Heatmap of :func:`clpips.book.personal.cross_person`: whose model (columns) on whose rankings (rows)."""
    values = matrix.to_numpy(float)
    limit = np.nanmax(np.abs(values)) if values.size else 1.0
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    im = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit)
    short = [str(c).replace("subject", "s") for c in matrix.columns]
    ax.set_xticks(range(len(short)), short, rotation=90, fontsize=SMALL)
    ax.set_yticks(range(len(matrix.index)), [str(r).replace("subject", "s") for r in matrix.index], fontsize=SMALL)
    ax.set_xlabel("personal model of")
    ax.set_ylabel("held-out rankings of")
    for i, row in enumerate(matrix.index):      # outline one's own model
        if row in matrix.columns:
            j = list(matrix.columns).index(row)
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", lw=1.2))
    fig.colorbar(im, ax=ax, shrink=0.8, label=f"Δ {_STAT_NAMES[statistic]} vs pooled")
    fig.tight_layout()
    return fig


def plot_truth_recovery(recovery: pd.DataFrame) -> Figure:
    """Simulated data: cosine of each rater's true attribute weights with the pooled and the
    personal model's attribute sensitivities (one dot per rater; above the diagonal = personal closer)."""
    fig, axes = plt.subplots(1, 2, figsize=(COLUMN_INCHES, 3.6))
    ax = axes[0]
    ax.scatter(recovery["cos_pooled"], recovery["cos_personal"], s=18)
    lo = float(np.nanmin(recovery[["cos_pooled", "cos_personal"]].to_numpy())) - 0.02
    hi = float(np.nanmax(recovery[["cos_pooled", "cos_personal"]].to_numpy())) + 0.02
    ax.plot([lo, hi], [lo, hi], color="black", lw=0.8)
    ax.set_xlabel("cosine with true weights: pooled")
    ax.set_ylabel("cosine with true weights: personal")
    ax = axes[1]
    ax.hist(recovery["cos_shift"].dropna(), bins=np.linspace(-1, 1, 21), color="tab:orange")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("cosine(personal − pooled sensitivity,\ntrue weights − mean true weights)")
    ax.set_ylabel("raters")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- chapter 10: a class
def _student_labels(names) -> list[str]:
    return [str(s).replace("student ", "") for s in names]


def plot_student_agreement(rho: pd.DataFrame) -> Figure:
    """Heatmap of :func:`clpips.book.class_analysis.pairwise_rho`: Spearman's rho between every two students."""
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    im = ax.imshow(rho.to_numpy(float), vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(rho)), _student_labels(rho.columns), rotation=90, fontsize=SMALL)
    ax.set_yticks(range(len(rho)), _student_labels(rho.index), fontsize=SMALL)
    ax.set_title("Spearman's rho between students\n(mean over shared sets)")
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig


def plot_students(per: pd.DataFrame) -> Figure:
    """Bars per student: held-out ICC(A,k) of LPIPS, the pooled and the personal CLPIPS (``icc_lpips``,
    ``icc_pooled``, ``icc_personal``), and a tick at the student against the others' consensus (``icc_consensus``)."""
    fig, ax = plt.subplots(figsize=(COLUMN_INCHES, 3.6))
    x = np.arange(len(per))
    models = (("icc_lpips", "LPIPS"), ("icc_pooled", "pooled CLPIPS"), ("icc_personal", "personal CLPIPS"))
    for i, (col, label) in enumerate(models):
        ax.bar(x + (i - 1) * 0.27, per[col], width=0.27, label=label)
    ax.scatter(x, per["icc_consensus"], color="k", marker="_", s=120, zorder=3, label="others' consensus (all sets)")
    ax.set_xticks(x, _student_labels(per.index), fontsize=SMALL)
    ax.set_ylabel("held-out ICC(A,k)")
    lowest = per[[col for col, _ in models]].min().min()          # NaN: no student has a held-out score
    ax.set_ylim(min(0.0, float(lowest)) if np.isfinite(lowest) else 0.0, 1)
    ax.legend(ncol=2, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)   # above the bars, not on them
    fig.tight_layout()
    return fig


def plot_layer_shares(shares: pd.DataFrame) -> Figure:
    """Bars: each model's (rows of :func:`clpips.book.layer_weights.layer_shares`) share of the weight per layer."""
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    shares.T.plot.bar(ax=ax, rot=0)
    ax.set_ylabel("share of the weight")
    ax.legend(ncol=min(3, len(shares)), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    return fig
