"""Ablations of CLPIPS training (chapter 06): one factor at a time, judged held-out.

Each *factor* (the margin, the learning rate, the trained layers, ...) is varied
over a few *levels* while every other option keeps its default
(:mod:`clpips.defaults`); a level is one :class:`Variant`, a dict of option
overrides for :func:`clpips.train.fit`. :func:`run_ablation` fits every variant
on every *replicate* and scores it on the replicate's held-out rankings with
the ICC(A,k), pooled Spearman and Kendall of :func:`clpips.evaluate.alignment`
(the same numbers, through :func:`clpips.evaluate.heldout_scores`, as the evaluation
chapter scores CLPIPS, without the per-ranking correlations the chapter does not
use). It returns a tidy table, one row per (variant, replicate).

The fits run on the nested protocol's engine: every fit of every replicate that shares
a feature matrix is one column of one :func:`clpips.train.fit_many` call (starting
weights, trained layers, projection, loss, margin and learning rate per column; a
learning-curve subsample is its own set of pairs), every epoch is recorded, and each
column keeps the epoch that ``fit``'s early stopping keeps
(:func:`clpips.train.early_stopped`): the weights, best epoch and epochs run of its own
``train.fit`` (tested), at a fraction of the time of a loop of fits.

Replicates (:func:`replicates`) answer "would this difference survive another
split?":

* ``folds=0``: the standard split (:func:`clpips.datasets.split_by_target`
  with ``test_size`` and ``split_seed``), once per training seed in ``seeds``.
  The test rankings never change, so the spread across seeds is *training*
  noise only (initialisation, shuffling, the validation split inside ``fit``);
* ``folds=k``: :func:`clpips.datasets.kfold_by_target` re-splits the targets
  into ``k`` folds, each fold's targets held out once (times each seed), so
  the spread also contains the *split* noise: which targets happen to be in
  the test set.

Pair features are computed once per backbone (:func:`clpips.train.pair_features_for`
over the whole table, through the on-disk cache). Identical option sets that appear in several factors
(the default level of each) are fitted once per replicate and reported under
each factor.

Special levels:

* ``n_rankings`` (the learning curve, :func:`learning_curve_variants`):
  train on a seeded random subsample of that many training rankings (one
  ranking = one ``set_id`` by one rater). For one replicate the subsamples are
  nested (the first ``n`` of one permutation), so the curve's steps are not
  confounded with which rankings were drawn; sizes above what a replicate has
  are skipped;
* ``net`` (the backbone): a VGG variant uses VGG pair features and starts from
  VGG's own LPIPS weights; its row reports both LPIPS-VGG (``lpips_*``) and the
  paper's baseline LPIPS-AlexNet (``base_*``).

Pooled versus per-rater training is :func:`run_per_rater`: one model per rater
fitted on that rater's training rankings only, and the pooled model, each
judged on that rater's held-out rankings. Both runners can leave out of training
the image pairs that also occur in held-out rankings (``exclude_shared_pairs``,
:func:`clpips.datasets.drop_shared_pairs`, the package's one shared-pair rule).

:func:`summarize` condenses the table: per level the mean and spread across
replicates and the *paired* difference from the factor's reference (default)
level, with a t interval. With re-splits the interval uses the Nadeau & Bengio
(2003) correction of the variance, ``(1/J + n_test/n_train) * s^2``, because
the training sets of different folds overlap and a plain ``s^2/J`` would be
too narrow; with the standard split only, the interval covers training noise
and says nothing about the choice of test targets.

Threads: fits run with ``torch.set_num_threads(threads)`` (default 1): the
steps are small matrix products, and on a busy two-core machine two
threads made a fit up to ten times slower than one.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from .defaults import DEFAULTS
from .experiment import FIT_OPTIONS, fit_options_except
from .train import torch_threads
from .evaluate import rank_scores, ranking_ids
from .model import initial_weight_vector, layer_slices
from .datasets.splits import drop_shared_pairs

__all__ = ["Variant", "Replicate", "FACTORS", "parse_levels", "factor_variants", "standard_grid",
           "learning_curve_variants", "replicates", "subsample_rankings", "changed_layers",
           "run_ablation", "run_per_rater", "summarize", "factor_facts", "default_fit_rows", "budget_limited",
           "budget_note", "report_table", "noise_table", "verdict_lists"]

#: option that each factor varies, the type of its levels and how levels are written in a defaults string
FACTORS: dict[str, dict[str, Any]] = {
    "margin": {"option": "margin", "type": float, "sep": ",", "title": "margin of the ranking loss"},
    "lr": {"option": "lr", "type": float, "sep": ",", "title": "learning rate"},
    "layers": {"option": "layers", "type": str, "sep": ";", "title": "trained layers"},
    "init": {"option": "init", "type": str, "sep": ",", "title": "initial weights"},
    "project": {"option": "project", "type": bool, "sep": ",", "title": "projection onto w >= 0"},
    "loss": {"option": "loss", "type": str, "sep": ",", "title": "loss"},
    "net": {"option": "net", "type": str, "sep": ",", "title": "backbone"},
    "train_size": {"option": "n_rankings", "type": int, "sep": ",", "title": "training rankings"},
}
#: metric columns of a result row
METRICS = ("icc", "rho")
#: the options that define a fit (besides the data): a variant's key fills them all in
TRAIN_OPTIONS = ("net", *FIT_OPTIONS, "n_rankings")


# =========================================================================== variants
@dataclass(frozen=True)
class Variant:
    """One level of one factor: option overrides for :func:`clpips.train.fit`.

    ``options`` may also hold ``n_rankings`` (subsample the training rankings)
    and ``net``; every option not named keeps the runner's default.
    """

    factor: str
    level: str
    options: Mapping[str, Any] = field(default_factory=dict)
    reference: bool = False  #: the factor's default level, the one the others are compared with

    def key(self, **fit_options: Any) -> str:
        """The *effective* options as canonical JSON: equal keys mean the same fit.

        Every option of :data:`TRAIN_OPTIONS` is filled in (the variant's own value,
        else ``fit_options``, else :data:`DEFAULTS`) and layer sets are normalised,
        so ``{"margin": 0.05}`` and ``{"lr": 0.001}`` name the same default fit.
        """
        from .train import parse_layers
        options = {name: getattr(DEFAULTS, name, None) for name in TRAIN_OPTIONS}
        options.update(fit_options)
        options.update(self.options)
        options["layers"] = parse_layers(options["layers"])
        return json.dumps(options, sort_keys=True, default=str)


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "on", "yes", "1"):
        return True
    if value in ("false", "off", "no", "0"):
        return False
    raise ValueError(f"not a boolean level: {text!r}")


def parse_levels(factor: str, levels: str | Iterable[Any]) -> list[Any]:
    """Levels of ``factor`` from a defaults string (``"0.01,0.05"``, layers ``"0;1;all"``) or a list.

    ``train_size`` accepts ``"all"`` (returned as ``None``: every training ranking).
    """
    spec = FACTORS[factor]
    if isinstance(levels, str):
        levels = [x.strip() for x in levels.split(spec["sep"]) if x.strip()]
    out = []
    for x in levels:
        if factor == "train_size" and (x is None or str(x).strip() == "all"):
            out.append(None)
        elif spec["type"] is bool:
            out.append(x if isinstance(x, bool) else _parse_bool(str(x)))
        else:
            out.append(spec["type"](x))
    if not out:
        raise ValueError(f"no levels given for factor {factor!r}")
    return out


def _level_label(factor: str, value: Any) -> str:
    if factor == "train_size":
        return "all" if value is None else str(int(value))
    if factor == "project":
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _same_level(factor: str, a: Any, b: Any) -> bool:
    if factor == "layers":
        from .train import parse_layers
        return parse_layers(a) == parse_layers(b)
    if factor == "train_size":
        return a is None and b is None or (a is not None and b is not None and int(a) == int(b))
    return a == b


def factor_variants(factor: str, levels: str | Iterable[Any], reference: Any = "default") -> list[Variant]:
    """The variants of one factor, the reference level marked.

    ``reference`` is the level the others are compared with: by default the value in
    :data:`DEFAULTS` (``"all"`` training rankings for ``train_size``). When it is not
    among ``levels`` it is added (in order, for numeric factors), so every factor has one.

    >>> [v.level for v in factor_variants("margin", "0.01,0.1")]
    ['0.01', '0.05', '0.1']
    >>> [v.reference for v in factor_variants("margin", "0.01,0.05")]
    [False, True]
    """
    if factor not in FACTORS:
        raise ValueError(f"unknown factor {factor!r}: choose from {sorted(FACTORS)}")
    option = FACTORS[factor]["option"]
    values = parse_levels(factor, levels)
    if isinstance(reference, str) and reference == "default":
        reference = None if factor == "train_size" else getattr(DEFAULTS, option)
    else:
        reference = parse_levels(factor, [reference])[0] if factor != "layers" else str(reference)
    if not any(_same_level(factor, v, reference) for v in values):
        values.append(reference)
        if FACTORS[factor]["type"] in (int, float) and factor != "train_size":
            values.sort()
    out = []
    for value in values:
        options = {} if (factor == "train_size" and value is None) else {option: value}
        out.append(Variant(factor, _level_label(factor, value), options,
                           reference=_same_level(factor, value, reference)))
    return out


def standard_grid(factors: Sequence[str] = ("margin", "lr", "layers", "init", "project", "loss", "net"),
                  base: Optional[Mapping[str, Any]] = None, **levels: str) -> list[Variant]:
    """The chapter's grid: each factor's levels from :data:`DEFAULTS` unless given.

    Keyword arguments name a factor and its levels (``margin="0.01,0.1"``);
    ``project`` defaults to on/off. ``base`` maps options to the values every
    other fit uses (pass the same to :func:`run_ablation` as ``fit_options``):
    each factor's reference level is its ``base`` value (default: :data:`DEFAULTS`).
    The learning curve is separate (:func:`learning_curve_variants`), since its
    levels change the data, not the fit.
    """
    from_defaults = {"margin": DEFAULTS.ablation_margins, "lr": DEFAULTS.ablation_lrs,
                     "layers": DEFAULTS.ablation_layers, "init": DEFAULTS.ablation_inits,
                     "project": "on,off", "loss": DEFAULTS.ablation_losses, "net": DEFAULTS.ablation_nets,
                     "train_size": DEFAULTS.ablation_train_sizes}
    unknown = set(levels) - set(FACTORS)
    if unknown:
        raise ValueError(f"unknown factor(s) {sorted(unknown)}: choose from {sorted(FACTORS)}")
    base = dict(base or {})
    grid: list[Variant] = []
    for factor in factors:
        option = FACTORS[factor]["option"]
        reference = base.get(option, "default") if factor != "train_size" else "default"
        grid += factor_variants(factor, levels.get(factor, from_defaults[factor]), reference=reference)
    return grid


def learning_curve_variants(sizes: str | Iterable[Any] = DEFAULTS.ablation_train_sizes) -> list[Variant]:
    """Variants training on ``n`` rankings each (``"all"``: every training ranking, the reference)."""
    return factor_variants("train_size", sizes)


# =========================================================================== replicates
@dataclass
class Replicate:
    """One (train, test) split and one training seed."""

    split: str                #: "standard" or "fold i/k"
    fold: int                 #: -1 for the standard split
    seed: int                 #: training seed
    train: pd.DataFrame
    test: pd.DataFrame

    @property
    def tag(self) -> tuple[str, int]:
        return (self.split, self.seed)


def replicates(table: pd.DataFrame, folds: int = 0, seeds: Iterable[int] = (DEFAULTS.seed,),
               test_size: float = DEFAULTS.test_size, split_seed: int = DEFAULTS.seed) -> list[Replicate]:
    """The (split, training seed) replicates; see the module docstring.

    ``folds=0``: the standard split, once per seed; ``folds=k >= 2``: ``k`` folds by target
    (:func:`clpips.datasets.split_folds`, the nested protocol's, which for ``"target"`` is
    :func:`clpips.datasets.kfold_by_target`, with ``split_seed``), each once per seed.
    """
    from .datasets import split_by_target, split_folds
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("give at least one training seed")
    if folds == 0:
        train, test = split_by_target(table, test_size=test_size, seed=split_seed)
        return [Replicate("standard", -1, s, train, test) for s in seeds]
    if folds < 2:
        raise ValueError(f"folds must be 0 (the standard split) or at least 2, got {folds}")
    out = []
    for i, (train, test) in enumerate(split_folds(table, "target", folds, seed=split_seed)):  # the protocol's folds
        out += [Replicate(f"fold {i + 1}/{folds}", i, s, train, test) for s in seeds]
    return out


def _ranking_keys(table: pd.DataFrame) -> pd.Series:
    return ranking_ids(table)


def subsample_rankings(table: pd.DataFrame, n: Optional[int], seed: int | Sequence[int]) -> pd.DataFrame:
    """``n`` whole rankings of ``table`` drawn at random (seeded), or all of them for ``n=None``.

    One permutation of the table's rankings per seed; the first ``n`` are kept,
    so for one seed a smaller sample is part of every larger one (nested).
    Rows keep their order and index.
    """
    if n is None:
        return table
    keys = _ranking_keys(table)
    unique = np.array(sorted(keys.unique()), dtype=object)
    if not 1 <= n <= len(unique):
        raise ValueError(f"cannot draw {n} rankings from {len(unique)}")
    order = np.random.default_rng(seed).permutation(len(unique))
    return table[keys.isin(set(unique[order[:n]]))]


# =========================================================================== running
class _Features:
    """Pair features per backbone, computed on first use (over the whole table, once)."""

    def __init__(self, dataset, given: Optional[Mapping[str, Any]], device: str, progress: bool):
        self.dataset, self.device, self.progress = dataset, device, progress
        self.cache: dict[str, Any] = dict(given or {})

    def __getitem__(self, net: str):
        if net not in self.cache:
            from .train import pair_features_for
            self.cache[net] = pair_features_for(self.dataset, self.dataset.table, net=net, device=self.device,
                                                progress=self.progress)
        return self.cache[net]


def _scores(test: pd.DataFrame, features, weights: torch.Tensor) -> dict[str, float]:
    """Held-out ICC(A,k) (with its F-based CI), pooled Spearman and Kendall of one weight vector
    (:func:`_scores_many` of one vector)."""
    return _scores_many(test, features, {"metric": weights})["metric"]


def _scores_many(test: pd.DataFrame, features, weights: Mapping[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """Held-out ICC(A,k) (with its F-based CI), pooled Spearman and Kendall of several weight vectors:
    :func:`clpips.evaluate.rank_scores` (the numbers of :func:`clpips.evaluate.alignment`, checked in
    the tests, without its p-values and per-ranking correlations).
    Returns ``{name: {"icc", "icc_ci_low", "icc_ci_high", "rho", "tau"}}``.
    """
    names = list(weights)
    rows = features.rows(test["target"], test["candidate"])
    W = torch.stack([torch.as_tensor(weights[n], dtype=torch.float32).flatten() for n in names], dim=1)
    scores = rank_scores(test, (features.matrix[rows] @ W).numpy().astype(float), names, kendall=True,
                         interval=True)
    return {name: {"icc": float(row["icc_A_k"]), "icc_ci_low": float(row["icc_A_k_ci_low"]),
                   "icc_ci_high": float(row["icc_A_k_ci_high"]), "rho": float(row["spearman"]),
                   "tau": float(row["kendall"])} for name, row in scores.iterrows()}


#: the options of train.fit that the batched fit (:func:`_fit_together`) takes, with their defaults
_FIT_OPTIONS = fit_options_except("init")


@dataclass
class _Fitted:
    """What the runners read of a fit: :class:`clpips.train.FitResult`'s weights, best epoch, epochs run."""

    weights: torch.Tensor
    initial_weights: torch.Tensor
    best_epoch: int
    epochs_run: int
    seconds: float


