"""Fine-tuning the linear weights of LPIPS on human rankings (the CLPIPS method).

Only the per-layer linear weights ``w`` are trained. Since ``d(t, c) = phi(t, c) . w``, a pair (target
``t``, candidate ``b`` ranked more similar than ``v``) has the gap ``s = (phi(t, v) - phi(t, b)) . w``, > 0
when the metric agrees. Loss ``"margin"`` (the paper's, ``max(0, margin - s)``) or ``"logistic"``
(Bradley-Terry, ``log(1 + exp(-s / margin))``). Adam on seeded shuffled batches, then ``w >= 0``
(``project``: ``d >= 0`` as in LPIPS); the validation loss (held-out targets, never test targets) picks
the epoch and stops the fit after ``patience`` epochs without improvement.

One trainer, :class:`_Lockstep`, trains many weight vectors as the columns of one ``D x C`` matrix.
:func:`fit_pairs` is its one-column case; :func:`fit_many` gives it every column of a run, in groups
that :mod:`clpips.parallel` runs side by side.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import itertools
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from clpips import parallel
from clpips.choices import LOSSES  # the one list; the CLI reads it too
from clpips.datasets import split_by_target
from clpips.defaults import DEFAULTS
from clpips.features import pair_features
from clpips.model import CHANNELS, CLPIPS, initial_weight_vector, layer_slices
from clpips.moved import moved_name
from clpips.pairs import ranking_pair_positions


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
        """Per-layer sum, mean and share of zero weights, before and after (deprecated: it goes after 0.1;
        :func:`clpips.book.layer_weights.layer_summary` of ``channel_weights`` is the book's per-layer table)."""
        warnings.warn("FitResult.layer_weights() is deprecated and goes after 0.1: use clpips.book.layer_weights."
                      "layer_summary(channel_weights(result.initial_weights, result.weights))",
                      DeprecationWarning, stacklevel=2)
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
    """True at the weights of the trained ``layers`` (:func:`parse_layers`), layer by layer."""
    slices = layer_slices(net)
    mask = torch.zeros(slices[-1].stop, dtype=torch.bool)
    for layer in parse_layers(layers, len(slices)):
        mask[slices[layer]] = True
    return mask


def pair_losses(s: torch.Tensor, loss: str, margin: float) -> torch.Tensor:
    """Each pair's loss, from its distance gap ``s = d(worse) - d(better)``."""
    if loss == "margin":
        return torch.clamp(margin - s, min=0)
    if loss == "logistic":
        return torch.nn.functional.softplus(-s / margin)
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def pair_loss(s: torch.Tensor, loss: str, margin: float) -> torch.Tensor:
    """Mean loss of distance gaps ``s = d(worse) - d(better)``."""
    return pair_losses(s, loss, margin).mean()


def _slope(s: torch.Tensor, loss: str, margins: torch.Tensor, logistic: torch.Tensor) -> torch.Tensor:
    """d loss_i / d s_i of each pair, every column with its own margin (``"mixed"``: ``logistic`` per column)."""
    if loss == "margin":
        return -(s <= margins).to(s.dtype)
    if loss == "logistic":
        return -torch.sigmoid(-s / margins) / margins
    return torch.where(logistic, -torch.sigmoid(-s / margins) / margins, -(s <= margins).to(s.dtype))


@contextlib.contextmanager
def torch_threads(n: Optional[int]) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``, then restore (``None``: leave as is). A fit multiplies
    a ~1,000 x 1,152 matrix thousands of times: one thread is faster than several contending for shared cores."""
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
    """float64 for float64 features, else float32. The project's features are float32; the tests fit in
    float64 to compare two ways of computing a fit without a tolerance tied to one CPU's summation order."""
    return torch.float64 if features.dtype == torch.float64 else torch.float32


# -- the settings of a fit --------------------------------------------------------------------------------

@dataclass(frozen=True)
class FitSettings:
    """The options of a fit, with their defaults (:mod:`clpips.defaults`). The functions take them as
    keywords; :func:`fit_many` takes those of :data:`CALL_OPTIONS` (the rest are each job's, :class:`GridJob`)."""

    net: str = DEFAULTS.net                       #: backbone (its channels give the weight vector's length)
    loss: str = DEFAULTS.loss                     #: :data:`LOSSES`
    margin: float = DEFAULTS.margin               #: the loss's margin (the logistic loss's temperature)
    lr: float = DEFAULTS.lr                       #: Adam's learning rate
    batch_size: int = DEFAULTS.batch_size         #: pairs per step
    epochs: int = DEFAULTS.epochs                 #: the most epochs
    patience: int = DEFAULTS.patience             #: epochs without a better validation loss before stopping
    layers: str | Sequence[int] = DEFAULTS.layers   #: the trained layers (:func:`parse_layers`)
    project: bool = DEFAULTS.project              #: project onto w >= 0 after every step
    seed: int = DEFAULTS.seed                     #: seed of the shuffles
    l2_to: Optional[torch.Tensor] = None          #: with ``l2``: the penalty ``l2 * ||w - l2_to||^2``
    l2: float = 0.0
    device: str = DEFAULTS.device                 #: torch device of the fit
    init: str = "given"                           #: what the starting weights are (recorded in the config)
    threads: Optional[int] = 1                    #: torch threads during the fit (:func:`torch_threads`)


#: the options of a :func:`fit_many` call (the others are each job's, :class:`GridJob`)
CALL_OPTIONS = ("net", "loss", "batch_size", "layers", "project", "device", "threads")
_FIT_FIELDS = tuple(f.name for f in dataclasses.fields(FitSettings))


def _settings(caller: str, options: Mapping[str, Any], allowed: Sequence[str], **defaults) -> FitSettings:
    """:class:`FitSettings` from a call's keyword ``options`` (each one of ``allowed``)."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"{caller}() got unknown options {unknown}; it takes {', '.join(allowed)}")
    return FitSettings(**{**defaults, **options})


def _takes_settings(allowed: Sequence[str], **defaults) -> Callable:
    """Show the :class:`FitSettings` fields a function takes as ``**options`` as its keyword parameters
    (``help()``, ``inspect.signature``), with their defaults."""
    fields = {f.name: f for f in dataclasses.fields(FitSettings)}

    def decorate(fn: Callable) -> Callable:
        signature = inspect.signature(fn)
        named = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        named += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=fields[name].type,
                                    default=defaults.get(name, fields[name].default)) for name in allowed]
        fn.__signature__ = signature.replace(parameters=named)
        return fn
    return decorate


def _check_call(s: FitSettings, features: torch.Tensor, initial_weights: torch.Tensor) -> None:
    """A call's own settings and tensors (each job's are :func:`_resolve`'s): a ValueError naming what is wrong."""
    if s.net not in CHANNELS:
        raise ValueError(f"net must be one of {sorted(CHANNELS)}, got {s.net!r}")
    if s.batch_size < 1 or s.patience < 1:
        raise ValueError(f"batch_size and patience must be >= 1, got {s.batch_size!r} and {s.patience!r}")
    dim = sum(CHANNELS[s.net])
    if features.ndim != 2 or features.shape[1] != dim or initial_weights.numel() != dim:
        raise ValueError(f"expected M x {dim} features and {dim} weights for net={s.net!r}")


# -- one fit ---------------------------------------------------------------------------------------------

class Adam:
    """Adam on the columns of a ``D x C`` matrix: ``torch.optim.Adam`` with its defaults on each column (tested),
    with one rate (a float) or ``lrs[c]`` (a tensor). The columns share the step count. The two forms round
    differently in the last bit: one rate steps ``m / denom * (lr / (1 - b1^t))``, as a single fit always has;
    per column ``m / (denom * (1 - b1^t) / lr)``, as the batched fits have."""

    def __init__(self, weights: torch.Tensor, lrs: torch.Tensor | float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.W, self.lrs, (self.b1, self.b2), self.eps, self.t = weights, lrs, betas, eps, 0
        self.m, self.v = torch.zeros_like(weights), torch.zeros_like(weights)

    def step(self, g: torch.Tensor) -> None:
        """One step on the gradients ``g`` (``D x C``), in place on ``W``."""
        self.t += 1
        self.m.mul_(self.b1).add_(g, alpha=1 - self.b1)
        self.v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
        denom = (self.v.sqrt() / (1 - self.b2 ** self.t) ** 0.5).add_(self.eps)
        if isinstance(self.lrs, float):
            self.W.addcdiv_(self.m, denom, value=-self.lrs / (1 - self.b1 ** self.t))
        else:
            self.W.addcdiv_(self.m, denom * (1 - self.b1 ** self.t) / self.lrs, value=-1.0)

    def keep(self, columns: torch.Tensor, lay: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Keep only ``columns`` (their weights and moments), in the layout ``lay`` makes."""
        self.W, self.m, self.v = (lay(x[:, columns]) for x in (self.W, self.m, self.v))
        self.lrs = self.lrs if isinstance(self.lrs, float) else self.lrs[columns]


@_takes_settings(_FIT_FIELDS)
def fit_pairs(features: torch.Tensor, train_pairs: torch.Tensor, val_pairs: Optional[torch.Tensor],
              initial_weights: torch.Tensor, **options) -> FitResult:
    """Train the weight vector (D, from ``initial_weights``) on ranked pairs of the rows of ``features``
    (M x D, ``phi(target, candidate)`` a row): ``train_pairs`` and ``val_pairs`` are N x 2 rows
    ``(better, worse)`` (``val_pairs`` None: every epoch runs, the last is kept). ``options``: :class:`FitSettings`.

    :func:`fit_many`'s trainer with one column, its products a vector's (:meth:`_Lockstep._gradient_of_vector`)
    and Adam's one-rate form: the numbers a single fit has always given, bit for bit (a one-column
    :func:`fit_many` equals them up to float rounding)."""
    s = _settings("fit_pairs", options, _FIT_FIELDS)
    _check_call(s, features, initial_weights)
    if val_pairs is not None and (val_pairs.ndim != 2 or val_pairs.shape[1] != 2):
        raise ValueError("val_pairs must be an N x 2 tensor of (better, worse) rows")
    t0 = time.perf_counter()
    job = _resolve(GridJob(train_pairs, (s.margin,), (s.lr,), (s.epochs,), s.seed, initial_weights, s.layers,
                           s.project, s.loss, s.l2, s.l2_to), initial_weights, s, features)
    stopping = _EarlyStopping(features, train_pairs, val_pairs, initial_weights, s)
    with torch_threads(s.threads):
        _Lockstep(features, [job], s.batch_size, s.device, [stopping], one_vector=True).run()
    return stopping.result(s, time.perf_counter() - t0)


@dataclass
class Patience:
    """Early stopping's rule, written once (:func:`fit_pairs` applies it as it trains,
    :func:`clpips.book.batched_fits.early_stopped` to recorded epochs): an epoch improves when its
    validation loss is below the best so far minus 1e-9; ``patience`` epochs in a row without an
    improvement stop. ``best_epoch`` 0: no epoch improved on an infinite loss."""

    patience: int
    best: float = math.inf
    best_epoch: int = 0
    stale: int = 0

    def record(self, epoch: int, value: float) -> bool:
        """Score epoch ``epoch`` by its validation loss ``value``; False: stop here."""
        if value < self.best - 1e-9:
            self.best, self.best_epoch, self.stale = value, epoch, 0
        else:
            self.stale += 1
        return self.stale < self.patience


class _EarlyStopping:
    """:func:`fit_pairs`' watch after every epoch: the loss (with the penalty) and pair accuracy on the
    training and validation pairs; keeps the best epoch (the lowest validation loss; without validation
    pairs, the last) and ends the fit after ``patience`` epochs without an improvement of more than 1e-9."""

    def __init__(self, features, train_pairs, val_pairs, initial_weights, s: FitSettings):
        dt = compute_dtype(features)
        every = features.to(s.device, dt).contiguous()
        used, inverse = torch.unique(train_pairs.to(s.device, torch.long).flatten(), return_inverse=True)
        self.train = (every[used].contiguous(), inverse.view(-1, 2))   # the rows the training pairs use
        self.val = (every, val_pairs.to(s.device, torch.long)) if val_pairs is not None and len(val_pairs) else None
        self.anchor = s.l2_to.detach().flatten().to(s.device, dt) if s.l2_to is not None and s.l2 > 0 else None
        self.w0 = initial_weights.detach().flatten().to(s.device, dt)
        self.l2, self.loss, self.margin = s.l2, s.loss, s.margin
        self.rule, self.best, self.rows = Patience(s.patience), (0, self.w0.clone()), []
        self.n_train = int(train_pairs.shape[0])

    def score(self, rows: torch.Tensor, pairs: torch.Tensor, w: torch.Tensor) -> tuple[float, float]:
        """The loss (with the penalty) and the pair accuracy of ``w`` on ``pairs`` of ``rows``."""
        d = rows @ w
        s = d[pairs[:, 1]] - d[pairs[:, 0]]
        penalty = float(self.l2 * torch.sum((w - self.anchor) ** 2)) if self.anchor is not None else 0.0
        return float(pair_loss(s, self.loss, self.margin)) + penalty, float((s > 0).float().mean())

    def __call__(self, epoch: int, block: torch.Tensor) -> bool:
        """Record epoch ``epoch`` whose weights are ``block`` (``D x 1``); False ends the fit."""
        w = block[:, 0]
        train_loss, train_acc = self.score(*self.train, w)
        row = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_acc}
        self.rows.append(row)
        if self.val is None:
            self.best = (epoch, w.clone())
            return True
        val_loss, val_acc = self.score(*self.val, w)
        row.update(val_loss=val_loss, val_accuracy=val_acc)
        go_on = self.rule.record(epoch, val_loss)
        if self.rule.best_epoch == epoch:
            self.best = (epoch, w.clone())
        return go_on

    def result(self, s: FitSettings, seconds: float) -> FitResult:
        config = {"net": s.net, "loss": s.loss, "margin": s.margin, "lr": s.lr, "batch_size": s.batch_size,
                  "epochs": s.epochs, "patience": s.patience, "layers": parse_layers(s.layers, len(CHANNELS[s.net])),
                  "project": s.project, "seed": s.seed, "l2": s.l2, "init": s.init, "n_train_pairs": self.n_train,
                  "n_val_pairs": int(self.val[1].shape[0]) if self.val is not None else 0}
        return FitResult(weights=self.best[1].cpu(), initial_weights=self.w0.cpu(), history=pd.DataFrame(self.rows),
                         best_epoch=self.best[0], config=config, seconds=seconds)


def pair_index(features, pairs: pd.DataFrame) -> torch.Tensor:
    """``N x 2`` rows (better, worse) of ``features`` for a pair table (:func:`clpips.pairs.ranking_pairs`)."""
    better = features.rows(pairs["target"], pairs["better"])
    worse = features.rows(pairs["target"], pairs["worse"])
    return torch.stack([better, worse], dim=1)


def ranking_pair_index(features, table: pd.DataFrame) -> torch.Tensor:
    """``pair_index(features, ranking_pairs(table))`` (equal, tested) without building the pair table: each
    pair takes its rows by position (:func:`clpips.pairs.ranking_pair_positions`). Called for every side of
    every fold: 39 ms a mur92 training side through the pair table, 6.6 ms this way."""
    rows = table.reset_index(drop=True)
    if rows.empty:
        return torch.zeros(0, 2, dtype=torch.int64)
    better, worse = ranking_pair_positions(rows)
    found = features.rows(rows["target"], rows["candidate"])
    return torch.stack([found[torch.from_numpy(better)], found[torch.from_numpy(worse)]], dim=1)


@_takes_settings(_FIT_FIELDS, init=DEFAULTS.init)
def fit(dataset, table: Optional[pd.DataFrame] = None, *, val_size: float = 0.2, rater: Optional[object] = None,
        progress: bool = True, features=None, **options) -> FitResult:
    """Fit CLPIPS weights on ``table``'s rankings (default: all; pass a training side, never test targets),
    ``rater``'s only if given (a personal model), holding a ``val_size`` share of the targets out for early
    stopping (0: all epochs run). ``features``: precomputed pair features (else the on-disk cache's).
    ``options``: :class:`FitSettings` (``init``: the starting weights, :func:`clpips.model.initial_weight_vector`).

    >>> train.fit(data, datasets.split_by_target(data.table)[0]).metric().save_weights("w.pth")  # doctest: +SKIP
    """
    s = _settings("fit", options, _FIT_FIELDS, init=DEFAULTS.init)
    table = dataset.table if table is None else table
    fit_rows, val_rows = fit_and_validation_rows(table, rater, val_size, s.seed)
    table = table if rater is None else table[table["rater"] == rater]
    if features is None:
        features = pair_features_for(dataset, table, net=s.net, device=s.device, progress=progress)
    train_pairs = ranking_pair_index(features, fit_rows)
    val_pairs = ranking_pair_index(features, val_rows) if len(val_rows) else None
    result = fit_pairs(features.matrix, train_pairs, val_pairs, initial_weight_vector(s.net, s.init, s.seed),
                       **{name: getattr(s, name) for name in _FIT_FIELDS})
    result.config.update(val_size=val_size, rater=rater, n_train_targets=int(fit_rows["target"].nunique()),
                         n_val_targets=int(val_rows["target"].nunique()))
    return result


def fit_and_validation_rows(table: pd.DataFrame, rater: Optional[object] = None, val_size: float = 0.2,
                            seed: int = DEFAULTS.seed) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rankings :func:`fit` trains on and those it stops early on: ``rater``'s rows (all, if None),
    a ``val_size`` share of their targets held out (``val_size=0``: no validation rows)."""
    rows = table if rater is None else table[table["rater"] == rater]
    if rows.empty:
        raise ValueError(f"rater {rater!r} has no rankings in this table")
    if val_size > 0:
        return split_by_target(rows, test_size=val_size, seed=seed)
    return rows, rows.iloc[:0]


def pair_features_for(dataset, table: pd.DataFrame, net: str = DEFAULTS.net, device: str = DEFAULTS.device,
                      progress: bool = True):
    """Pair features of every (target, candidate) in a ranking table (cached on disk)."""
    keys = table[["target", "candidate"]].drop_duplicates()
    return pair_features(dataset, list(keys.itertuples(index=False, name=None)), net=net, device=device,
                         progress=progress)


# -- many fits at once -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class GridJob:
    """One training set of :func:`fit_many`: its pairs, a grid of (margin, lr) columns, the epochs to record.
    The optional fields override the call's value of the same name for this job (None: the call's)."""

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


@_takes_settings(CALL_OPTIONS)
def fit_many(features: torch.Tensor, jobs: Sequence[GridJob], initial_weights: torch.Tensor, *,
             max_columns: int = 96, workers: int = 1, executor: Optional[Any] = None, **options) -> list[torch.Tensor]:
    """Train every (job, margin, lr) column, each as its own :func:`fit_pairs` would: column ``b`` of a job after
    ``e`` epochs is ``fit_pairs(features, job.pairs, None, w0, margin=job.margins[b], lr=job.lrs[b], epochs=e,
    seed=job.seed, ...)``, the job's fields overriding the call's ``options`` (:data:`CALL_OPTIONS`).
    Returns one ``len(job.checkpoints) x len(job.margins) x D`` tensor per job
    (:func:`clpips.book.batched_fits.early_stopped` picks a column's epoch).

    The columns step in lockstep as one ``D x C`` matrix (:class:`_Lockstep`). Measured on 2 cores (920 rows,
    D=1152): a step of 6 columns 1.0 ms, of 96 columns 2.7 ms; so groups of at most ``max_columns``
    (:func:`_groups`), run in ``workers`` local processes (CPU only) or on ``executor`` (e.g. Dask's,
    :mod:`clpips.parallel`) with the same results anywhere; ``threads``: each group's (None: this process's).
    """
    s = _settings("fit_many", options, CALL_OPTIONS)
    _check_call(s, features, initial_weights)
    resolved = [_resolve(job, initial_weights, s, features) for job in jobs]
    groups = _groups(resolved, max_columns)
    groups.sort(key=lambda group: -sum(len(resolved[i].job.pairs) for i in group))   # the longest start first
    threads = s.threads if s.threads is not None else torch.get_num_threads()
    tasks = [(*_compact(features, [resolved[i] for i in group]), s.batch_size, s.device, threads) for group in groups]
    local = workers if torch.device(s.device).type == "cpu" else 1
    out: list[Optional[torch.Tensor]] = [None] * len(jobs)
    for group, weights in zip(groups, parallel.run(_fit_group, tasks, workers=local, executor=executor,
                                                   threads=threads)):
        for i, w in zip(group, weights):
            out[i] = w
    return out


@dataclass(frozen=True)
class _Job:
    """A :class:`GridJob` with the call's defaults filled in."""

    job: GridJob
    w0: torch.Tensor
    trainable: torch.Tensor
    project: bool
    loss: str
    anchor: Optional[torch.Tensor] = None     #: l2_to where the job's l2 penalty applies


def _resolve(job: GridJob, initial_weights: torch.Tensor, s: FitSettings, features: torch.Tensor) -> _Job:
    """``job`` checked (the one validator of a job's inputs), with the call's settings ``s`` where it names none."""
    dim = sum(CHANNELS[s.net])
    margins, lrs = torch.as_tensor(job.margins, dtype=torch.float64), torch.as_tensor(job.lrs, dtype=torch.float64)
    if margins.ndim != 1 or margins.numel() == 0 or margins.shape != lrs.shape:
        raise ValueError("a job's margins and lrs must be equally long, non-empty sequences")
    if not (torch.isfinite(margins).all() and torch.isfinite(lrs).all() and (margins > 0).all()
            and (lrs > 0).all()):
        raise ValueError("every margin and learning rate must be finite and > 0")
    if not job.checkpoints or min(job.checkpoints) < 1:
        raise ValueError("checkpoints (epochs) must be epoch counts >= 1")
    if job.pairs.ndim != 2 or job.pairs.shape[1] != 2 or job.pairs.shape[0] == 0:
        raise ValueError("the training pairs must be a non-empty N x 2 tensor of (better, worse) rows")
    loss = s.loss if job.loss is None else job.loss
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    w0 = initial_weights if job.initial_weights is None else job.initial_weights
    if w0.numel() != dim or not torch.isfinite(torch.as_tensor(w0)).all():
        raise ValueError(f"initial weights must be {dim} finite numbers for net={s.net!r}")
    if not (math.isfinite(job.l2) and job.l2 >= 0):
        raise ValueError(f"l2 must be a finite number >= 0, got {job.l2!r}")
    anchor = None
    if job.l2_to is not None and job.l2 > 0:       # as fit_pairs: the penalty needs both
        anchor = torch.as_tensor(job.l2_to).detach().flatten().to(compute_dtype(features))
        if anchor.numel() != dim or not torch.isfinite(anchor).all():
            raise ValueError(f"l2_to must be {dim} finite numbers for net={s.net!r}")
    layers = s.layers if job.layers is None else job.layers
    return _Job(job, w0.detach().flatten(), _mask(tuple(parse_layers(layers, len(CHANNELS[s.net]))), s.net),
                bool(s.project if job.project is None else job.project), loss, anchor)


@functools.lru_cache(maxsize=64)
def _mask(layers: tuple[int, ...], net: str) -> torch.Tensor:
    """:func:`trainable_mask`, made once per layer set (a run's jobs share a few)."""
    return trainable_mask(layers, net)


def _same_shuffles(a: GridJob, b: GridJob) -> bool:
    """Whether two jobs draw the same shuffles (same seed and pairs): they can share one stream."""
    return a.seed == b.seed and (a.pairs is b.pairs or (a.pairs.shape == b.pairs.shape
                                                        and torch.equal(a.pairs, b.pairs)))


def _groups(jobs: Sequence[_Job], max_columns: int) -> list[list[int]]:
    """The jobs (their indices) in lockstep groups: jobs with the same shuffles side by side, so that a group
    shares them; a new group when the columns would pass ``max_columns``, or the group's rows grow past twice
    its largest job's. A step multiplies every row of its group, so jobs on other images (the split by
    image's folds) step apart: measured on mur92 by image (benchmarks/bench_protocol.py), 16 jobs on 5,300
    rows took 4x as long as the same jobs grouped by fold."""
    streams: list[list[int]] = []
    for i, r in enumerate(jobs):
        for members in streams:
            if _same_shuffles(jobs[members[0]].job, r.job):
                members.append(i)
                break
        else:
            streams.append([i])
    rows_of = {i: np.unique(jobs[i].job.pairs.numpy()) for i in range(len(jobs))}
    groups, current, width, union, largest = [], [], 0, np.zeros(0, dtype=np.int64), 0
    for i in (i for members in streams for i in members):
        grown = np.union1d(union, rows_of[i])
        big = max(largest, len(rows_of[i]))
        if current and (width + len(jobs[i].job.margins) > max_columns or len(grown) > 2 * big):
            groups.append(current)
            current, width, grown, big = [], 0, rows_of[i], len(rows_of[i])
        current.append(i)
        width += len(jobs[i].job.margins)
        union, largest = grown, big
    if current:
        groups.append(current)
    return groups


def _compact(features: torch.Tensor, jobs: Sequence[_Job]) -> tuple[torch.Tensor, list[_Job]]:
    """The rows of ``features`` that ``jobs`` use, and the jobs with their pairs re-indexed into them."""
    used = torch.unique(torch.cat([r.job.pairs.to(torch.long).flatten() for r in jobs]))
    moved = [dataclasses.replace(r, job=dataclasses.replace(r.job, pairs=torch.searchsorted(
        used, r.job.pairs.to(torch.long)))) for r in jobs]
    return features[used].contiguous(), moved


def _fit_group(features: torch.Tensor, jobs: Sequence[_Job], batch_size: int, device: str,
               threads: Optional[int]) -> list[torch.Tensor]:
    """One lockstep group, a task of :func:`clpips.parallel.run`: each job's weights at its checkpoints."""
    records = [_Checkpoints(r.job.checkpoints) for r in jobs]
    with torch_threads(threads):
        _Lockstep(features, jobs, batch_size, device, records).run()
    return [record.stacked() for record in records]


class _Checkpoints:
    """:func:`fit_many`'s watch of a job: its columns' weights after each of its checkpoint epochs."""

    def __init__(self, checkpoints: Sequence[int]):
        self.checkpoints, self.weights = tuple(checkpoints), {}

    def __call__(self, epoch: int, block: torch.Tensor) -> bool:
        if epoch in self.checkpoints:
            self.weights[epoch] = block.T.clone().cpu()
        return True

    def stacked(self) -> torch.Tensor:
        return torch.stack([self.weights[e] for e in self.checkpoints])


# -- the trainer -----------------------------------------------------------------------------------------

#: the most bytes of pair differences a lockstep group keeps (above it, it steps over its rows)
_PAIR_TABLE_BYTES = 2 ** 30


def steps_on_pairs(batch_size: int, streams: int, columns: int, rows: int) -> bool:
    """Whether a lockstep group steps on its batches' pair differences rather than over all its ``rows``:
    when ``2 * streams * batch_size <= rows * columns / streams``.

    A step over the rows multiplies every row by every column; a step on pairs gathers each stream's batch of
    differences (a gathered row costs about two rows of a product) for that stream's columns only. The rule
    is read off ``benchmarks/bench_paths.py`` (``make bench``), which times both ways on the shapes of the
    groups a book run makes and prints the rule's total time against the faster way's. The two ways sum in
    another order, so the rule decides a fit's last bits (``PROTOCOL_VERSION``)."""
    return 2 * streams * batch_size <= rows * columns / streams


@dataclass
class _Stream:
    """Jobs of a lockstep group with the same shuffles: their columns are ``start:stop`` of the weight matrix;
    ``rows``: each pair's (better, worse) rows, or its pair id; ``block``: this epoch's shuffled batches."""

    jobs: list[int]
    start: int
    stop: int
    seed: int
    rows: torch.Tensor
    n: int
    epochs: int
    batches: int = 0
    steps: int = 0
    gen: Optional[torch.Generator] = None
    epoch: int = -1
    block: Any = None


class _Lockstep:
    """Every column of ``jobs`` trained together; after each epoch of a job, ``watches[job](epoch, weights)``
    sees its columns' weights (``D x columns``) and may end its stream (False from all its jobs).

    A step takes the next batch of every stream (one seeded shuffle per epoch, padded to ``batch_size``
    with positions that weigh 0) and computes all columns in a fixed number of tensor operations, over
    all the group's rows (``d = F W``) or on the batches' pair differences (``F[worse] - F[better]``):
    the same numbers summed in another order (:func:`steps_on_pairs` chooses). ``one_vector``
    (:func:`fit_pairs`): a vector's products and Adam's one-rate form, so a single fit (chapter 03's)
    keeps its last bits.
    """

    chunk = 256                                           #: steps of the schedule drawn at a time

    def __init__(self, features, jobs: Sequence[_Job], batch_size: int, device: str, watches: Sequence[Callable],
                 one_vector: bool = False):
        # only the rows the jobs use take part in a step: re-index them compactly
        used, inverse = torch.unique(torch.cat([r.job.pairs.to(torch.long).flatten() for r in jobs]),
                                     return_inverse=True)
        self.dt, self.device, self.B = compute_dtype(features), device, batch_size
        self.jobs, self.watches, self.one_vector = jobs, watches, one_vector
        self.F = features[used].to(device, self.dt).contiguous()
        self.n_rows = self.F.shape[0]
        self.widths = [len(r.job.margins) for r in jobs]
        self.cols = np.cumsum([0, *self.widths])
        self._columns()
        self.streams = self._streams(inverse)
        self.by_pair = self._pair_table()
        self._layout()
        self._plan()

    def _per_column(self, values: Callable[[_Job], Sequence], dtype=None) -> torch.Tensor:
        """One value per column, from each job's ``values(job)`` (one per column)."""
        return torch.tensor([x for r in self.jobs for x in values(r)], dtype=dtype or self.dt, device=self.device)

    def _side_by_side(self, vector: Callable[[_Job], torch.Tensor]) -> torch.Tensor:
        """D x C: each job's ``vector(job)`` repeated over its columns."""
        return torch.cat([vector(r).to(self.device, self.dt)[:, None].expand(-1, w)
                          for r, w in zip(self.jobs, self.widths)], dim=1)

    def _columns(self) -> None:
        """Each column's margin, learning rate, loss, starting weights, trained mask, projection and pull."""
        jobs, widths = self.jobs, self.widths
        self.margins = self._per_column(lambda r: r.job.margins)
        self.lrs0 = self._per_column(lambda r: r.job.lrs)
        self.logistic = self._per_column(lambda r: [r.loss == "logistic"] * len(r.job.margins), torch.bool)
        self.W = self._side_by_side(lambda r: r.w0).contiguous()          # D x C
        self.mask = self._side_by_side(lambda r: r.trainable)
        self.projected = [r.project for r, w in zip(jobs, widths) for _ in range(w)]
        self.floor = None if all(self.projected) or not any(self.projected) else torch.tensor(
            [0.0 if p else -float("inf") for p in self.projected], dtype=self.dt, device=self.device)[None, :]
        self.loss = "mixed" if bool(self.logistic.any()) and not bool(self.logistic.all()) else (
            "logistic" if bool(self.logistic.all()) else "margin")
        self.pulled = any(r.anchor is not None for r in jobs)
        if self.pulled:  # 2 l2 per column (0 where a job has no penalty) and the weights each column is pulled to
            self.pull = self._per_column(lambda r: [2 * r.job.l2 if r.anchor is not None else 0.0]
                                         * len(r.job.margins))[None, :]
            self.anchors = self._side_by_side(lambda r: r.anchor if r.anchor is not None else r.w0).contiguous()

    def _streams(self, inverse: torch.Tensor) -> list[_Stream]:
        """Consecutive jobs with the same shuffles (:func:`_groups` puts them side by side) share one."""
        streams: list[_Stream] = []
        offset = 0
        for j, r in enumerate(self.jobs):
            n = r.job.pairs.shape[0]
            rows = inverse[offset:offset + 2 * n].view(-1, 2)
            offset += 2 * n
            prev = streams[-1] if streams else None
            if prev is not None and _same_shuffles(self.jobs[prev.jobs[0]].job, r.job):
                prev.jobs.append(j)
                prev.stop = int(self.cols[j + 1])
                prev.epochs = max(prev.epochs, max(r.job.checkpoints))
                continue
            streams.append(_Stream([j], int(self.cols[j]), int(self.cols[j + 1]), r.job.seed, rows, n,
                                   max(r.job.checkpoints)))
        return streams

    def _pair_table(self) -> bool:
        """Whether to step on pair differences (:func:`steps_on_pairs`, within :data:`_PAIR_TABLE_BYTES`);
        if so, the table ``delta`` of the group's distinct pairs' differences, each stream's pairs as ids."""
        B, n_rows, streams = self.B, self.n_rows, self.streams
        self.largest = n_rows
        if self.one_vector or not steps_on_pairs(B, len(streams), self.W.shape[1], n_rows):
            return False
        codes = torch.cat([st.rows[:, 0] * n_rows + st.rows[:, 1] for st in streams])
        distinct, ids = torch.unique(codes, return_inverse=True)
        if len(distinct) * self.F.shape[1] * 4 > _PAIR_TABLE_BYTES:
            return False
        self.delta = self.F.index_select(0, distinct % n_rows) - self.F.index_select(0, distinct // n_rows)
        self.buffer = torch.empty(len(streams) * B, self.F.shape[1], dtype=self.dt, device=self.device)
        at = 0
        for st in streams:
            st.rows, at = ids[at:at + st.n][:, None], at + st.n
        self.largest = len(distinct)
        return True

    def lay(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (D x C) in the layout of the step's products: on pairs, each column's D numbers side by side
        (C x D seen as D x C), since products with a gathered batch are fast only on contiguous column blocks
        (measured, 1 thread, 256 x 1152 batch, 6 columns: 51 us against 489 us on a transposed view)."""
        return x.T.contiguous().T if self.by_pair else x.contiguous()

    def _layout(self) -> None:
        self.adam = Adam(self.lay(self.W), float(self.jobs[0].job.lrs[0]) if self.one_vector else self.lrs0)
        self.mask = self.lay(self.mask)
        self.all_trainable = bool(self.mask.all())
        if self.pulled:
            self.anchors = self.lay(self.anchors)
        self.FT = None if self.by_pair else self.F.T.contiguous()
        self.margins_col, self.logistic_col = self.margins[:, None], self.logistic[:, None]
        self.positions = torch.arange(self.B, device=self.device, dtype=self.dt)[:, None]

    def _plan(self) -> None:
        """Each stream's batches, steps and generator; the steps where epochs end; the live streams."""
        self.K = 1 if self.by_pair else 2
        self.index_type = torch.int16 if self.largest <= 2 ** 15 else torch.int32   # a small schedule in memory
        self.ends: dict[int, list[tuple[int, int]]] = {}          # step -> (stream, epoch) whose epoch ends there
        for i, st in enumerate(self.streams):
            st.batches = -(-st.n // self.B)
            st.steps = st.epochs * st.batches
            st.gen = torch.Generator().manual_seed(int(st.seed))
            for e in range(st.epochs):
                self.ends.setdefault((e + 1) * st.batches - 1, []).append((i, e + 1))
        self.live = list(range(len(self.streams)))                # the streams whose columns are in W
        self.place = {i: (st.start, st.stop) for i, st in enumerate(self.streams)}
        self.col_stream = self._stream_of_columns()

    def _stream_of_columns(self) -> torch.Tensor:
        """Each column of W: the position of its stream among the live ones."""
        return torch.tensor([k for k, i in enumerate(self.live) for _ in range(self.place[i][1] - self.place[i][0])],
                            device=self.device)

    def _schedule(self, t0: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Steps t0 .. t0 + chunk of every stream: its rows (streams x steps x batch x K, padded with 0)
        and the batch sizes (0 once a stream has ended)."""
        B, chunk = self.B, self.chunk
        out = torch.zeros(len(self.streams), chunk, B, self.K, dtype=self.index_type)
        n_out = torch.zeros(len(self.streams), chunk)
        for i, st in enumerate(self.streams):
            t, nb = t0, st.batches
            while t < min(t0 + chunk, st.steps):
                e, b = divmod(t, nb)
                if st.epoch != e:                      # the next epoch's shuffle, one randperm per epoch
                    order = torch.randperm(st.n, generator=st.gen)
                    rows = torch.zeros(nb * B, self.K, dtype=self.index_type)
                    rows[:st.n] = st.rows[order].to(self.index_type)
                    sizes = torch.full((nb,), float(B))
                    sizes[-1] = st.n - (nb - 1) * B
                    st.epoch, st.block = e, (rows.view(nb, B, self.K), sizes)
                take = min(nb - b, t0 + chunk - t)
                block, sizes = st.block
                out[i, t - t0:t - t0 + take] = block[b:b + take]
                n_out[i, t - t0:t - t0 + take] = sizes[b:b + take]
                t += take
        return out.to(self.device), n_out.to(self.device)

    def _pair_chunk(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """This chunk's pair ids (steps x live streams * batch), each column's batch weights (steps x C x batch:
        1/n for the n pairs of its stream's batch, 0 for padding), and the columns per live stream if all equal."""
        at = torch.tensor(self.live)
        ids = self.sched[at, :, :, 0].long().permute(1, 0, 2).reshape(self.chunk, -1).contiguous()
        n = self.counts[at]                                                  # live x steps
        w = (self.positions.view(1, 1, -1) < n[:, :, None]).to(self.dt) / n.clamp(min=1)[:, :, None]
        widths_live = {self.place[i][1] - self.place[i][0] for i in self.live}
        return (ids, w[self.col_stream].permute(1, 0, 2).contiguous(),
                (widths_live.pop() if len(widths_live) == 1 else 0))

    def _gradient_on_pairs(self, t: int) -> torch.Tensor:
        """The step's gradients (D x C) from each live stream's batch of pair differences."""
        if self.per_chunk is None:                                           # a new chunk, or streams left
            self.per_chunk = self._pair_chunk()
        ids_of, weight_of, width = self.per_chunk
        L, B = len(self.live), self.B
        batch = torch.index_select(self.delta, 0, ids_of[t % self.chunk], out=self.buffer[:L * B]).view(L, B, -1)
        sT = self._by_stream(self.adam.W.T, batch.transpose(1, 2), width)     # C x batch (W.T: C x D, contiguous)
        slopeT = _slope(sT, self.loss, self.margins_col, self.logistic_col) * weight_of[t % self.chunk]
        return self._by_stream(slopeT, batch, width).T

    def _by_stream(self, X: torch.Tensor, batches: torch.Tensor, width: int) -> torch.Tensor:
        """Each live stream's rows of ``X`` (C x ...) times its own matrix of ``batches`` (live x ... x ...):
        one product, a batched one if the streams are equally wide, else one per stream."""
        L = batches.shape[0]
        if L == 1:
            return X @ batches[0]
        if width:
            return torch.bmm(X.view(L, width, -1), batches).view(-1, batches.shape[-1])
        return torch.cat([X[slice(*self.place[i])] @ batches[k] for k, i in enumerate(self.live)])

    def _gradient_of_vector(self, t: int) -> torch.Tensor:
        """The step's gradient (D x 1) of the one column, with the products of a vector: ``d = F w``, each
        pair's slope over the batch size, the slopes added at the rows (``bincount``), ``coef F``."""
        k, w = t % self.chunk, self.adam.W[:, 0]
        n = self.vector_counts[k]
        better, worse = self.vector_rows[k, :n, 0], self.vector_rows[k, :n, 1]
        d = self.F @ w
        slope = _slope(d[worse] - d[better], self.loss, float(self.jobs[0].job.margins[0]), self.logistic) / n
        coef = torch.bincount(worse, slope, self.n_rows) - torch.bincount(better, slope, self.n_rows)
        return (coef @ self.F)[:, None]

    def _gradient_over_rows(self, t: int) -> torch.Tensor:
        """The step's gradients (D x C) from ``d = F W`` over all the group's rows."""
        W, F, FT, live, k = self.adam.W, self.F, self.FT, self.live, t % self.chunk
        n_now = self.counts[live, k]
        weight = (self.positions < n_now).to(self.dt) / n_now.clamp(min=1)   # batch x live streams
        b_rows, w_rows = self.sched[live, k, :, 0].long(), self.sched[live, k, :, 1].long()
        b_idx, w_idx = b_rows[self.col_stream].T, w_rows[self.col_stream].T  # batch x C: each column's own batch
        # the products' forms, by measurement (1 thread, 1,152 features): with few columns W^T F^T
        # and coef^T F (920 rows, 6 columns: 0.17 + 0.18 ms against 0.28 + 0.27 for F W and F^T
        # coef; W^T times a transposed view of F took 1.4 ms), with 96 columns F W and F^T coef
        # (1.0 + 1.0 against 1.3 + 1.2)
        narrow = W.shape[1] <= 32
        d = (W.T @ FT).T if narrow else F @ W                               # rows x C
        s = d.gather(0, w_idx) - d.gather(0, b_idx)                         # batch x C
        slope = _slope(s, self.loss, self.margins, self.logistic) * weight[:, self.col_stream]
        coef = torch.zeros(self.n_rows, W.shape[1], dtype=self.dt, device=self.device)
        coef.scatter_add_(0, w_idx, slope)
        coef.scatter_add_(0, b_idx, -slope)
        return (coef.T @ F).T if narrow else FT @ coef                      # D x C

    def _step(self, t: int) -> None:
        """Step ``t`` of every live column: gradients, the pull, frozen layers, Adam, the projection."""
        if t % self.chunk == 0:
            self.sched, self.counts = self._schedule(t)
            self.per_chunk = None
            if self.one_vector:   # the chunk's rows and batch sizes converted once, not at every step
                self.vector_rows, self.vector_counts = self.sched[0].long(), [int(n) for n in self.counts[0]]
        if self.one_vector:
            g = self._gradient_of_vector(t)
        else:
            g = self._gradient_on_pairs(t) if self.by_pair else self._gradient_over_rows(t)
        if self.pulled:
            g = g + self.pull * (self.adam.W - self.anchors)                # as fit_pairs: g += 2 l2 (w - l2_to)
        # frozen layers get no gradient, so Adam never moves them (times 1 everywhere: g itself, one product less)
        self.adam.step(g if self.all_trainable else g * self.mask)
        if self.floor is not None:
            torch.maximum(self.adam.W, self.floor, out=self.adam.W)
        elif self.projected[0]:
            self.adam.W.clamp_(min=0)

    def _end_epochs(self, t: int) -> None:
        """Show each job whose epoch ended with step ``t`` its weights; end a stream all of whose jobs say so."""
        for i, epoch in self.ends.get(t, ()):
            st, go_on = self.streams[i], False
            for k in st.jobs:
                lo = self.place[i][0] + int(self.cols[k] - self.cols[st.jobs[0]])
                go_on |= bool(self.watches[k](epoch, self.adam.W[:, lo:lo + self.widths[k]]))
            if not go_on:
                st.steps = t + 1

    def _retire(self, t: int) -> list[int]:
        """The streams with steps after ``t``. Finished streams leave the products: on pair differences at
        once (each costs its own gather and products), over the rows once the rest hold at most half the
        columns (a stream of a few pairs, e.g. one rater's, ends long before the pooled one)."""
        if len(self.live) == 1:                        # one stream (a single fit): nothing to retire but itself
            return self.live if self.streams[self.live[0]].steps > t + 1 else []
        still = [i for i in self.live if self.streams[i].steps > t + 1]
        width_still = sum(self.place[i][1] - self.place[i][0] for i in still)
        if still and len(still) < len(self.live) and (self.by_pair or 2 * width_still <= self.adam.W.shape[1]):
            keep = torch.cat([torch.arange(*self.place[i]) for i in still]).to(self.device)
            self.adam.keep(keep, self.lay)
            self.mask = self.lay(self.mask[:, keep])
            self.margins, self.logistic = self.margins[keep], self.logistic[keep]
            if self.pulled:
                self.pull, self.anchors = self.pull[:, keep], self.lay(self.anchors[:, keep])
            self.floor = None if self.floor is None else self.floor[:, keep]
            at_col = 0
            for i in still:
                width = self.place[i][1] - self.place[i][0]
                self.place[i], at_col = (at_col, at_col + width), at_col + width
            self.live = still
            self.col_stream = self._stream_of_columns()
            self.margins_col, self.logistic_col, self.per_chunk = self.margins[:, None], self.logistic[:, None], None
        return still

    def run(self) -> None:
        """Step until every stream has ended."""
        for t in itertools.count():
            self._step(t)
            self._end_epochs(t)
            if not self._retire(t):
                return


def __getattr__(name: str):
    return moved_name(__name__, name)   # early_stopped and fit_grid: now in clpips.book.batched_fits
