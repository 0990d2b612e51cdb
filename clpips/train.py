"""Fine-tuning the linear weights of LPIPS on human rankings (the CLPIPS method).

Only the five per-layer linear weights ``w`` are trained; the backbone is frozen.
Since ``d(t, c) = phi(t, c) . w`` exactly, a training pair (target ``t``, a
candidate ``b`` ranked more similar than candidate ``v``) needs only the
difference ``x = phi(t, v) - phi(t, b)``: the metric agrees with the person when
``x . w > 0``.

Losses, for a pair with ``s = x . w = d(t, worse) - d(t, better)``:

* ``"margin"`` (the paper): ``max(0, margin - s)``, PyTorch's
  ``MarginRankingLoss`` with target +1;
* ``"logistic"`` (Bradley-Terry): ``log(1 + exp(-s / margin))``, the negative
  log-likelihood that the person prefers ``better`` when preferences follow a
  logistic model in the distance gap, ``margin`` acting as its temperature.

Optimisation: Adam, mini-batches of ``batch_size`` pairs shuffled by a seeded
generator; after every step the trained weights are projected onto ``w >= 0``
(``project=True``), which keeps ``d >= 0`` a distance-like score as in LPIPS.
Each epoch the loss and pair accuracy on *validation* pairs (targets held out
from training, never the test targets) are recorded; the best epoch's weights
are kept and training stops after ``patience`` epochs without improvement.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from .defaults import DEFAULTS
from .model import CHANNELS, CLPIPS

LOSSES = ("margin", "logistic")


@dataclass
class FitResult:
    """What :func:`fit_pairs` returns."""

    weights: torch.Tensor           #: the best epoch's weight vector (layer by layer)
    initial_weights: torch.Tensor   #: the starting weight vector
    history: pd.DataFrame           #: one row per epoch
    best_epoch: int
    config: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def metric(self, net: Optional[str] = None) -> CLPIPS:
        """A :class:`CLPIPS` carrying the fitted weights."""
        model = CLPIPS(net=net or self.config.get("net", "alex"))
        model.set_weight_vector(self.weights)
        model.provenance = {"init": self.config.get("init"), "training": self.config}
        return model

    def layer_weights(self) -> pd.DataFrame:
        """Per-layer summary: sum, mean and share of zero weights, before and after."""
        chns = CHANNELS[self.config.get("net", "alex")]
        rows, start = [], 0
        for layer, c in enumerate(chns):
            before = self.initial_weights[start:start + c]
            after = self.weights[start:start + c]
            rows.append({"layer": layer, "channels": c, "sum_before": float(before.sum()),
                         "sum_after": float(after.sum()), "mean_before": float(before.mean()),
                         "mean_after": float(after.mean()), "zero_share_after": float((after == 0).float().mean())})
            start += c
        return pd.DataFrame(rows)


def parse_layers(layers: str | Sequence[int], n_layers: int = 5) -> list[int]:
    """``"all"`` or ``"0,1,4"`` or ``[0, 1, 4]`` -> sorted list of layer indices."""
    if isinstance(layers, str):
        if layers.strip() == "all":
            return list(range(n_layers))
        try:
            layers = [int(x) for x in layers.split(",") if x.strip()]
        except ValueError:
            raise ValueError(f"layers must be 'all' or comma-separated integers, got {layers!r}") from None
    out = sorted(set(int(x) for x in layers))
    if not out or out[0] < 0 or out[-1] >= n_layers:
        raise ValueError(f"layers must be within 0..{n_layers - 1}, got {layers!r}")
    return out


def pair_loss(s: torch.Tensor, loss: str, margin: float) -> torch.Tensor:
    """Mean loss of distance gaps ``s = d(worse) - d(better)``."""
    if loss == "margin":
        return torch.clamp(margin - s, min=0).mean()
    if loss == "logistic":
        return torch.nn.functional.softplus(-s / margin).mean()
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def fit_pairs(train_x: torch.Tensor, val_x: Optional[torch.Tensor], initial_weights: torch.Tensor, *,
              net: str = DEFAULTS.net, loss: str = DEFAULTS.loss, margin: float = DEFAULTS.margin,
              lr: float = DEFAULTS.lr, batch_size: int = DEFAULTS.batch_size, epochs: int = DEFAULTS.epochs,
              patience: int = DEFAULTS.patience, layers: str | Sequence[int] = DEFAULTS.layers,
              project: bool = DEFAULTS.project, seed: int = DEFAULTS.seed, l2_to: Optional[torch.Tensor] = None,
              l2: float = 0.0, device: str = DEFAULTS.device, init: str = "given") -> FitResult:
    """Train the weight vector on pair differences.

    Parameters
    ----------
    train_x, val_x : N x D tensors
        Rows ``phi(t, worse) - phi(t, better)`` (see :func:`pair_differences`).
        ``val_x`` may be None: then every epoch runs and the last is kept.
    initial_weights : D tensor
        Starting weights (e.g. ``CLPIPS().weight_vector()``).
    l2_to, l2
        Optional penalty ``l2 * ||w - l2_to||^2`` (used for personal models pulled
        towards the pooled one).

    Other parameters are described in the module docstring and :mod:`clpips.defaults`.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if margin <= 0 or lr <= 0 or batch_size < 1 or epochs < 1 or patience < 1:
        raise ValueError("margin and lr must be > 0; batch_size, epochs and patience >= 1")
    chns = CHANNELS[net]
    dim = sum(chns)
    if train_x.ndim != 2 or train_x.shape[1] != dim or initial_weights.numel() != dim:
        raise ValueError(f"expected N x {dim} pair differences and {dim} weights for net={net!r}")
    if train_x.shape[0] == 0:
        raise ValueError("no training pairs")
    trainable = torch.zeros(dim, dtype=torch.bool)
    start = np.cumsum([0, *chns])
    for layer in parse_layers(layers, len(chns)):
        trainable[start[layer]:start[layer + 1]] = True

    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(int(seed))
    x = train_x.to(device, torch.float32)
    vx = val_x.to(device, torch.float32) if val_x is not None and len(val_x) else None
    w0 = initial_weights.detach().flatten().to(device, torch.float32)
    w = torch.nn.Parameter(w0.clone())
    mask = trainable.to(device)
    anchor = l2_to.detach().flatten().to(device, torch.float32) if l2_to is not None else None
    opt = torch.optim.Adam([w], lr=lr)

    def evaluate(data: torch.Tensor) -> tuple[float, float]:
        with torch.no_grad():
            s = data @ w
            return float(pair_loss(s, loss, margin)), float((s > 0).float().mean())

    best = (float("inf"), 0, w.detach().clone())
    rows, stale = [], 0
    for epoch in range(1, epochs + 1):
        order = torch.randperm(x.shape[0], generator=gen).to(device)
        total = 0.0
        for i in range(0, x.shape[0], batch_size):
            batch = x[order[i:i + batch_size]]
            objective = pair_loss(batch @ w, loss, margin)
            if anchor is not None and l2 > 0:
                objective = objective + l2 * torch.sum((w - anchor) ** 2)
            opt.zero_grad(set_to_none=True)
            objective.backward()
            w.grad.mul_(mask)
            opt.step()
            with torch.no_grad():
                w.data = torch.where(mask, w.data, w0)  # Adam moments never move frozen layers
                if project:
                    w.data.clamp_(min=0)
            total += float(objective.detach()) * batch.shape[0]
        train_loss, train_acc = evaluate(x)
        row = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_acc,
               "mean_batch_loss": total / x.shape[0]}
        if vx is not None:
            val_loss, val_acc = evaluate(vx)
            row.update(val_loss=val_loss, val_accuracy=val_acc)
            if val_loss < best[0] - 1e-9:
                best, stale = (val_loss, epoch, w.detach().clone()), 0
            else:
                stale += 1
        else:
            best = (train_loss, epoch, w.detach().clone())
        rows.append(row)
        if vx is not None and stale >= patience:
            break
    config = {"net": net, "loss": loss, "margin": margin, "lr": lr, "batch_size": batch_size, "epochs": epochs,
              "patience": patience, "layers": parse_layers(layers, len(chns)), "project": project, "seed": seed,
              "l2": l2, "init": init, "n_train_pairs": int(x.shape[0]),
              "n_val_pairs": int(vx.shape[0]) if vx is not None else 0}
    return FitResult(weights=best[2].cpu(), initial_weights=w0.cpu(), history=pd.DataFrame(rows),
                     best_epoch=best[1], config=config, seconds=time.perf_counter() - t0)