def _fit_together(dataset, requests: Sequence[Mapping[str, Any]], device: str = DEFAULTS.device) -> list[_Fitted]:
    """Each request fitted as ``clpips.train.fit(dataset, **request)`` would, all in a few batched calls.

    A request holds ``fit``'s arguments: ``table``, ``features`` (required), ``seed``,
    ``rater``, ``val_size``, ``net``, ``init``, ``device``, ``progress`` and the options
    of :data:`_FIT_OPTIONS`. As ``fit`` does, the table (one rater's rows for ``rater``)
    is split by target into training and validation targets
    (``split_by_target(table, val_size, seed)``), the starting weights are
    ``initial_weight_vector(net, init, seed)``; the requests sharing a feature matrix
    and batch size are then trained together by :func:`clpips.train.fit_many` (each
    column equals its own ``fit_pairs``; every epoch is recorded) and each keeps the
    epoch ``fit``'s early stopping keeps (:func:`clpips.train.early_stopped`). Requests
    with the same table, rater and seed share their pairs, so their columns share
    shuffles. ``seconds`` is the batched call's time shared equally among its requests.
    """
    from .pairs import ranking_pairs
    from .train import GridJob, early_stopped, fit_and_validation_rows, fit_many, pair_index
    pairs_of: dict[tuple, tuple] = {}
    prepared = []
    for request in requests:
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
        options = {name: opts.pop(name, getattr(DEFAULTS, name)) for name in _FIT_OPTIONS}
        if opts:
            raise ValueError(f"options the batched fit does not take: {sorted(opts)}")
        key = (id(table), id(features), rater, seed, val_size)
        if key not in pairs_of:
            fit_rows, val_rows = fit_and_validation_rows(table, rater, val_size, seed)
            pairs_of[key] = (pair_index(features, ranking_pairs(fit_rows)),
                             pair_index(features, ranking_pairs(val_rows)) if len(val_rows) else None, table)
        train_pairs, val_pairs, _ = pairs_of[key]
        prepared.append({"features": features, "net": net, "device": dev, "train": train_pairs, "val": val_pairs,
                         "seed": seed, "w0": initial_weight_vector(net, init, seed), **options})
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(prepared):
        groups.setdefault((id(p["features"]), p["net"], int(p["batch_size"]), p["device"]), []).append(i)
    out: list[Optional[_Fitted]] = [None] * len(prepared)
    for (_, net, batch_size, dev), members in groups.items():
        t0 = time.perf_counter()
        matrix = prepared[members[0]]["features"].matrix
        jobs = [GridJob(p["train"], (float(p["margin"]),), (float(p["lr"]),), tuple(range(1, int(p["epochs"]) + 1)),
                        p["seed"], initial_weights=p["w0"], layers=p["layers"], project=bool(p["project"]),
                        loss=p["loss"]) for p in (prepared[i] for i in members)]
        trained = fit_many(matrix, jobs, jobs[0].initial_weights, net=net, batch_size=batch_size, device=dev,
                           threads=1, workers=DEFAULTS.workers)
        chosen = []
        for i, by_epoch in zip(members, trained):
            p = prepared[i]
            chosen.append((i, p["w0"], *early_stopped(by_epoch[:, 0], matrix, p["val"], loss=p["loss"],
                                                      margin=float(p["margin"]), patience=int(p["patience"]),
                                                      initial_weights=p["w0"])))
        seconds = (time.perf_counter() - t0) / len(members)
        for i, w0, weights, best_epoch, epochs_run in chosen:
            out[i] = _Fitted(weights, w0, int(best_epoch), int(epochs_run), seconds)
    return out


