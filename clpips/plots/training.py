"""Figures of the training chapter (03), and the small tables behind them.

Figure data (tidy DataFrames, so the chapter can print and check what it draws):

* :func:`channel_weights`: every linear weight before and after fine-tuning,
  one row per (layer, channel), with whether the ``w >= 0`` projection holds it at 0;
* :func:`layer_summary`: per layer, the weight sums, each layer's *share* of the
  total weight before and after, and how many weights are zero (before, after,
  newly pinned by the projection, released from 0);
* :func:`history_with_start`: the training history with an "epoch 0" row, the
  loss and pair accuracy of the starting (LPIPS) weights on the same pairs.

Figures (each returns a :class:`matplotlib.figure.Figure`):

* :func:`plot_learning_curves`: train/validation loss and pair accuracy per epoch, best epoch marked;
* :func:`plot_channel_weights`: per layer, each channel's learned weight against its LPIPS v0.1 weight;
* :func:`plot_layer_shares`: each layer's share of the total weight before and after.

Why shares: a distance ``d = phi . w`` that is scaled by a constant ranks every
candidate set the same way, and the margin loss only fixes the scale loosely,
so *where* the weight sits (each layer's share of the sum) says more about what
the fit changed than the sums do.
"""
from __future__ import annotations

from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..model import CHANNELS

__all__ = ["channel_weights", "layer_summary", "history_with_start", "plot_learning_curves", "plot_channel_weights",
           "plot_layer_shares"]


# =========================================================================== figure data
def channel_weights(initial, learned, net: str = "alex") -> pd.DataFrame:
    """Every linear weight before and after, one row per (layer, channel).

    Parameters
    ----------
    initial, learned : 1-D tensors or arrays
        Weight vectors, layer by layer (``FitResult.initial_weights``, ``FitResult.weights``).
    net : str
        Backbone (gives the channels per layer, :data:`clpips.model.CHANNELS`).

    Returns
    -------
    pandas.DataFrame
        ``layer, channel, before, after, zero_before, zero_after, pinned``
        (``pinned``: positive before, exactly 0 after, i.e. held at 0 by the
        ``w >= 0`` projection) and ``released`` (0 before, positive after).
    """
    before = np.asarray(initial, dtype=float).ravel()
    after = np.asarray(learned, dtype=float).ravel()
    chns = CHANNELS[net]
    if before.shape != after.shape or before.size != sum(chns):
        raise ValueError(f"expected two vectors of {sum(chns)} weights for net={net!r}, "
                         f"got {before.size} and {after.size}")
    layer = np.repeat(np.arange(len(chns)), chns)
    channel = np.concatenate([np.arange(c) for c in chns])
    return pd.DataFrame({"layer": layer, "channel": channel, "before": before, "after": after,
                         "zero_before": before == 0, "zero_after": after == 0,
                         "pinned": (before > 0) & (after == 0), "released": (before == 0) & (after > 0)})


def layer_summary(channels: pd.DataFrame) -> pd.DataFrame:
    """Per layer: sums, shares of the total weight, zero counts; and a last row ``"all"``.

    Parameters
    ----------
    channels : pandas.DataFrame
        :func:`channel_weights`.

    Returns
    -------
    pandas.DataFrame
        ``layer, channels, sum_before, sum_after, share_before, share_after,
        share_change`` (after − before, in share points), ``zero_before,
        zero_after, pinned, released``. The ``"all"`` row has shares 1.
    """
    agg = channels.groupby("layer").agg(
        channels=("channel", "size"), sum_before=("before", "sum"), sum_after=("after", "sum"),
        zero_before=("zero_before", "sum"), zero_after=("zero_after", "sum"),
        pinned=("pinned", "sum"), released=("released", "sum")).reset_index()
    total = agg.drop(columns="layer").sum().to_frame().T
    total.insert(0, "layer", "all")
    out = pd.concat([agg.astype({"layer": object}), total], ignore_index=True)
    for side in ("before", "after"):
        out[f"share_{side}"] = out[f"sum_{side}"] / float(agg[f"sum_{side}"].sum())
    out["share_change"] = out["share_after"] - out["share_before"]
    cols = ["layer", "channels", "sum_before", "sum_after", "share_before", "share_after", "share_change",
            "zero_before", "zero_after", "pinned", "released"]
    return out[cols].astype({c: int for c in ("channels", "zero_before", "zero_after", "pinned", "released")})


def history_with_start(exp) -> pd.DataFrame:
    """``FitResult.history`` of an experiment with an epoch-0 row: the starting weights.

    The starting weights (LPIPS v0.1 by default) are scored with the fit's own
    loss and margin on the fit's own training and validation pairs: the
    validation targets are drawn from the training table exactly as
    :func:`clpips.train.fit` draws them (``split_by_target`` with the fit's
    ``val_size`` and ``seed``).

    Parameters
    ----------
    exp : clpips.experiment.Experiment

    Returns
    -------
    pandas.DataFrame
        The history's columns, first row ``epoch = 0``.
    """
    from ..datasets import split_by_target
    from ..pairs import ranking_pairs
    from ..train import pair_index, pair_loss

    cfg = exp.result.config
    w0 = exp.result.initial_weights.float()
    d = exp.features.matrix.float() @ w0
    row = {"epoch": 0}
    if cfg.get("val_size", 0) > 0:
        fit_rows, val_rows = split_by_target(exp.train_table, test_size=cfg["val_size"], seed=cfg["seed"])
        sides = (("train", fit_rows), ("val", val_rows))
    else:
        sides = (("train", exp.train_table),)
    for side, rows in sides:
        idx = pair_index(exp.features, ranking_pairs(rows))
        s = d[idx[:, 1]] - d[idx[:, 0]]
        row[f"{side}_loss"] = float(pair_loss(s, cfg["loss"], cfg["margin"]))
        row[f"{side}_accuracy"] = float((s > 0).float().mean())
    return pd.concat([pd.DataFrame([row]), exp.result.history], ignore_index=True)


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
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.3), constrained_layout=True)
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
    axes[1].text(history["epoch"].iloc[0], 0.5, " chance", va="bottom", fontsize=8, alpha=0.7)
    axes[0].legend(fontsize=8, title="open marker: epoch 0 = LPIPS" if (history["epoch"] == 0).any() else None,
                   title_fontsize=7)
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
    fig, axes = plt.subplots(1, len(layers), figsize=(2.3 * len(layers) + 0.4, 2.8), constrained_layout=True)
    axes = np.atleast_1d(axes)
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
        ax.set_title(f"layer {layer} ({len(part)} ch.)\n{int(part['pinned'].sum())} pinned", fontsize=9)
        ax.set_xlabel("LPIPS v0.1 weight", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("learned weight", fontsize=8)
    axes[0].legend(fontsize=7, loc="upper left")
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
        ax.text(xi + 0.2, a, f"{100 * (a - b):+.0f} pp", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [f"layer {layer}" for layer in part["layer"]])
    ax.set_ylabel("share of total weight")
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig
