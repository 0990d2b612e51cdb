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

import concurrent.futures
import contextlib
import dataclasses
import io
import math
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from clpips.choices import LOSSES  # the one list; the CLI reads it too
from clpips.defaults import DEFAULTS
from clpips.model import CHANNELS, CLPIPS, layer_slices



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
        rows = []
        for layer, part in enumerate(layer_slices(self.config.get("net", "alex"))):
            before, after, c = self.initial_weights[part], self.weights[part], part.stop - part.start
            rows.append({"layer": layer, "channels": c, "sum_before": float(before.sum()),
                         "sum_after": float(after.sum()), "mean_before": float(before.mean()),
                         "mean_after": float(after.mean()), "zero_share_after": float((after == 0).float().mean())})
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


def trainable_mask(layers: str | Sequence[int], net: str = DEFAULTS.net) -> torch.Tensor:
    """True at the weights of the trained ``layers`` (:func:`parse_layers`), layer by layer
    (:func:`clpips.model.layer_slices`)."""
    slices = layer_slices(net)
    mask = torch.zeros(slices[-1].stop, dtype=torch.bool)
    for layer in parse_layers(layers, len(slices)):
        mask[slices[layer]] = True
    return mask


def pair_loss(s: torch.Tensor, loss: str, margin: float) -> torch.Tensor:
    """Mean loss of distance gaps ``s = d(worse) - d(better)``."""
    if loss == "margin":
        return torch.clamp(margin - s, min=0).mean()
    if loss == "logistic":
        return torch.nn.functional.softplus(-s / margin).mean()
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def _loss_slope(s: torch.Tensor, loss: str, margin: float) -> torch.Tensor:
    """d loss_i / d s_i for each pair (before averaging)."""
    if loss == "margin":
        return -(s <= margin).to(s.dtype)
    return -torch.sigmoid(-s / margin) / margin


@contextlib.contextmanager
def torch_threads(n: Optional[int]) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``, then restore (``None``: leave as is).

    A fit multiplies a ~1,000 x 1,152 matrix thousands of times; one thread is
    faster for that than several contending for shared cores.
    """
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def compute_dtype(features: torch.Tensor) -> torch.dtype:
    """The precision a fit computes in: float64 when the features are float64, else float32.

    Features are float32 everywhere in the project; float64 features give a fit whose
    rounding is 2^29 times smaller, which the tests use to compare two ways of computing
    the same fit without a tolerance tied to one CPU's summation order."""
    return torch.float64 if features.dtype == torch.float64 else torch.float32