def changed_layers(before: torch.Tensor, after: torch.Tensor, net: str = DEFAULTS.net) -> str:
    """The layers whose weights a fit changed, as ``"0,4"`` (``""``: none): a check that a level was applied."""
    diff = (torch.as_tensor(after) - torch.as_tensor(before)).abs()
    return ",".join(str(i) for i, part in enumerate(layer_slices(net)) if float(diff[part].max()) > 0)


def _n_rankings(table: pd.DataFrame) -> int:
    return int(table[["set_id", "rater"]].drop_duplicates().shape[0])


def run_ablation(dataset, variants: Sequence[Variant], *, folds: int = 0, seeds: Iterable[int] = (DEFAULTS.seed,),
                 test_size: float = DEFAULTS.test_size, split_seed: int = DEFAULTS.seed,
                 features: Optional[Mapping[str, Any]] = None, device: str = DEFAULTS.device,
                 threads: Optional[int] = 1, progress: bool = False, log=None, exclude_shared_pairs: bool = False,
                 **fit_options) -> pd.DataFrame:
    """Fit and score every variant on every replicate.

    Parameters
    ----------
    dataset
        A :mod:`clpips.datasets` dataset.
    variants
        The grid (:func:`standard_grid`, :func:`factor_variants`, :func:`learning_curve_variants`).
    folds, seeds, test_size, split_seed
        The replicates (:func:`replicates`).
    features : dict net -> PairFeatures, optional
        Precomputed features of the whole table (the rest are computed once, through the cache).
    threads
        torch threads during fits (None: leave as is).
    log : callable, optional
        Called with one line per fit (e.g. ``print``).
    exclude_shared_pairs
        Train without the image pairs that also occur in the held-out rankings
        (:func:`clpips.datasets.drop_shared_pairs`).
    **fit_options
        Options for every fit (``epochs``, ``patience``, ...); a variant's own options win.

    Returns
    -------
    pandas.DataFrame
        One row per (variant, replicate): ``factor, level, reference, split, fold, seed,
        n_train_rankings, n_test_rankings, icc, icc_ci_low, icc_ci_high, rho, tau``
        (the variant), ``lpips_icc, lpips_rho`` (LPIPS with the variant's backbone on the
        same rankings), ``base_icc, base_rho`` (the paper's baseline, LPIPS-AlexNet),
        ``delta_icc, delta_rho`` (variant minus baseline), ``best_epoch, epochs_run``
        (of the fit, as ``train.fit`` would report them), ``seconds`` (the batched fit's
        time shared equally among its fits), ``changed_layers`` (:func:`changed_layers`)
        and ``options`` (the effective options, JSON).
    """
    feats = _Features(dataset, features, device, progress)
    reps = replicates(dataset.table, folds=folds, seeds=seeds, test_size=test_size, split_seed=split_seed)
    if exclude_shared_pairs:
        for rep in reps:
            rep.train = drop_shared_pairs(rep.train, rep.test)
    # every distinct fit of every replicate, then all of them trained together
    planned: list[dict[str, Optional[int]]] = []   # per replicate: variant key -> request index (None: skipped)
    requests: list[dict[str, Any]] = []
    for rep in reps:
        plan: dict[str, Optional[int]] = {}
        for variant in variants:
            key = variant.key(**fit_options)
            if key in plan:
                continue
            options = {**fit_options, **dict(variant.options)}
            n = options.pop("n_rankings", None)
            net = options.get("net", DEFAULTS.net)
            if n is not None and n >= _n_rankings(rep.train):
                plan[key] = None  # more rankings than this replicate has: skipped
                continue
            sub_seed = [int(split_seed), int(rep.fold) + 1, int(rep.seed)]
            plan[key] = len(requests)
            requests.append({"table": subsample_rankings(rep.train, n, sub_seed), "features": feats[net],
                             "seed": rep.seed, "device": device, "progress": False, **options})
        planned.append(plan)
    with torch_threads(threads):
        fitted = _fit_together(dataset, requests, device=device)
    rows: list[dict[str, Any]] = []
    for rep, plan in zip(reps, planned):
        by_net: dict[str, dict[str, torch.Tensor]] = {}  # LPIPS and every fit of the replicate, per backbone
        for key, i in plan.items():
            if i is not None:
                net = requests[i].get("net", DEFAULTS.net)
                by_net.setdefault(net, {"lpips": initial_weight_vector(net, "lpips")})[str(i)] = fitted[i].weights
        by_net.setdefault("alex", {"lpips": initial_weight_vector("alex", "lpips")})
        scores = {net: _scores_many(rep.test, feats[net], weights) for net, weights in by_net.items()}
        base = scores["alex"]["lpips"]
        logged = set()
        for variant in variants:
            key = variant.key(**fit_options)
            i = plan[key]
            if i is None:
                continue
            net = requests[i].get("net", DEFAULTS.net)
            res, own, result = scores[net][str(i)], scores[net]["lpips"], fitted[i]
            if log is not None and i not in logged:
                logged.add(i)
                log(f"{rep.split} seed {rep.seed} {variant.factor}={variant.level}: ICC {res['icc']:.3f} "
                    f"(LPIPS {base['icc']:.3f}), epoch {result.best_epoch}, {result.seconds:.1f}s")
            rows.append({"factor": variant.factor, "level": variant.level, "reference": variant.reference,
                         "split": rep.split, "fold": rep.fold, "seed": rep.seed,
                         "n_train_rankings": _n_rankings(requests[i]["table"]),
                         "n_test_rankings": _n_rankings(rep.test),
                         **{k: res[k] for k in ("icc", "icc_ci_low", "icc_ci_high", "rho", "tau")},
                         "lpips_icc": own["icc"], "lpips_rho": own["rho"],
                         "base_icc": base["icc"], "base_rho": base["rho"],
                         "delta_icc": res["icc"] - base["icc"], "delta_rho": res["rho"] - base["rho"],
                         "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
                         "seconds": result.seconds,
                         "changed_layers": changed_layers(result.initial_weights, result.weights, net),
                         "options": key})
    return pd.DataFrame(rows)


