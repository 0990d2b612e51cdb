"""Many single-split fits trained together: the ablations' and the personal metrics' batched fits.

:func:`fit_together` fits each request as :func:`clpips.train.fit` would, in a few calls of
:func:`clpips.train.fit_many` (the nested protocol's engine), each column keeping ``fit``'s
early-stopped epoch (:func:`clpips.train.early_stopped`); chapters 06 and 07 fit hundreds of models so.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import torch

from clpips.defaults import DEFAULTS
from clpips.experiment import fit_options_except
from clpips.model import initial_weight_vector
from clpips.train import GridJob, early_stopped, fit_and_validation_rows, fit_many, ranking_pair_index

__all__ = ["fit_together", "Fitted", "BATCHED_FIT_OPTIONS"]


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
    epoch ``fit``'s early stopping keeps (:func:`clpips.train.early_stopped`). Requests
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