class _Adam:
    """Adam (Kingma & Ba 2015) on one vector, step for step what ``torch.optim.Adam`` does
    with its defaults (betas 0.9/0.999, eps 1e-8, no weight decay); written out so a step
    costs a few vector operations (checked against torch in the tests)."""

    def __init__(self, w: torch.Tensor, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.w, self.lr, (self.b1, self.b2), self.eps, self.t = w, lr, betas, eps, 0
        self.m, self.v = torch.zeros_like(w), torch.zeros_like(w)

    def step(self, g: torch.Tensor) -> None:
        self.t += 1
        self.m.mul_(self.b1).add_(g, alpha=1 - self.b1)
        self.v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
        denom = (self.v.sqrt() / (1 - self.b2 ** self.t) ** 0.5).add_(self.eps)
        self.w.addcdiv_(self.m, denom, value=-self.lr / (1 - self.b1 ** self.t))


def fit_pairs(features: torch.Tensor, train_pairs: torch.Tensor, val_pairs: Optional[torch.Tensor],
              initial_weights: torch.Tensor, *, net: str = DEFAULTS.net, loss: str = DEFAULTS.loss,
              margin: float = DEFAULTS.margin, lr: float = DEFAULTS.lr, batch_size: int = DEFAULTS.batch_size,
              epochs: int = DEFAULTS.epochs, patience: int = DEFAULTS.patience,
              layers: str | Sequence[int] = DEFAULTS.layers, project: bool = DEFAULTS.project,
              seed: int = DEFAULTS.seed, l2_to: Optional[torch.Tensor] = None, l2: float = 0.0,
              device: str = DEFAULTS.device, init: str = "given", threads: Optional[int] = 1) -> FitResult:
    """Train the weight vector on ranked pairs of feature vectors.

    Parameters
    ----------
    features : M x D tensor
        Feature vectors ``phi(target, candidate)``, one row per (target, candidate).
    train_pairs, val_pairs : N x 2 integer tensors
        Rows ``(better, worse)`` indexing ``features``: the person ranked
        ``better`` more similar to the same target than ``worse``. ``val_pairs``
        may be None: then every epoch runs and the last is kept.
    initial_weights : D tensor
        Starting weights (e.g. :func:`clpips.model.initial_weight_vector`).
    l2_to, l2
        Optional penalty ``l2 * ||w - l2_to||^2`` (personal models pulled
        towards the pooled one).
    threads : int or None
        torch threads during the fit (:func:`torch_threads`; None leaves the setting alone).

    Notes
    -----
    With ``d = features @ w`` a pair's gap is ``s = d[worse] - d[better]`` and
    the gradient of the batch loss is ``features.T @ c`` for a vector ``c`` that
    adds each pair's loss slope at ``worse`` and subtracts it at ``better``, so a
    step never materialises the ``batch x D`` difference matrix. Other
    parameters: the module docstring and :mod:`clpips.defaults`.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if margin <= 0 or lr <= 0 or batch_size < 1 or epochs < 1 or patience < 1:
        raise ValueError("margin and lr must be > 0; batch_size, epochs and patience >= 1")
    chns = CHANNELS[net]
    dim = sum(chns)
    if features.ndim != 2 or features.shape[1] != dim or initial_weights.numel() != dim:
        raise ValueError(f"expected M x {dim} features and {dim} weights for net={net!r}")
    for name, pairs in (("train_pairs", train_pairs), ("val_pairs", val_pairs)):
        if pairs is not None and (pairs.ndim != 2 or pairs.shape[1] != 2):
            raise ValueError(f"{name} must be an N x 2 tensor of (better, worse) rows")
    if train_pairs.shape[0] == 0:
        raise ValueError("no training pairs")
    trainable = trainable_mask(layers, net)

    with torch_threads(threads):
        return _fit_pairs(features, train_pairs, val_pairs, initial_weights, trainable, chns, net=net, loss=loss,
                          margin=margin, lr=lr, batch_size=batch_size, epochs=epochs, patience=patience,
                          layers=layers, project=project, seed=seed, l2_to=l2_to, l2=l2, device=device, init=init)


def _fit_pairs(features, train_pairs, val_pairs, initial_weights, trainable, chns, *, net, loss, margin, lr,
               batch_size, epochs, patience, layers, project, seed, l2_to, l2, device, init) -> FitResult:
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(int(seed))
    dtype = compute_dtype(features)
    F_all = features.to(device, dtype).contiguous()
    # A step is two matrix-vector products over F's rows (measured, 1 thread, 640 x 1152: ~0.12 ms
    # each, ~80% of a 0.3-0.6 ms step), so only the rows the training pairs use take part: the
    # protocol's loop passes all 920 mur92 rows for a side using 490-640, and training on the used
    # rows took a step from 0.60-0.68 to 0.49-0.59 ms CPU (benchmarks/bench.py's loop; equal to
    # float tolerance: the products sum the same numbers, blocked differently).
    pairs = train_pairs.to(device, torch.long)
    used, inverse = torch.unique(pairs.flatten(), return_inverse=True)
    if used.numel() < F_all.shape[0]:
        F, pairs = F_all[used].contiguous(), inverse.view(-1, 2)
    else:
        F = F_all
    n_rows = F.shape[0]
    better, worse = pairs[:, 0], pairs[:, 1]
    val = val_pairs.to(device, torch.long) if val_pairs is not None and len(val_pairs) else None
    w0 = initial_weights.detach().flatten().to(device, dtype)
    w = w0.clone()
    mask = trainable.to(device, dtype)
    anchor = l2_to.detach().flatten().to(device, dtype) if l2_to is not None and l2 > 0 else None
    opt = _Adam(w, lr)

    def evaluate(M: torch.Tensor, b: torch.Tensor, v: torch.Tensor) -> tuple[float, float]:
        d = M @ w
        s = d[v] - d[b]
        penalty = float(l2 * torch.sum((w - anchor) ** 2)) if anchor is not None else 0.0
        return float(pair_loss(s, loss, margin)) + penalty, float((s > 0).float().mean())

    best = (float("inf"), 0, w.clone())
    rows, stale, n = [], 0, better.shape[0]
    for epoch in range(1, epochs + 1):
        order = torch.randperm(n, generator=gen).to(device)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            b, v = better[idx], worse[idx]
            d = F @ w
            slope = _loss_slope(d[v] - d[b], loss, margin) / idx.numel()
            coef = torch.bincount(v, slope, n_rows) - torch.bincount(b, slope, n_rows)
            g = coef @ F
            if anchor is not None:
                g += 2 * l2 * (w - anchor)
            opt.step(g * mask)  # frozen layers get no gradient, so Adam never moves them
            if project:
                w.clamp_(min=0)
        train_loss, train_acc = evaluate(F, better, worse)
        row = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_acc}
        if val is not None:
            val_loss, val_acc = evaluate(F_all, val[:, 0], val[:, 1])
            row.update(val_loss=val_loss, val_accuracy=val_acc)
            if val_loss < best[0] - 1e-9:
                best, stale = (val_loss, epoch, w.clone()), 0
            else:
                stale += 1
        else:
            best = (train_loss, epoch, w.clone())
        rows.append(row)
        if val is not None and stale >= patience:
            break
    config = {"net": net, "loss": loss, "margin": margin, "lr": lr, "batch_size": batch_size, "epochs": epochs,
              "patience": patience, "layers": parse_layers(layers, len(chns)), "project": project, "seed": seed,
              "l2": l2, "init": init, "n_train_pairs": int(n), "n_val_pairs": int(val.shape[0]) if val is not None else 0}
    return FitResult(weights=best[2].cpu(), initial_weights=w0.cpu(), history=pd.DataFrame(rows),
                     best_epoch=best[1], config=config, seconds=time.perf_counter() - t0)


def pair_index(features, pairs: pd.DataFrame) -> torch.Tensor:
    """``N x 2`` rows (better, worse) of ``features`` for a pair table (:func:`clpips.pairs.ranking_pairs`)."""
    better = features.rows(pairs["target"], pairs["better"])
    worse = features.rows(pairs["target"], pairs["worse"])
    return torch.stack([better, worse], dim=1)


def ranking_pair_index(features, table: pd.DataFrame) -> torch.Tensor:
    """``pair_index(features, ranking_pairs(table))`` (equal, tested) without building the pair table:
    the table's rows are looked up once and each pair takes its two by position
    (:func:`clpips.pairs.ranking_pair_positions`). The protocol's families and the batched fits call it
    for every side of every fold: 39 ms a mur92 training side through the pair table, 6.6 ms this way."""
    from clpips.pairs import ranking_pair_positions
    rows = table.reset_index(drop=True)
    if rows.empty:
        return torch.zeros(0, 2, dtype=torch.int64)
    better, worse = ranking_pair_positions(rows)
    found = features.rows(rows["target"], rows["candidate"])
    return torch.stack([found[torch.from_numpy(better)], found[torch.from_numpy(worse)]], dim=1)


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
    from clpips.model import initial_weight_vector

    table = dataset.table if table is None else table
    fit_rows, val_rows = fit_and_validation_rows(table, rater, val_size, seed)
    table = table if rater is None else table[table["rater"] == rater]
    if features is None:
        features = pair_features_for(dataset, table, net=net, device=device, progress=progress)
    train_pairs = ranking_pair_index(features, fit_rows)
    val_pairs = ranking_pair_index(features, val_rows) if len(val_rows) else None
    result = fit_pairs(features.matrix, train_pairs, val_pairs, initial_weight_vector(net, init, seed), net=net,
                       seed=seed,
                       device=device, init=init, **options)
    result.config.update(val_size=val_size, rater=rater, n_train_targets=int(fit_rows["target"].nunique()),
                         n_val_targets=int(val_rows["target"].nunique()))
    return result


def fit_and_validation_rows(table: pd.DataFrame, rater: Optional[object] = None, val_size: float = 0.2,
                            seed: int = DEFAULTS.seed) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rankings :func:`fit` trains on and those it stops early on: ``rater``'s rows (all, if None),
    a ``val_size`` share of their targets held out by :func:`clpips.datasets.split_by_target`
    (``val_size=0``: no validation rows)."""
    from clpips.datasets import split_by_target
    rows = table if rater is None else table[table["rater"] == rater]
    if rows.empty:
        raise ValueError(f"rater {rater!r} has no rankings in this table")
    if val_size > 0:
        return split_by_target(rows, test_size=val_size, seed=seed)
    return rows, rows.iloc[:0]


def pair_features_for(dataset, table: pd.DataFrame, net: str = DEFAULTS.net, device: str = DEFAULTS.device,
                      progress: bool = True):
    """Pair features of every (target, candidate) in a ranking table (cached on disk)."""
    from clpips.features import pair_features
    keys = table[["target", "candidate"]].drop_duplicates()
    return pair_features(dataset, list(keys.itertuples(index=False, name=None)), net=net, device=device,
                         progress=progress)



@dataclass(frozen=True)
class GridJob:
    """One training set of :func:`fit_many`: its pairs, a grid of (margin, lr) columns, the epochs to record.

    The optional fields override the :func:`fit_many` call's value of the same name for
    this job's columns (None: the call's value), as the options of its own :func:`fit_pairs`.
    """

    pairs: torch.Tensor             #: N x 2 (better, worse) rows of the shared feature matrix
    margins: tuple[float, ...]
    lrs: tuple[float, ...]
    checkpoints: tuple[int, ...]    #: epoch counts at which the weights are recorded
    seed: int = DEFAULTS.seed       #: seed of this job's shuffles (as fit_pairs' seed)
    initial_weights: Optional[torch.Tensor] = None       #: starting weights (D)
    layers: Optional[str | Sequence[int]] = None         #: trained layers (:func:`parse_layers`)
    project: Optional[bool] = None                       #: projection onto w >= 0 after every step
    loss: Optional[str] = None                           #: :data:`LOSSES`
    l2: float = 0.0                                      #: penalty ``l2 * ||w - l2_to||^2`` (as fit_pairs')
    l2_to: Optional[torch.Tensor] = None                 #: the weights the penalty pulls towards (D)


def fit_grid(features: torch.Tensor, train_pairs: torch.Tensor, initial_weights: torch.Tensor, *,
             margins: Sequence[float], lrs: Sequence[float], checkpoints: Sequence[int],
             seed: int = DEFAULTS.seed, **options) -> torch.Tensor:
    """Many fits on the same pairs at once: column ``b`` trains with ``margins[b]`` and ``lrs[b]``.

    Column ``b`` of the weights after ``e`` epochs equals
    ``fit_pairs(features, train_pairs, None, initial_weights, margin=margins[b], lr=lrs[b],
    epochs=e, seed=seed, ...).weights`` (same shuffles, same Adam steps; tested), so one
    run of ``max(checkpoints)`` epochs gives every (margin, lr, epochs) setting of a grid.

    Returns ``len(checkpoints) x B x D`` weights. ``options``: as :func:`fit_many`.
    """
    job = GridJob(train_pairs, tuple(margins), tuple(lrs), tuple(int(e) for e in checkpoints), int(seed))
    return fit_many(features, [job], initial_weights, **options)[0]


def fit_many(features: torch.Tensor, jobs: Sequence[GridJob], initial_weights: torch.Tensor, *,
             net: str = DEFAULTS.net, loss: str = DEFAULTS.loss, batch_size: int = DEFAULTS.batch_size,
             layers: str | Sequence[int] = DEFAULTS.layers, project: bool = DEFAULTS.project,
             device: str = DEFAULTS.device, threads: Optional[int] = 1,
             max_columns: int = 96, workers: int = 1,
             executor: Optional[concurrent.futures.Executor] = None) -> list[torch.Tensor]:
    """Train every (job, margin, lr) column together, each exactly as its own :func:`fit_pairs` would.

    All columns step in lockstep as one ``D x C`` weight matrix: a step costs
    ``F @ W`` and ``F.T @ coef`` over the rows the jobs use, whatever the number of
    columns up to a point. Measured on 2 cores (M=920 rows, D=1152): a step of 6
    columns took 1.0 ms, of 96 columns 2.7 ms, so columns run in groups of at most
    ``max_columns``. Each job keeps its own shuffles (its seed) and batch
    boundaries; Adam's step count is shared, since every column starts at step 1.
    Jobs with the same pairs and seed draw the same shuffles, so they share one
    (their columns side by side): the per-job work of a step is a few small
    indexing operations, which with many jobs costs as much as the matrix products.

    Parameters
    ----------
    features : M x D tensor
    jobs : sequence of :class:`GridJob`
        A job's ``initial_weights``, ``layers``, ``project`` and ``loss`` override the
        call's for its columns; column ``b`` of a job equals
        ``fit_pairs(features, job.pairs, None, w0, margin=job.margins[b], lr=job.lrs[b],
        epochs=e, seed=job.seed, layers=..., project=..., loss=..., l2=job.l2, l2_to=job.l2_to)``
        after ``e`` epochs.
    initial_weights : D tensor (where a job names none)
    net, loss, batch_size, layers, project, device, threads
        As :func:`fit_pairs`; ``loss``, ``layers`` and ``project`` where a job names none.
    workers : int
        Processes to spread the groups over (CPU only; each uses ``threads`` torch threads).
        The results are the same for any number.
    executor : concurrent.futures.Executor, optional
        Run the groups there instead (a ``ProcessPoolExecutor``, a Dask cluster's
        ``Client(...).get_executor()``): each group is one task, the same arithmetic wherever it runs.

    Returns
    -------
    list of tensors, one per job: ``len(job.checkpoints) x len(job.margins) x D``.
    Select the early-stopped epoch of a column with :func:`early_stopped`.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    chns = CHANNELS[net]
    dim = sum(chns)
    if features.ndim != 2 or features.shape[1] != dim or initial_weights.numel() != dim:
        raise ValueError(f"expected M x {dim} features and {dim} weights for net={net!r}")
    masks: dict[tuple[int, ...], torch.Tensor] = {}

    def trainable_of(spec) -> torch.Tensor:
        key = tuple(parse_layers(spec, len(chns)))
        if key not in masks:
            masks[key] = trainable_mask(key, net)
        return masks[key]

    resolved = []
    for job in jobs:
        margins, lrs = torch.as_tensor(job.margins, dtype=torch.float64), torch.as_tensor(job.lrs, dtype=torch.float64)
        if margins.ndim != 1 or margins.numel() == 0 or margins.shape != lrs.shape:
            raise ValueError("a job's margins and lrs must be equally long, non-empty sequences")
        if not (torch.isfinite(margins).all() and torch.isfinite(lrs).all() and (margins > 0).all()
                and (lrs > 0).all()):
            raise ValueError("every margin and learning rate must be finite and > 0")
        if not job.checkpoints or min(job.checkpoints) < 1:
            raise ValueError("checkpoints must be epoch counts >= 1")
        if job.pairs.ndim != 2 or job.pairs.shape[1] != 2 or job.pairs.shape[0] == 0:
            raise ValueError("a job's pairs must be a non-empty N x 2 tensor of (better, worse) rows")
        job_loss = loss if job.loss is None else job.loss
        if job_loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {job_loss!r}")
        w0 = initial_weights if job.initial_weights is None else job.initial_weights
        if w0.numel() != dim or not torch.isfinite(torch.as_tensor(w0)).all():
            raise ValueError(f"a job's initial weights must be {dim} finite numbers for net={net!r}")
        if not (math.isfinite(job.l2) and job.l2 >= 0):
            raise ValueError(f"a job's l2 must be a finite number >= 0, got {job.l2!r}")
        anchor = None
        if job.l2_to is not None and job.l2 > 0:       # as fit_pairs: the penalty needs both
            anchor = torch.as_tensor(job.l2_to).detach().flatten().to(compute_dtype(features))
            if anchor.numel() != dim or not torch.isfinite(anchor).all():
                raise ValueError(f"a job's l2_to must be {dim} finite numbers for net={net!r}")
        resolved.append(_Job(job, w0.detach().flatten(), trainable_of(layers if job.layers is None else job.layers),
                             bool(project if job.project is None else job.project), job_loss, anchor))
    # jobs drawing the same shuffles side by side, so that a group can share them
    streams: list[list[int]] = []
    for i, r in enumerate(resolved):
        for members in streams:
            first = resolved[members[0]].job
            if first.seed == r.job.seed and (first.pairs is r.job.pairs or (
                    first.pairs.shape == r.job.pairs.shape and torch.equal(first.pairs, r.job.pairs))):
                members.append(i)
                break
        else:
            streams.append([i])
    # a group's step multiplies every row any of its jobs uses: start a new group when the columns pass
    # max_columns, or when the rows would grow past twice the largest job's (jobs on other images, as the
    # split by image's folds are, then step apart instead of multiplying each other's rows: measured on
    # mur92 by image, 16 jobs on 5,300 rows took 4x as long as the same jobs grouped by fold)
    rows_of = {i: np.unique(jobs[i].pairs.numpy()) for i in range(len(jobs))}
    groups, current, width, union, largest = [], [], 0, np.zeros(0, dtype=np.int64), 0
    for i in (i for members in streams for i in members):
        grown = np.union1d(union, rows_of[i])
        big = max(largest, len(rows_of[i]))
        if current and (width + len(jobs[i].margins) > max_columns or len(grown) > 2 * big):
            groups.append(current)
            current, width, grown, big = [], 0, rows_of[i], len(rows_of[i])
        current.append(i)
        width += len(jobs[i].margins)
        union, largest = grown, big
    if current:
        groups.append(current)
    out: list[Optional[torch.Tensor]] = [None] * len(jobs)
    parts = [_compact(features, [resolved[i] for i in group]) for group in groups]
    if executor is not None:
        futures = [executor.submit(_fit_group, *part, batch_size, device, threads) for part in parts]
        for group, future in zip(groups, futures):
            for i, w in zip(group, future.result()):
                out[i] = w
        return out
    if workers > 1 and len(groups) > 1 and torch.device(device).type == "cpu":
        # groups are independent: run them in `workers` fresh Python processes, each with `threads` torch
        # threads, the largest groups dealt out first. Plain subprocesses rather than multiprocessing:
        # spawn re-imports the caller's __main__ (a script without a main guard would start over) and a
        # fork of a process whose torch threads are running can hang.
        sizes = [sum(len(resolved[i].job.pairs) for i in group) for group in groups]
        bins: list[list[int]] = [[] for _ in range(min(workers, len(groups)))]
        load = [0] * len(bins)
        for g in sorted(range(len(groups)), key=lambda g: -sizes[g]):
            b = load.index(min(load))
            bins[b].append(g)
            load[b] += sizes[g]
        for b, results in zip(bins, _in_processes([[(*parts[g], batch_size, device, threads) for g in b]
                                                   for b in bins])):
            for g, weights in zip(b, results):
                for i, w in zip(groups[g], weights):
                    out[i] = w
        return out
    for group, part in zip(groups, parts):
        for i, w in zip(group, _fit_group(*part, batch_size, device, threads)):
            out[i] = w
    return out


def _compact(features: torch.Tensor, jobs: Sequence["_Job"]) -> tuple[torch.Tensor, list["_Job"]]:
    """The rows of ``features`` that ``jobs`` use, and the jobs with their pairs re-indexed into them."""
    used = torch.unique(torch.cat([r.job.pairs.to(torch.long).flatten() for r in jobs]))
    moved = [dataclasses.replace(r, job=dataclasses.replace(r.job, pairs=torch.searchsorted(used, r.job.pairs.to(torch.long))))
             for r in jobs]
    return features[used].contiguous(), moved


def _fit_group(features: torch.Tensor, jobs: Sequence["_Job"], batch_size: int, device: str,
               threads: Optional[int]) -> list[torch.Tensor]:
    """One lockstep group."""
    with torch_threads(threads):
        return _fit_lockstep(features, jobs, batch_size=batch_size, device=device)


#: what a :func:`fit_many` worker process runs (``python -c _WORKER_CODE <parent pid>``). Before the seconds of
#: importing torch it leaves Ctrl-C to its parent (which kills it), asks Linux to SIGKILL it when the parent
#: ends (prctl PR_SET_PDEATHSIG, via ctypes), and leaves at once if the parent is already gone; then
#: :func:`_worker` takes its tasks from stdin. Elsewhere, and as a second guard, the worker leaves when its
#: stdin reaches its end: the parent holds it open until the results are read, so that happens when the
#: parent ends, however it ends (after a SIGKILL its workers had run on, orphaned, to the end of their fits).
_WORKER_CODE = """\
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
if sys.platform.startswith("linux"):
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
if os.getppid() != int(sys.argv[1]):
    os._exit(1)
from clpips.train import _worker
_worker()
"""


def _in_processes(task_lists: list[list[tuple]]) -> list[list[list[torch.Tensor]]]:
    """Run each list of :func:`_fit_group` argument tuples in its own Python process, all at once.

    The workers end with this call: when it returns, when it raises (an interrupt included: Ctrl-C
    stops the run within a second, where it used to wait for the workers to finish their fits) and when
    this process ends, however it ends (:data:`_WORKER_CODE`). They are started from the calling thread,
    which waits for them (Linux's parent-death signal follows the thread that started a process)."""
    workers: list[tuple[subprocess.Popen, Any]] = []
    pool = concurrent.futures.ThreadPoolExecutor(len(task_lists))
    try:
        for _ in task_lists:
            errors = tempfile.TemporaryFile()     # a file, not a pipe: a chatty worker cannot block on it
            workers.append((subprocess.Popen([sys.executable, "-c", _WORKER_CODE, str(os.getpid())],
                                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors), errors))
        futures = [pool.submit(_exchange, proc, errors, tasks) for (proc, errors), tasks in zip(workers, task_lists)]
        return [future.result() for future in futures]
    finally:
        for proc, _ in workers:
            if proc.poll() is None:
                proc.kill()
        pool.shutdown(wait=True)
        for proc, errors in workers:
            proc.wait()
            for stream in (proc.stdin, proc.stdout, errors):
                with contextlib.suppress(OSError):      # a pipe to a killed worker may not flush
                    stream.close()


def _exchange(proc: subprocess.Popen, errors, tasks: list[tuple]) -> list[list[torch.Tensor]]:
    """Send a worker its tasks (their length, then torch.save bytes) and read back its results. Its stdin
    stays open until it has answered (:data:`_WORKER_CODE`)."""
    buffer = io.BytesIO()
    torch.save(tasks, buffer)
    try:
        proc.stdin.write(struct.pack("<Q", buffer.getbuffer().nbytes))
        proc.stdin.write(buffer.getbuffer())
        proc.stdin.flush()
        out = proc.stdout.read()
    except (OSError, ValueError):      # the worker is gone (a broken pipe), or was killed
        out = b""
    code = proc.wait()
    if code != 0:
        errors.seek(0)
        last = (errors.read().decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"a fit_many worker process failed (exit {code}): {last}")
    return torch.load(io.BytesIO(out), weights_only=False)


def _read_exactly(fd: int, n: int) -> bytes:
    """``n`` bytes from file descriptor ``fd``; a worker whose parent is gone before sending them leaves."""
    parts, left = [], n
    while left:
        part = os.read(fd, min(left, 1 << 24))
        if not part:
            os._exit(1)
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _exit_at_eof(fd: int) -> None:
    """Read ``fd`` until its end (the parent closed it, or ended), then end this process at once."""
    while os.read(fd, 1 << 16):
        pass
    os._exit(1)


def _worker() -> None:
    """A worker process of :func:`fit_many`: tasks on stdin, their weights on stdout (torch.save format).
    Started by :func:`_in_processes` through :data:`_WORKER_CODE`; it leaves when stdin ends."""
    fd = sys.stdin.fileno()   # read raw, without the buffer's lock, which the watcher below would hold at exit
    size = struct.unpack("<Q", _read_exactly(fd, 8))[0]
    tasks = torch.load(io.BytesIO(_read_exactly(fd, size)), weights_only=False)  # written by _in_processes
    threading.Thread(target=_exit_at_eof, args=(fd,), daemon=True).start()
    buffer = io.BytesIO()
    torch.save([_fit_group(*task) for task in tasks], buffer)
    sys.stdout.buffer.write(buffer.getvalue())
    sys.stdout.buffer.flush()


@dataclass(frozen=True)
class _Job:
    """A :class:`GridJob` with the call's defaults filled in."""

    job: GridJob
    w0: torch.Tensor
    trainable: torch.Tensor
    project: bool
    loss: str
    anchor: Optional[torch.Tensor] = None     #: l2_to where the job's l2 penalty applies


def _slope(s: torch.Tensor, loss: str, margins: torch.Tensor, logistic: torch.Tensor) -> torch.Tensor:
    """:func:`_loss_slope` of every column at once (``loss`` ``"mixed"``: ``logistic`` says which columns)."""
    if loss == "margin":
        return -(s <= margins).to(s.dtype)
    if loss == "logistic":
        return -torch.sigmoid(-s / margins) / margins
    return torch.where(logistic, -torch.sigmoid(-s / margins) / margins, -(s <= margins).to(s.dtype))


#: the most bytes of pair differences a lockstep group keeps (above it, it steps over its rows)
_PAIR_TABLE_BYTES = 2 ** 30


def _gathers_pairs(batch_size: int, streams: Sequence[tuple[int, int]], rows: int) -> bool:
    """Whether a lockstep group steps on its batches' pair differences rather than over all its rows.

    ``streams``: each stream's steps and columns. A step over all rows costs two products with the
    group's ``rows x D`` features, shared by all its streams, until the last ends; a step on pair
    differences costs each live stream a gather of ``batch_size`` rows of them and two products
    with its own columns. The costs below are microseconds on 1 thread with 1,152 features: the
    products over 740-920 rows with 1-96 columns, and a gather of 256 difference rows and its
    products (0.55 us a pair, raised to 0.7 so that the choice matches the measured time of the
    protocol's and the ablations' own groups, mur92 and zappos: with many streams the gathered
    batches outgrow the core's cache). Chosen so, those groups took 0.45-0.9x the time over the
    rows where differences were chosen, and over the rows 0.6-0.9x the time on differences."""
    columns = sum(c for _, c in streams)
    over_rows = max(steps for steps, _ in streams) * rows * (0.47 + 0.026 * columns)
    on_pairs = sum(steps * (30 + batch_size * (0.7 + 0.035 * c)) for steps, c in streams)
    return on_pairs < over_rows


def _fit_lockstep(features, jobs: Sequence[_Job], *, batch_size, device):
    """Every column of ``jobs`` trained together; returns each job's recorded weights.

    One step takes the next batch of every stream (jobs with the same pairs and seed share
    one: one shuffle per epoch, one batch per step, their columns side by side) and computes
    all of them in a fixed number of tensor operations, in one of two ways
    (:func:`_gathers_pairs` chooses): over all the group's rows (``d = F W``, then each column
    gathers its stream's batch by index), or on the batches' pair differences (each stream's
    batch of ``delta = F[worse] - F[better]`` rows gathered once, times its own columns). The
    same numbers, summed in another order. A stream's batches for all its epochs are drawn
    with its own generator, exactly as :func:`_fit_pairs` draws them (one ``randperm`` per
    epoch), ``chunk`` steps at a time, and padded to ``batch_size``; padded positions weigh 0.
    """
    # only the rows the jobs use take part in a step: re-index them compactly
    all_rows = torch.cat([r.job.pairs.to(torch.long).flatten() for r in jobs])
    used, inverse = torch.unique(all_rows, return_inverse=True)
    dt = compute_dtype(features)
    F = features[used].to(device, dt).contiguous()
    n_rows = F.shape[0]
    widths = [len(r.job.margins) for r in jobs]
    cols = np.cumsum([0, *widths])
    margins = torch.tensor([m for r in jobs for m in r.job.margins], dtype=dt, device=device)
    lrs = torch.tensor([lr for r in jobs for lr in r.job.lrs], dtype=dt, device=device)
    logistic = torch.tensor([r.loss == "logistic" for r, w in zip(jobs, widths) for _ in range(w)], device=device)
    W = torch.cat([r.w0.to(device, dt)[:, None].expand(-1, w) for r, w in zip(jobs, widths)], dim=1)
    W = W.contiguous()                                                  # D x C
    mask = torch.cat([r.trainable.to(device, dt)[:, None].expand(-1, w) for r, w in zip(jobs, widths)],
                     dim=1)
    projected = [r.project for r, w in zip(jobs, widths) for _ in range(w)]
    floor = None if all(projected) or not any(projected) else torch.tensor(
        [0.0 if p else -float("inf") for p in projected], dtype=dt, device=device)[None, :]
    loss = "mixed" if bool(logistic.any()) and not bool(logistic.all()) else (
        "logistic" if bool(logistic.all()) else "margin")
    pulled = any(r.anchor is not None for r in jobs)
    if pulled:      # 2 l2 per column (0 where a job has no penalty) and the weights each column is pulled to
        pull = torch.tensor([2 * r.job.l2 if r.anchor is not None else 0.0 for r, w in zip(jobs, widths)
                             for _ in range(w)], dtype=dt, device=device)[None, :]
        anchors = torch.cat([(r.anchor if r.anchor is not None else r.w0).to(device, dt)[:, None]
                             .expand(-1, w) for r, w in zip(jobs, widths)], dim=1).contiguous()

    # the streams: consecutive jobs with the same pairs and seed (fit_many puts them side by side) share one
    streams, offset = [], 0
    for j, r in enumerate(jobs):
        n = r.job.pairs.shape[0]
        rows = inverse[offset:offset + 2 * n].view(-1, 2)
        offset += 2 * n
        prev = streams[-1] if streams else None
        if prev is not None and prev["seed"] == r.job.seed and (
                prev["pairs"] is r.job.pairs or torch.equal(prev["pairs"], r.job.pairs)):
            prev["jobs"].append(j)
            prev["stop"] = int(cols[j + 1])
            prev["epochs"] = max(prev["epochs"], max(r.job.checkpoints))
            continue
        streams.append({"jobs": [j], "start": int(cols[j]), "stop": int(cols[j + 1]), "pairs": r.job.pairs,
                        "seed": r.job.seed, "rows": rows, "n": n, "epochs": max(r.job.checkpoints)})
    by_pair = _gathers_pairs(batch_size, [(st["epochs"] * -(-st["n"] // batch_size), st["stop"] - st["start"])
                                          for st in streams], n_rows)
    if by_pair:
        # each stream's pairs as ids into the table of the distinct (better, worse) pairs of the group,
        # and that table's feature differences (worse - better): s = delta[id] @ w = d[worse] - d[better]
        codes = torch.cat([st["rows"][:, 0] * n_rows + st["rows"][:, 1] for st in streams])
        distinct, ids = torch.unique(codes, return_inverse=True)
        by_pair = len(distinct) * F.shape[1] * 4 <= _PAIR_TABLE_BYTES
    if by_pair:
        delta = F.index_select(0, distinct % n_rows) - F.index_select(0, distinct // n_rows)
        buffer = torch.empty(len(streams) * batch_size, F.shape[1], dtype=dt, device=device)
        at = 0
        for st in streams:
            st["rows"], at = ids[at:at + st["n"]][:, None], at + st["n"]
    largest = len(distinct) if by_pair else n_rows

    def lay(x: torch.Tensor) -> torch.Tensor:
        """``x`` (D x C) in the layout of the step's products: gathering pairs, each column's D numbers
        side by side (a C x D tensor seen as D x C), since the products with a gathered batch are fast
        only on contiguous column blocks (measured, 1 thread, 256 x 1152 batch, 6 columns: 51 us
        against 489 us on a transposed view)"""
        return x.T.contiguous().T if by_pair else x.contiguous()

    W, mask = lay(W), lay(mask)
    if pulled:
        anchors = lay(anchors)
    K = 1 if by_pair else 2
    index_type = torch.int16 if largest <= 2 ** 15 else torch.int32   # the schedule is kept small in memory
    ends: dict[int, list[tuple[int, int]]] = {}          # step -> (stream, epoch) whose epoch ends there
    for i, st in enumerate(streams):
        st["batches"] = -(-st["n"] // batch_size)
        st["steps"] = st["epochs"] * st["batches"]
        st["gen"], st["epoch"], st["block"] = torch.Generator().manual_seed(int(st["seed"])), -1, None
        for e in range(st["epochs"]):
            ends.setdefault((e + 1) * st["batches"] - 1, []).append((i, e + 1))
    steps = max(st["steps"] for st in streams)
    S = len(streams)
    chunk = 256                                           # steps of the schedule drawn at a time

    def schedule(t0: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Steps t0 .. t0 + chunk of every stream: its rows (streams x steps x batch x K, padded with 0)
        and the batch sizes (0 once a stream has ended)."""
        out = torch.zeros(S, chunk, batch_size, K, dtype=index_type)
        n_out = torch.zeros(S, chunk)
        for i, st in enumerate(streams):
            t, nb = t0, st["batches"]
            while t < min(t0 + chunk, st["steps"]):
                e, b = divmod(t, nb)
                if st["epoch"] != e:                      # the next epoch's shuffle, as _fit_pairs draws it
                    order = torch.randperm(st["n"], generator=st["gen"])
                    rows = torch.zeros(nb * batch_size, K, dtype=index_type)
                    rows[:st["n"]] = st["rows"][order].to(index_type)
                    sizes = torch.full((nb,), float(batch_size))
                    sizes[-1] = st["n"] - (nb - 1) * batch_size
                    st["epoch"], st["block"] = e, (rows.view(nb, batch_size, K), sizes)
                take = min(nb - b, t0 + chunk - t)
                block, sizes = st["block"]
                out[i, t - t0:t - t0 + take] = block[b:b + take]
                n_out[i, t - t0:t - t0 + take] = sizes[b:b + take]
                t += take
        return out.to(device), n_out.to(device)

    live = list(range(S))                                 # the streams whose columns are in W
    place = {i: (st["start"], st["stop"]) for i, st in enumerate(streams)}

    def stream_of_columns() -> torch.Tensor:
        """Each column of W: the position of its stream among the live ones."""
        return torch.tensor([k for k, i in enumerate(live) for _ in range(place[i][1] - place[i][0])],
                            device=device)

    col_stream = stream_of_columns()
    positions = torch.arange(batch_size, device=device, dtype=dt)[:, None]

    records: list[dict[int, torch.Tensor]] = [{} for _ in jobs]
    m, v = torch.zeros_like(W), torch.zeros_like(W)
    b1, b2, eps = 0.9, 0.999, 1e-8

    def by_pair_chunk(sched, counts):
        """This chunk's steps for the live streams: the pair ids of each step's batches (steps x live
        streams * batch), each column's batch weights (steps x C x batch: 1/n for the n pairs of its
        stream's batch, 0 for padding), and the columns per live stream if all have the same."""
        at = torch.tensor(live)
        ids = sched[at, :, :, 0].long().permute(1, 0, 2).reshape(chunk, -1).contiguous()
        n = counts[at]                                                  # live x steps
        w = (positions.view(1, 1, -1) < n[:, :, None]).to(dt) / n.clamp(min=1)[:, :, None]
        widths_live = {place[i][1] - place[i][0] for i in live}
        return ids, w[col_stream].permute(1, 0, 2).contiguous(), (widths_live.pop() if len(widths_live) == 1 else 0)

    margins_col, logistic_col = margins[:, None], logistic[:, None]
    FT = None if by_pair else F.T.contiguous()
    for t in range(steps):
        if t % chunk == 0:
            sched, counts = schedule(t)
            per_chunk = None
        if by_pair:
            if per_chunk is None:                                       # a new chunk, or streams left
                per_chunk = by_pair_chunk(sched, counts)
            ids_of, weight_of, width = per_chunk
            L = len(live)
            batch = torch.index_select(delta, 0, ids_of[t % chunk], out=buffer[:L * batch_size]).view(L, batch_size, -1)
            Wc = W.T                                                        # C x D, contiguous
            if L == 1:
                sT = Wc @ batch[0].T                                        # C x batch
            elif width:
                sT = torch.bmm(Wc.view(L, width, -1), batch.transpose(1, 2)).view(-1, batch_size)
            else:
                sT = torch.cat([Wc[slice(*place[i])] @ batch[k].T for k, i in enumerate(live)])
            slopeT = _slope(sT, loss, margins_col, logistic_col) * weight_of[t % chunk]
            if L == 1:
                gT = slopeT @ batch[0]
            elif width:
                gT = torch.bmm(slopeT.view(L, width, batch_size), batch).view(-1, batch.shape[-1])
            else:
                gT = torch.cat([slopeT[slice(*place[i])] @ batch[k] for k, i in enumerate(live)])
            g = gT.T
        else:
            n_now = counts[live, t % chunk]
            weight = (positions < n_now).to(dt) / n_now.clamp(min=1)  # batch x live streams
            b_rows, w_rows = sched[live, t % chunk, :, 0].long(), sched[live, t % chunk, :, 1].long()
            b_idx, w_idx = b_rows[col_stream].T, w_rows[col_stream].T          # batch x C: each column's own batch
            # the products' forms, by measurement (1 thread, 1,152 features): with few columns W^T F^T
            # and coef^T F (920 rows, 6 columns: 0.17 + 0.18 ms against 0.28 + 0.27 for F W and F^T
            # coef; W^T times a transposed view of F took 1.4 ms), with 96 columns F W and F^T coef
            # (1.0 + 1.0 against 1.3 + 1.2)
            narrow = W.shape[1] <= 32
            d = (W.T @ FT).T if narrow else F @ W                               # rows x C
            s = d.gather(0, w_idx) - d.gather(0, b_idx)                         # batch x C
            slope = _slope(s, loss, margins, logistic) * weight[:, col_stream]
            coef = torch.zeros(n_rows, W.shape[1], dtype=dt, device=device)
            coef.scatter_add_(0, w_idx, slope)
            coef.scatter_add_(0, b_idx, -slope)
            g = (coef.T @ F).T if narrow else FT @ coef                         # D x C
        if pulled:
            g = g + pull * (W - anchors)                                    # as _fit_pairs: g += 2 l2 (w - l2_to)
        g = g * mask
        tt = t + 1                                                          # Adam, as _Adam does per column
        m.mul_(b1).add_(g, alpha=1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (v.sqrt() / (1 - b2 ** tt) ** 0.5).add_(eps)
        W.addcdiv_(m, denom * (1 - b1 ** tt) / lrs, value=-1.0)
        if floor is not None:
            torch.maximum(W, floor, out=W)
        elif projected[0]:
            W.clamp_(min=0)
        for i, epoch in ends.get(t, ()):                                   # epochs that ended with this step
            lo_stream = place[i][0]
            for k in streams[i]["jobs"]:
                if epoch in jobs[k].job.checkpoints:
                    lo = lo_stream + int(cols[k] - cols[streams[i]["jobs"][0]])
                    records[k][epoch] = W[:, lo:lo + widths[k]].T.clone().cpu()
        still = [i for i in live if streams[i]["steps"] > t + 1]
        width_still = sum(place[i][1] - place[i][0] for i in still)
        if still and len(still) < len(live) and (by_pair or 2 * width_still <= W.shape[1]):
            # drop finished streams from the products: on pair differences at once (each costs its
            # own gather and products), over the rows once they hold half the columns (a stream of
            # a few pairs, e.g. one rater's, ends long before the pooled one)
            keep = torch.cat([torch.arange(*place[i]) for i in still]).to(device)
            W, m, v, mask = (lay(x[:, keep]) for x in (W, m, v, mask))
            lrs, margins, logistic = lrs[keep], margins[keep], logistic[keep]
            if pulled:
                pull, anchors = pull[:, keep], lay(anchors[:, keep])
            floor = None if floor is None else floor[:, keep]
            at_col = 0
            for i in still:
                width = place[i][1] - place[i][0]
                place[i], at_col = (at_col, at_col + width), at_col + width
            live = still
            col_stream = stream_of_columns()
            margins_col, logistic_col, per_chunk = margins[:, None], logistic[:, None], None
    return [torch.stack([rec[e] for e in r.job.checkpoints]) for rec, r in zip(records, jobs)]


def early_stopped(weights_by_epoch: torch.Tensor, features: torch.Tensor, val_pairs: Optional[torch.Tensor], *,
                  loss: str = DEFAULTS.loss, margin: float = DEFAULTS.margin, patience: int = DEFAULTS.patience,
                  l2: float = 0.0, l2_to: Optional[torch.Tensor] = None,
                  initial_weights: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, int, int]:
    """The weights :func:`fit_pairs`' early stopping keeps, chosen from weights recorded every epoch.

    ``weights_by_epoch`` is ``E x D``: row ``e - 1`` the weights after epoch ``e``
    (a :func:`fit_many` column with checkpoints ``1..E``). As ``_fit_pairs`` does, each
    epoch's validation loss (:func:`pair_loss` on ``val_pairs``, plus ``l2 * ||w - l2_to||^2``
    when both are given) is compared with the best so far; an epoch improves when its loss
    is below the best minus 1e-9, and after ``patience`` epochs without improvement training
    would have stopped. Without validation pairs the last epoch is kept.

    Returns ``(weights, best_epoch, epochs_run)``: ``epochs_run`` is the length of the
    history ``fit_pairs`` would have recorded. A best epoch of 0 (no finite validation
    loss) returns ``initial_weights`` (required then), as ``fit_pairs`` does.
    """
    W = torch.as_tensor(weights_by_epoch)
    if W.ndim != 2 or W.shape[0] < 1:
        raise ValueError("weights_by_epoch must be an E x D tensor, E >= 1")
    epochs = W.shape[0]
    if val_pairs is None or len(val_pairs) == 0:
        return W[-1].clone(), epochs, epochs
    if patience < 1:
        raise ValueError("patience must be >= 1")
    val = torch.as_tensor(val_pairs).to(torch.long)
    used, inverse = torch.unique(val.flatten(), return_inverse=True)
    inverse = inverse.view(-1, 2)
    dt = compute_dtype(features)
    Wf = W.to(dt)
    d = features[used].to(dt) @ Wf.T                            # rows x E
    s = d[inverse[:, 1]] - d[inverse[:, 0]]                     # pairs x E
    if loss == "margin":
        losses = torch.clamp(margin - s, min=0).mean(dim=0)
    elif loss == "logistic":
        losses = torch.nn.functional.softplus(-s / margin).mean(dim=0)
    else:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    values = [float(x) for x in losses]
    if l2_to is not None and l2 > 0:
        anchor = l2_to.detach().flatten().to(dt)
        values = [value + float(l2 * torch.sum((Wf[e] - anchor) ** 2)) for e, value in enumerate(values)]
    best, best_epoch, stale = float("inf"), 0, 0
    for epoch, value in enumerate(values, start=1):
        if value < best - 1e-9:
            best, best_epoch, stale = value, epoch, 0
        else:
            stale += 1
            if stale >= patience:
                break
    else:
        epoch = epochs
    if best_epoch == 0:
        if initial_weights is None:
            raise ValueError("no epoch improved on an infinite validation loss: pass initial_weights")
        return torch.as_tensor(initial_weights).detach().flatten().clone(), 0, epoch
    return W[best_epoch - 1].clone(), best_epoch, epoch