def run_per_rater(dataset, *, raters: Optional[Sequence[Any]] = None, folds: int = 0,
                  seeds: Iterable[int] = (DEFAULTS.seed,), test_size: float = DEFAULTS.test_size,
                  split_seed: int = DEFAULTS.seed, features=None, net: str = DEFAULTS.net,
                  device: str = DEFAULTS.device, threads: Optional[int] = 1, log=None,
                  exclude_shared_pairs: bool = False, **fit_options) -> pd.DataFrame:
    """Pooled versus per-rater training, judged on each rater's own held-out rankings.

    For each replicate: the pooled model is fitted once on every rater's training
    rankings; for each rater a personal model is fitted on that rater's training
    rankings only (``fit(..., rater=r)``, same options, no pull towards the pooled
    weights: that refinement is chapter 07's). Each model, and LPIPS, is scored on
    that rater's held-out rankings only. ``exclude_shared_pairs``: as in
    :func:`run_ablation`, for both models.

    Returns
    -------
    pandas.DataFrame
        Rows as :func:`run_ablation` with ``factor="raters"``, ``level`` in
        ``{"pooled", "personal"}`` (``pooled`` is the reference) and a ``rater``
        column; ``lpips_*`` and ``base_*`` are LPIPS-``net`` on the same rankings.
    """
    if features is None:
        from .train import pair_features_for
        features = pair_features_for(dataset, dataset.table, net=net, device=device, progress=False)
    reps = replicates(dataset.table, folds=folds, seeds=seeds, test_size=test_size, split_seed=split_seed)
    if exclude_shared_pairs:
        for rep in reps:
            rep.train = drop_shared_pairs(rep.train, rep.test)
    raters = list(raters) if raters is not None else sorted(dataset.table["rater"].unique().tolist())
    lpips_w = initial_weight_vector(net, "lpips")
    # per replicate: the pooled fit, then one personal fit per rater with held-out and >= 2 training targets
    requests: list[dict[str, Any]] = []
    planned: list[tuple[int, list[tuple[Any, int]]]] = []
    for rep in reps:
        common = {"features": features, "net": net, "seed": rep.seed, "device": device, "progress": False,
                  **fit_options}
        pooled = len(requests)
        requests.append({"table": rep.train, **common})
        personal = []
        for rater in raters:
            test = rep.test[rep.test["rater"] == rater]
            train = rep.train[rep.train["rater"] == rater]
            if test.empty or train["target"].nunique() < 2:
                continue
            personal.append((rater, len(requests)))
            requests.append({"table": rep.train, "rater": rater, **common})
        planned.append((pooled, personal))
    with torch_threads(threads):
        fitted = _fit_together(dataset, requests, device=device)
    rows: list[dict[str, Any]] = []
    for rep, (pooled_i, personal) in zip(reps, planned):
        pooled = fitted[pooled_i]
        for rater, i in personal:
            test = rep.test[rep.test["rater"] == rater]
            train = rep.train[rep.train["rater"] == rater]
            result = fitted[i]
            scores = _scores_many(test, features, {"lpips": lpips_w, "pooled": pooled.weights,
                                                   "personal": result.weights})
            base = scores["lpips"]
            for level, fit_, n_train in (("pooled", pooled, _n_rankings(rep.train)),
                                         ("personal", result, _n_rankings(train))):
                s = scores[level]
                rows.append({"factor": "raters", "level": level, "reference": level == "pooled",
                             "split": rep.split, "fold": rep.fold, "seed": rep.seed, "rater": rater,
                             "n_train_rankings": n_train, "n_test_rankings": _n_rankings(test), **s,
                             "lpips_icc": base["icc"], "lpips_rho": base["rho"],
                             "base_icc": base["icc"], "base_rho": base["rho"],
                             "delta_icc": s["icc"] - base["icc"], "delta_rho": s["rho"] - base["rho"],
                             "best_epoch": int(fit_.best_epoch), "epochs_run": int(fit_.epochs_run),
                             "seconds": fit_.seconds, "options": json.dumps({"rater": None if level == "pooled"
                                                                             else str(rater)})})
            if log is not None:
                log(f"{rep.split} seed {rep.seed} rater {rater}: personal {rows[-1]['icc']:.3f}, "
                    f"pooled {rows[-2]['icc']:.3f}, LPIPS {base['icc']:.3f}")
    return pd.DataFrame(rows)


