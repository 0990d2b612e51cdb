"""Linear weights by LPIPS layer and channel: what a fit changed, and where each model puts its weight.

* :func:`channel_weights`: every weight before and after a fit, one row per (layer, channel),
  with whether the ``w >= 0`` projection holds it at 0;
* :func:`layer_summary`: per layer, the weight sums, each layer's *share* of the total weight
  before and after, and how many weights are zero (before, after, newly pinned, released);
* :func:`layer_shares`: each of several models' share of its weight (or of its mean distance)
  per layer;
* :func:`layer_changes`: how far each model moved from a base model within each layer.

Why shares: a distance ``d = phi . w`` that is scaled by a constant ranks every candidate
set the same way, and the margin loss only fixes the scale loosely, so *where* the weight
sits (each layer's share of the sum) says more about what a fit changed than the sums do.
Layers are :func:`clpips.model.layer_slices`.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
import torch

from clpips.defaults import DEFAULTS
from clpips.model import CHANNELS, layer_slices

__all__ = ["channel_weights", "layer_summary", "layer_shares", "layer_changes"]


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


def layer_shares(weights: Mapping[str, torch.Tensor], net: str = DEFAULTS.net, features=None) -> pd.DataFrame:
    """Each model's share of its total weight per LPIPS layer (rows: models; columns: layers 1..5).

    With ``features`` (a :class:`~clpips.features.PairFeatures` or a matrix), the
    share of the mean *distance* each layer contributes instead: the mean over
    feature rows of ``phi_l . w_l`` divided by the mean distance. Rows sum to 1.
    """
    slices = layer_slices(net)
    matrix = None
    if features is not None:
        matrix = getattr(features, "matrix", features)
        matrix = torch.as_tensor(matrix, dtype=torch.float32)
    rows = {}
    for name, w in weights.items():
        w = torch.as_tensor(w, dtype=torch.float32).flatten()
        if matrix is not None:
            per_layer = [float((matrix[:, part] @ w[part]).mean()) for part in slices]
        else:
            per_layer = [float(w[part].sum()) for part in slices]
        total = sum(per_layer)
        rows[name] = [v / total if total > 0 else np.nan for v in per_layer]
    return pd.DataFrame.from_dict(rows, orient="index", columns=[f"layer {i + 1}" for i in range(len(slices))])


def layer_changes(weights: Mapping[str, torch.Tensor], base: torch.Tensor, net: str = DEFAULTS.net) -> pd.DataFrame:
    """How far each model moved from ``base`` within each layer: ``||w_l - base_l|| / ||base_l||``.

    Rows: models; columns: layers 1..5. Complements :func:`layer_shares`: a
    model can keep every layer's share and still reweight the channels inside it.
    """
    slices = layer_slices(net)
    base = torch.as_tensor(base, dtype=torch.float32).flatten()
    rows = {}
    for name, w in weights.items():
        w = torch.as_tensor(w, dtype=torch.float32).flatten()
        rows[name] = [float((w[part] - base[part]).norm() / base[part].norm()) if float(base[part].norm()) > 0
                      else np.nan for part in slices]
    return pd.DataFrame.from_dict(rows, orient="index", columns=[f"layer {i + 1}" for i in range(len(slices))])
