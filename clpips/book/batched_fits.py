"""Many single-split fits trained together: the ablations' and the personal metrics' batched fits.

:func:`fit_together` fits each request as :func:`clpips.train.fit` would, in a few calls of
:func:`clpips.train.fit_many` (the nested protocol's engine), each column keeping ``fit``'s
early-stopped epoch (:func:`early_stopped`); chapters 06 and 07 fit hundreds of models so. :func:`fit_grid`
is :func:`clpips.train.fit_many` on one grid of one training set.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import torch

from clpips.defaults import DEFAULTS
from clpips.experiment import fit_options_except
from clpips.model import initial_weight_vector
from clpips.train import (GridJob, Patience, compute_dtype, fit_and_validation_rows, fit_many, pair_losses,
                          ranking_pair_index)

__all__ = ["fit_together", "Fitted", "BATCHED_FIT_OPTIONS", "early_stopped", "fit_grid"]


#: the options of :func:`clpips.train.fit` that :func:`fit_together` takes (with their defaults)
BATCHED_FIT_OPTIONS = fit_options_except("init")


@dataclass
class Fitted:
    """What :func:`fit_together` gives of each fit: :class:`clpips.train.FitResult`'s weights, best epoch,
    epochs run and training pairs."""

    weights: torch.Tensor
    initial_weights: torch.Tensor
    best_epoch: int
    epochs_run: int
    seconds: float
    n_train_pairs: int


def fit_together(dataset, requests: Sequence[Mapping[str, Any]], device: str = DEFAULTS.device) -> list[Fitted]:
    """Each request fitted as ``clpips.train.fit(dataset, **request)`` would, all in a few batched calls.

    A request holds ``fit``'s arguments: ``table``, ``features`` (required), ``seed``,
    ``rater``, ``val_size``, ``net``, ``init``, ``device``, ``progress`` and the options
    of :data:`BATCHED_FIT_OPTIONS`. As ``fit`` does, the table (one rater's rows for ``rater``)
    is split by target into training and validation targets
    (``split_by_target(table, val_size, seed)``), the starting weights are
    ``initial_weight_vector(net, init, seed)``; the requests sharing a feature matrix
    and batch size are then trained together by :func:`clpips.train.fit_many` (each
    column equals its own ``fit_pairs``; every epoch is recorded) and each keeps the
    epoch ``fit``'s early stopping keeps (:func:`early_stopped`). Requests
    with the same table, rater and seed share their pairs, so their columns share
    shuffles. ``seconds`` is the batched call's time shared equally among its requests.
    """
    pairs_of: dict[tuple, tuple] = {}
    prepared = [_prepared(dataset, request, device, pairs_of) for request in requests]
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(prepared):
        groups.setdefault((id(p["features"]), p["net"], int(p["batch_size"]), p["device"]), []).append(i)
    out: list[Optional[Fitted]] = [None] * len(prepared)
    for members in groups.values():
        for i, fitted in zip(members, _fitted_group([prepared[i] for i in members])):
            out[i] = fitted
    return out


def _prepared(dataset, request: Mapping[str, Any], device: str, pairs_of: dict[tuple, tuple]) -> dict[str, Any]:
    """One request of :func:`fit_together`, checked, with its training and validation pairs (shared, through
    ``pairs_of``, with the requests of the same table, features, rater, seed and validation size) and its
    starting weights."""
    opts = dict(request)
    table, features = opts.pop("table", None), opts.pop("features", None)
    if features is None:
        raise ValueError("a batched fit needs the pair features")
    table = dataset.table if table is None else table
    seed, rater = int(opts.pop("seed", DEFAULTS.seed)), opts.pop("rater", None)
    val_size = float(opts.pop("val_size", 0.2))
    net, init = opts.pop("net", DEFAULTS.net), opts.pop("init", DEFAULTS.init)
    dev = opts.pop("device", device)
    opts.pop("progress", None)
    options = {name: opts.pop(name, getattr(DEFAULTS, name)) for name in BATCHED_FIT_OPTIONS}
    if opts:
        raise ValueError(f"options the batched fit does not take: {sorted(opts)}")
    key = (id(table), id(features), rater, seed, val_size)
    if key not in pairs_of:
        fit_rows, val_rows = fit_and_validation_rows(table, rater, val_size, seed)
        pairs_of[key] = (ranking_pair_index(features, fit_rows),
                         ranking_pair_index(features, val_rows) if len(val_rows) else None, table)
    train_pairs, val_pairs, _ = pairs_of[key]
    return {"features": features, "net": net, "device": dev, "train": train_pairs, "val": val_pairs,
            "seed": seed, "w0": initial_weight_vector(net, init, seed), **options}


def _fitted_group(group: Sequence[Mapping[str, Any]]) -> list[Fitted]:
    """Requests sharing their features, net, batch size and device (:func:`_prepared`), trained together
    by :func:`clpips.train.fit_many`, each early-stopped as ``fit`` stops."""
    t0 = time.perf_counter()
    first = group[0]
    matrix = first["features"].matrix
    jobs = [GridJob(p["train"], (float(p["margin"]),), (float(p["lr"]),), tuple(range(1, int(p["epochs"]) + 1)),
                    p["seed"], initial_weights=p["w0"], layers=p["layers"], project=bool(p["project"]),
                    loss=p["loss"]) for p in group]
    trained = fit_many(matrix, jobs, jobs[0].initial_weights, net=first["net"], batch_size=int(first["batch_size"]),
                       device=first["device"], threads=1, workers=DEFAULTS.workers)
    chosen = [early_stopped(by_epoch[:, 0], matrix, p["val"], loss=p["loss"], margin=float(p["margin"]),
                            patience=int(p["patience"]), initial_weights=p["w0"])
              for p, by_epoch in zip(group, trained)]
    seconds = (time.perf_counter() - t0) / len(group)
    return [Fitted(weights, p["w0"], int(best_epoch), int(epochs_run), seconds, int(p["train"].shape[0]))
            for p, (weights, best_epoch, epochs_run) in zip(group, chosen)]


def fit_grid(features: torch.Tensor, train_pairs: torch.Tensor, initial_weights: torch.Tensor, *,
             margins: Sequence[float], lrs: Sequence[float], checkpoints: Sequence[int],
             seed: int = DEFAULTS.seed, **options) -> torch.Tensor:
    """Many fits on the same pairs at once (``len(checkpoints) x B x D``): column ``b`` after ``e`` epochs is
    ``fit_pairs(..., margin=margins[b], lr=lrs[b], epochs=e, seed=seed)``'s weights without validation (tested),
    so one run of ``max(checkpoints)`` epochs gives a whole grid. ``options``: as :func:`clpips.train.fit_many`,
    the one way to train many columns (this is its one-job case)."""
    job = GridJob(train_pairs, tuple(margins), tuple(lrs), tuple(int(e) for e in checkpoints), int(seed))
    return fit_many(features, [job], initial_weights, **options)[0]


def early_stopped(weights_by_epoch: torch.Tensor, features: torch.Tensor, val_pairs: Optional[torch.Tensor], *,
                  initial_weights: Optional[torch.Tensor] = None, loss: str = DEFAULTS.loss,
                  margin: float = DEFAULTS.margin, patience: int = DEFAULTS.patience, l2: float = 0.0,
                  l2_to: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, int, int]:
    """The weights :func:`clpips.train.fit_pairs`' early stopping keeps, chosen from ``weights_by_epoch``
    (``E x D``, row ``e - 1`` after epoch ``e``: a :func:`clpips.train.fit_many` column with checkpoints
    ``1..E``), by the same rule (:class:`clpips.train.Patience`) on each epoch's validation loss with the
    penalty ``l2 * ||w - l2_to||^2``. Without validation pairs: the last epoch.

    Returns ``(weights, best_epoch, epochs_run)`` (``epochs_run``: the length of fit_pairs' history). A best
    epoch of 0 (no finite validation loss) returns ``initial_weights`` (required then), as fit_pairs does.
    """
    W = torch.as_tensor(weights_by_epoch)
    if W.ndim != 2 or W.shape[0] < 1:
        raise ValueError("weights_by_epoch must be an E x D tensor, E >= 1")
    epochs = W.shape[0]
    if val_pairs is None or len(val_pairs) == 0:
        return W[-1].clone(), epochs, epochs
    if patience < 1:
        raise ValueError("patience must be >= 1")
    rule = Patience(patience)
    losses = _validation_losses(W, features, torch.as_tensor(val_pairs), loss, margin, l2, l2_to)
    for epoch, value in enumerate(losses, start=1):
        if not rule.record(epoch, value):
            break
    else:
        epoch = epochs
    best_epoch = rule.best_epoch
    if best_epoch == 0:
        if initial_weights is None:
            raise ValueError("no epoch improved on an infinite validation loss: pass initial_weights")
        return torch.as_tensor(initial_weights).detach().flatten().clone(), 0, epoch
    return W[best_epoch - 1].clone(), best_epoch, epoch


def _validation_losses(W: torch.Tensor, features: torch.Tensor, val_pairs: torch.Tensor, loss: str, margin: float,
                       l2: float, l2_to: Optional[torch.Tensor]) -> list[float]:
    """Each row of ``W``'s loss on ``val_pairs`` with the penalty, as fit_pairs' early stopping scores an epoch."""
    used, inverse = torch.unique(val_pairs.to(torch.long).flatten(), return_inverse=True)
    inverse = inverse.view(-1, 2)
    dt = compute_dtype(features)
    Wf = W.to(dt)
    d = features[used].to(dt) @ Wf.T                            # rows x E
    s_gap = d[inverse[:, 1]] - d[inverse[:, 0]]                 # pairs x E
    values = [float(x) for x in pair_losses(s_gap, loss, margin).mean(dim=0)]
    if l2_to is not None and l2 > 0:
        anchor = l2_to.detach().flatten().to(dt)
        values = [value + float(l2 * torch.sum((Wf[e] - anchor) ** 2)) for e, value in enumerate(values)]
    return values