# =========================================================================== summaries
def _pair_keys(results: pd.DataFrame) -> list[str]:
    keys = ["split", "seed"]
    if "rater" in results.columns and results["rater"].notna().any():
        keys.append("rater")
    return keys


def summarize(results: pd.DataFrame, metric: str = "icc", ci: float = DEFAULTS.ci) -> pd.DataFrame:
    """Per (factor, level): mean and spread across replicates, and the paired difference from the reference.

    Parameters
    ----------
    results
        Rows of :func:`run_ablation` and/or :func:`run_per_rater`.
    metric
        ``"icc"`` or ``"rho"``.

    Returns
    -------
    pandas.DataFrame
        One row per (factor, level), in the order of ``results``: ``n`` (replicates),
        ``mean, sd`` of the metric, ``lpips`` (mean of LPIPS with the same backbone),
        ``base`` (mean of the baseline LPIPS-AlexNet), ``delta`` (mean of
        metric − baseline), ``diff, diff_low, diff_high`` (paired difference
        from the factor's reference level, mean and ``ci`` t interval),
        ``noise`` (what the interval covers) and ``verdict`` (``"reference"``,
        ``"higher"``, ``"lower"`` or ``"within noise"``: whether the interval excludes 0).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    rows = []
    for factor, frame in results.groupby("factor", sort=False):
        keys = _pair_keys(frame)
        ref = frame[frame["reference"]]
        ref_values = ref.set_index(keys)[metric] if len(ref) else None
        resplit = frame["split"].nunique() > 1
        for level, part in frame.groupby("level", sort=False):
            values = part[metric].to_numpy(float)
            row = {"factor": factor, "level": level, "reference": bool(part["reference"].all()),
                   "n": len(part), "mean": float(values.mean()),
                   "sd": float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
                   "lpips": float(part[f"lpips_{metric}"].mean()), "base": float(part[f"base_{metric}"].mean()),
                   "delta": float(part[f"delta_{metric}"].mean()),
                   "diff": float("nan"), "diff_low": float("nan"), "diff_high": float("nan"),
                   "noise": "", "verdict": ""}
            if row["reference"]:
                row.update(diff=0.0, diff_low=0.0, diff_high=0.0, verdict="reference")
            elif ref_values is not None:
                paired = part.set_index(keys)[metric]
                common = paired.index.intersection(ref_values.index)
                d = (paired.loc[common] - ref_values.loc[common]).to_numpy(float)
                ratio = float((ref["n_test_rankings"] / ref["n_train_rankings"].clip(lower=1)).mean())
                row.update(_paired_interval(d, ratio if resplit else None, ci))
                if "rater" in keys:
                    row["noise"] = ("raters and splits" if resplit else "across raters, one split") + \
                        (" (corrected resampled t)" if resplit else "")
            rows.append(row)
    return pd.DataFrame(rows)


def _paired_interval(d: np.ndarray, ratio: Optional[float], ci: float) -> dict[str, Any]:
    """Mean paired difference with a t interval (:func:`clpips.stats.corrected_resampled_t`).

    ``ratio`` (test over training rankings of the reference fit) given: the
    replicates are re-splits and the variance gets the Nadeau-Bengio factor
    ``1/J + ratio`` instead of ``1/J``. The reference's training size is used
    for every level (also for learning-curve subsamples), since the overlap
    between the folds' training pools is what the correction is for.
    """
    from .stats import corrected_resampled_t
    res = corrected_resampled_t(d, ratio, ci)
    out: dict[str, Any] = {"diff": res["mean"]}
    if res["n"] < 2:
        out.update(diff_low=float("nan"), diff_high=float("nan"), noise="one replicate", verdict="within noise")
        return out
    noise = "split and training (corrected resampled t)" if ratio is not None else "training only (fixed test set)"
    low, high = res["low"], res["high"]
    verdict = "higher" if low > 0 else "lower" if high < 0 else "within noise"
    out.update(diff_low=float(low), diff_high=float(high), noise=noise, verdict=verdict)
    return out


def default_fit_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The default fit's rows, one per replicate (it is every factor's reference, fitted once)."""
    refs = results[results["reference"]]
    if refs.empty:
        raise ValueError("no reference rows")
    key = refs["options"].mode().iloc[0]
    return refs[refs["options"] == key].drop_duplicates(["split", "seed"])


