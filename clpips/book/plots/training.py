"""Figures of the training chapter (03).

They draw :func:`clpips.book.history.history_with_start` (the training history from epoch 0) and
the tables of :mod:`clpips.book.layer_weights` (:func:`~clpips.book.layer_weights.channel_weights`,
:func:`~clpips.book.layer_weights.layer_summary`). Each returns a :class:`matplotlib.figure.Figure`:

* :func:`plot_learning_curves`: train/validation loss and pair accuracy per epoch, best epoch marked;
* :func:`plot_channel_weights`: per layer, each channel's learned weight against its LPIPS v0.1 weight;
* :func:`plot_layer_shares`: each layer's share of the total weight before and after.
"""
from __future__ import annotations

from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from clpips.book.plots.style import COLUMN_INCHES, SMALL

__all__ = ["plot_learning_curves", "plot_channel_weights", "plot_layer_shares"]


# =========================================================================== figures
def plot_learning_curves(history: pd.DataFrame, best_epoch: int, title: str = "") -> Figure:
    """Loss (left) and pair accuracy (right) per epoch on training and validation pairs.

    Parameters
    ----------
    history : pandas.DataFrame
        ``FitResult.history``: ``epoch, train_loss, train_accuracy`` and, with
        early stopping, ``val_loss, val_accuracy`` (:func:`history_with_start`
        adds epoch 0, the starting weights, drawn as an open marker).
    best_epoch : int
        The epoch whose weights were kept (marked by a dotted line).
    """
    fig, axes = plt.subplots(1, 2, figsize=(COLUMN_INCHES, 3.3), constrained_layout=True)
    for ax, what, label in ((axes[0], "loss", "ranking loss"), (axes[1], "accuracy", "pair accuracy")):
        for side, marker, name in (("train", "o", "training pairs"), ("val", "s", "validation pairs")):
            if f"{side}_{what}" not in history:
                continue
            line, = ax.plot(history["epoch"], history[f"{side}_{what}"], f"{marker}-", ms=3, label=name)
            start = history[history["epoch"] == 0]
            if len(start):
                ax.plot(start["epoch"], start[f"{side}_{what}"], marker, ms=7, mfc="white", color=line.get_color())
        ax.axvline(best_epoch, color="grey", ls=":", lw=1.2, label=f"best epoch ({best_epoch})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[1].axhline(0.5, color="black", lw=0.8, alpha=0.5)
    axes[1].text(history["epoch"].iloc[0], 0.5, " chance", va="bottom", fontsize=SMALL, alpha=0.7)
    axes[0].legend(fontsize=SMALL, title="open marker: epoch 0 = LPIPS" if (history["epoch"] == 0).any() else None,
                   title_fontsize=SMALL)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_channel_weights(channels: pd.DataFrame, title: str = "") -> Figure:
    """Per layer, each channel's learned weight (y) against its LPIPS v0.1 weight (x).

    The diagonal is "unchanged"; red crosses are channels the projection holds at 0
    (``pinned``), open circles channels that were 0 in LPIPS already. Without the
    projection the axes extend below 0.
    """
    layers = sorted(channels["layer"].unique())
    ncols = min(3, len(layers))                          # three panels across the text column, then a new row
    nrows = -(-len(layers) // ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(COLUMN_INCHES, 2.5 * nrows + 0.4), constrained_layout=True,
                             squeeze=False)
    for ax in grid.flat[len(layers):]:
        ax.set_visible(False)
    axes = grid.flat[:len(layers)]
    for ax, layer in zip(axes, layers):
        part = channels[channels["layer"] == layer]
        top = float(max(part["before"].max(), part["after"].max())) * 1.05 or 1.0
        low = min(0.0, float(part["after"].min()), float(part["before"].min()))  # negative without projection
        low = low * 1.05 - 0.02 * top
        ax.plot([low, top], [low, top], color="grey", lw=0.8)
        plain = part[~part["pinned"] & ~part["zero_before"]]
        ax.scatter(plain["before"], plain["after"], s=6, alpha=0.6, color="tab:blue", label="weight")
        zero = part[part["zero_before"]]
        ax.scatter(zero["before"], zero["after"], s=14, facecolors="none", edgecolors="tab:green",
                   label="0 in LPIPS")
        pinned = part[part["pinned"]]
        ax.scatter(pinned["before"], pinned["after"], s=14, marker="x", color="tab:red", label="pinned at 0")
        ax.set_xlim(low, top)
        ax.set_ylim(low, top)
        ax.set_title(f"layer {layer} ({len(part)} ch., {int(part['pinned'].sum())} pinned)")
        ax.set_xlabel("LPIPS v0.1 weight")
        ax.locator_params(nbins=4)
    for ax in grid[:, 0]:
        ax.set_ylabel("learned weight")
    axes[0].legend(loc="upper left")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_layer_shares(summary: pd.DataFrame, ax: Optional[plt.Axes] = None) -> Figure:
    """Each layer's share of the total linear weight, LPIPS v0.1 against CLPIPS (grouped bars).

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`layer_summary` (its ``"all"`` row is skipped).
    """
    part = summary[summary["layer"] != "all"]
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 3.0), constrained_layout=True)
    else:
        fig = ax.figure
    x = np.arange(len(part))
    ax.bar(x - 0.2, part["share_before"], 0.4, label="LPIPS v0.1", color="tab:grey")
    ax.bar(x + 0.2, part["share_after"], 0.4, label="CLPIPS", color="tab:blue")
    for xi, (b, a) in enumerate(zip(part["share_before"], part["share_after"])):
        ax.text(xi + 0.2, a, f"{100 * (a - b):+.0f} pp", ha="center", va="bottom", fontsize=SMALL)
    ax.set_xticks(x, [f"layer {layer}" for layer in part["layer"]])
    ax.set_ylabel("share of total weight")
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.legend(fontsize=SMALL)
    ax.grid(axis="y", alpha=0.3)
    return fig