def pair_differences(features, pairs: pd.DataFrame) -> torch.Tensor:
    """Rows ``phi(t, worse) - phi(t, better)`` for a pair table (see :func:`clpips.pairs.ranking_pairs`)."""
    better = features.rows(pairs["target"], pairs["better"])
    worse = features.rows(pairs["target"], pairs["worse"])
    return features.matrix[worse] - features.matrix[better]


def fit(dataset, table: Optional[pd.DataFrame] = None, *, val_size: float = 0.2, rater: Optional[object] = None,
        net: str = DEFAULTS.net, init: str = DEFAULTS.init, seed: int = DEFAULTS.seed,
        device: str = DEFAULTS.device, progress: bool = True, features=None, **options) -> FitResult:
    """Fit CLPIPS weights on a dataset's rankings.

    Parameters
    ----------
    dataset
        A :mod:`clpips.datasets` dataset (gives the images).
    table : DataFrame, optional
        The training rankings (default: all of ``dataset.table``). Pass the
        training side of :func:`clpips.datasets.split_by_target`; test targets
        must never be in it.
    val_size : float
        Share of ``table``'s targets held out, by target, for early stopping
        (0 disables early stopping: all epochs run, the last is kept).
    rater : optional
        Train on this rater's rankings only (a personal model); default: all raters pooled.
    net, init, seed, device
        Backbone, starting weights (:func:`clpips.model.initial_weight_vector`), seed, torch device.
    features : PairFeatures, optional
        Precomputed pair features (otherwise computed, through the on-disk cache).
    **options
        Passed to :func:`fit_pairs` (loss, margin, lr, batch_size, epochs, patience, layers, project, l2, l2_to).

    Examples
    --------
    >>> from clpips import datasets, train                             # doctest: +SKIP
    >>> data = datasets.load("mur92")
    >>> train_rows, test_rows = datasets.split_by_target(data.table)
    >>> result = train.fit(data, train_rows)
    >>> result.metric().save_weights("weights.pth")
    """
    from .datasets import split_by_target
    from .model import initial_weight_vector
    from .pairs import ranking_pairs

    table = dataset.table if table is None else table
    if rater is not None:
        table = table[table["rater"] == rater]
        if table.empty:
            raise ValueError(f"rater {rater!r} has no rankings in this table")
    if val_size > 0:
        fit_rows, val_rows = split_by_target(table, test_size=val_size, seed=seed)
    else:
        fit_rows, val_rows = table, table.iloc[:0]
    if features is None:
        features = pair_features_for(dataset, table, net=net, device=device, progress=progress)
    train_x = pair_differences(features, ranking_pairs(fit_rows))
    val_x = pair_differences(features, ranking_pairs(val_rows)) if len(val_rows) else None
    result = fit_pairs(train_x, val_x, initial_weight_vector(net, init, seed), net=net, seed=seed,
                       device=device, init=init, **options)
    result.config.update(val_size=val_size, rater=rater, n_train_targets=int(fit_rows["target"].nunique()),
                         n_val_targets=int(val_rows["target"].nunique()))
    return result


def pair_features_for(dataset, table: pd.DataFrame, net: str = DEFAULTS.net, device: str = DEFAULTS.device,
                      progress: bool = True):
    """Pair features of every (target, candidate) in a ranking table (cached on disk)."""
    from .features import pair_features
    keys = table[["target", "candidate"]].drop_duplicates()
    return pair_features(dataset, list(keys.itertuples(index=False, name=None)), net=net, device=device,
                         progress=progress)