def budget_limited(results: pd.DataFrame, share: float = 0.5) -> pd.DataFrame:
    """Levels whose fits mostly ran out of epochs: the best epoch was the last allowed one.

    Such a level may be under-trained rather than worse: more epochs (or a larger learning
    rate) could change its numbers. Returns ``factor, level, share`` (of its replicates
    that hit the budget) for levels where that share is at least ``share``.
    """
    epochs = results["options"].map(lambda text: json.loads(text).get("epochs", DEFAULTS.epochs))
    hit = results.assign(hit=results["best_epoch"] >= epochs)
    out = hit.groupby(["factor", "level"], sort=False)["hit"].mean().rename("share").reset_index()
    return out[out["share"] >= share].reset_index(drop=True)


def noise_table(seed_rows: pd.DataFrame, fold_rows: pd.DataFrame) -> pd.DataFrame:
    """Spread of one configuration across training seeds (fixed split) and across folds.

    Both inputs are :func:`run_ablation` rows of the same variant. Returns one row
    per source with the sd across replicates of the ICC, of rho and of the paired
    gain over LPIPS (``delta_icc``): a difference between two levels smaller than
    these is not a finding.
    """
    rows = []
    for source, frame in (("training seeds, standard split", seed_rows), ("re-splits (folds)", fold_rows)):
        rows.append({"source": source, "n": len(frame),
                     "icc_mean": float(frame["icc"].mean()), "icc_sd": float(frame["icc"].std(ddof=1)),
                     "rho_sd": float(frame["rho"].std(ddof=1)),
                     "delta_icc_mean": float(frame["delta_icc"].mean()),
                     "delta_icc_sd": float(frame["delta_icc"].std(ddof=1))})
    return pd.DataFrame(rows)


# the chapter's words and tables about these results live in clpips.report
from .report import budget_note, factor_facts, report_table, verdict_lists  # noqa: E402,F401
