"""Running the ablations: every fit of every replicate trained together, then scored held-out.

:func:`run_ablation` fits each :class:`~clpips.book.ablations.grid.Variant` on each replicate;
:func:`run_per_rater` fits the pooled model and one model per rater. Both batch their fits
through :func:`clpips.book.batched_fits.fit_together` (the nested protocol's engine, :func:`clpips.train.fit_many`,
each column keeping ``fit``'s early-stopped epoch) and score them with :func:`_scores_many`
(:func:`clpips.evaluate.rank_scores`). See :mod:`clpips.book.ablations` for the design.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Optional, Sequence

import pandas as pd
import torch

from clpips.datasets.splits import drop_shared_pairs
from clpips.defaults import DEFAULTS
from clpips.evaluate import rank_scores
from clpips.book.batched_fits import fit_together
from clpips.model import initial_weight_vector, layer_slices
from clpips.train import torch_threads
from clpips.book.ablations.grid import Variant, replicates, subsample_rankings

class _Features:
    """Pair features per backbone, computed on first use (over the whole table, once)."""

    def __init__(self, dataset, given: Optional[Mapping[str, Any]], device: str, progress: bool):
        self.dataset, self.device, self.progress = dataset, device, progress
        self.cache: dict[str, Any] = dict(given or {})

    def __getitem__(self, net: str):
        if net not in self.cache:
            from clpips.train import pair_features_for
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
        fitted = fit_together(dataset, requests, device=device)
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
        from clpips.train import pair_features_for
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
        fitted = fit_together(dataset, requests, device=device)
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
