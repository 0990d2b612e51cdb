"""The paper's protocol end to end: split by target, fit, evaluate held-out.

Used by the CLI (``clpips fit``/``evaluate``), the notebooks and the benchmark,
so that all of them run the same steps with the same defaults. The nested
cross-validation (:mod:`clpips.protocol`) builds on it: its bootstrap over targets
(:func:`bootstrap_result`) and the key of its cache (:func:`cache_key`) live here.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch

import clpips.atomic as atomic
from clpips import datasets
from clpips.defaults import DEFAULTS
from clpips.evaluate import RANKING, alignment_table, score_rankings, within_ranking_ranks
from clpips.features import read_cached
from clpips.model import initial_weight_vector
from clpips.paths import cache_dir, sha256_file
from clpips.stats import bootstrap_counts, paired_bootstrap
from clpips.stats.spearman_brown import icc_ak_from_rho
from clpips.train import (FitResult, GridJob, early_stopped, fit, fit_and_validation_rows, fit_many, pair_features_for,
                          ranking_pair_index)

#: dataset options that a built-in dataset's loader takes from the defaults
DATASET_OPTIONS = {"mur92": ("k", "candidates", "seed"), "simulated": ("seed",), "zappos": ("k", "seed"),
                   "alien_eggs": ("k", "seed")}


def load_dataset(name: str, **options):
    """A dataset by name or CSV path.

    Built-in datasets take the options they understand (:data:`DATASET_OPTIONS`),
    each defaulting to :data:`clpips.defaults.DEFAULTS`; other options are ignored
    for them. A CSV path is read by :func:`clpips.datasets.from_csv` with ``options``.
    """
    if name in DATASET_OPTIONS:
        # only the options this loader takes; the rest (e.g. k for simulated) do not apply
        return datasets.load(name, **{key: options.get(key, getattr(DEFAULTS, key)) for key in DATASET_OPTIONS[name]})
    # a study of one's own: the built-in datasets' sampling options do not apply
    return datasets.load(name, **{k: v for k, v in options.items() if k not in ("k", "candidates", "seed")})


#: the built-in datasets of real and simulated judgements, in the order the chapters show them
EVERY_DATASET = ("mur92", "zappos", "alien_eggs", "simulated")


def load_every_dataset(study: str = "", **options) -> dict:
    """Every built-in dataset (:data:`EVERY_DATASET`), plus ``study`` when it is a CSV path (a built-in
    name, as a chapter's ``dataset`` parameter may be, adds nothing), by name (:func:`load_dataset` each,
    with ``options``): what chapters 08 and 09 answer on."""
    extra = [study] if study and study not in DATASET_OPTIONS else []
    loaded = [load_dataset(name, **options) for name in [*EVERY_DATASET, *extra]]
    if extra and loaded[-1].name in EVERY_DATASET:
        raise ValueError(f"{study}: the study is named {loaded[-1].name!r}, as a built-in dataset; give it "
                         "another name (name= in from_csv, or rename its folder)")
    return {data.name: data for data in loaded}


#: the options of :func:`clpips.train.fit` that the CLI and the notebooks expose as parameters: the package's
#: one list (the ablations, the personal metrics and the batched fits take subsets of it, :func:`fit_options_except`)
FIT_OPTIONS = ("loss", "margin", "lr", "batch_size", "epochs", "patience", "init", "layers", "project")


def fit_options_except(*names: str) -> tuple[str, ...]:
    """:data:`FIT_OPTIONS` without ``names`` (each must be one of them), in the same order."""
    unknown = set(names) - set(FIT_OPTIONS)
    if unknown:
        raise ValueError(f"not fit options: {sorted(unknown)}; the fit options are {FIT_OPTIONS}")
    return tuple(name for name in FIT_OPTIONS if name not in names)


def fit_options(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`FIT_OPTIONS` among ``parameters`` (parsed CLI options, or a notebook's ``globals()``)."""
    return {name: parameters[name] for name in FIT_OPTIONS if name in parameters}


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


#: bump when a change alters what :func:`run`'s fit gives: it keys the fit cache
FIT_CACHE_VERSION = 1


def _cached_fit(dataset, train_table: pd.DataFrame, features, settings: dict[str, Any], progress: bool,
                cache: bool = True) -> FitResult:
    """:func:`clpips.train.fit` on ``train_table`` with ``settings`` (seed, net, device, fit options), read
    from ``<cache>/fits/`` when this dataset (its table and image bytes: the key of
    :func:`clpips.protocol.cache_key`) was fitted so before. The fit is deterministic, so the entry holds
    what fitting again gives; ``seconds`` is the time the fit took when it ran. Chapters 03, 04 and 05
    each ran the same fit (2.4 s on mur92, measured); a lock makes chapters side by side fit it once."""
    options = {k: v for k, v in settings.items() if k != "test_size"}
    if not cache:
        return fit(dataset, train_table, features=features, progress=progress, **options)
    path = fit_cache_path(dataset, settings)

    def read() -> Optional[FitResult]:
        entry = read_cached(path, _valid_fit_entry, "a fit's weights, history and settings")
        if entry is None:
            return None
        return FitResult(entry["weights"], entry["initial_weights"], pd.DataFrame(entry["history"]),
                         int(entry["best_epoch"]), dict(entry["config"]), float(entry["seconds"]))

    if (hit := read()) is not None:
        return hit
    with atomic.exclusive(path.parent / f".{path.name}.lock"):
        if (hit := read()) is not None:
            return hit
        result = fit(dataset, train_table, features=features, progress=progress, **options)
        entry = {"weights": result.weights.detach().clone(), "initial_weights": result.initial_weights.detach().clone(),
                 "history": {c: result.history[c].tolist() for c in result.history.columns},
                 "best_epoch": int(result.best_epoch), "config": atomic.json_ready(result.config),
                 "seconds": float(result.seconds)}
        try:
            atomic.write_checked(path, atomic.torch_bytes(entry))
        except OSError:
            pass  # a read-only cache: the fit is still returned
    return result


def fit_cache_path(dataset, settings: dict[str, Any]) -> Path:
    """Where :func:`run` caches the fit of ``dataset`` with ``settings`` (seed, test_size, net, device and
    the fit options, as :func:`run` passes them): ``clpips fit`` names it when its outputs cannot be written."""
    return cache_dir() / "fits" / f"v{FIT_CACHE_VERSION}-{cache_key(dataset, settings)}.pt"


def cache_key(dataset, settings: Mapping[str, Any]) -> str:
    """The key of a cached result of ``dataset`` with ``settings`` (a fit here, a run of
    :func:`clpips.protocol.crossval`): sha256 of the settings, the ranking table and the bytes of every
    image it names (and, for a dataset that draws its candidates, its description: its draws depend on
    its own options)."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    table = dataset.table[["set_id", "target", "candidate", "rater", "rank"]]
    digest.update(table.to_csv(index=False, lineterminator="\n").encode())
    for ref in sorted(set(dataset.table["target"]) | set(dataset.table["candidate"])):
        digest.update(f"{ref}={sha256_file(dataset.image_path(ref))}\n".encode())
    if getattr(dataset, "within", None) is not None:
        digest.update(str(getattr(dataset, "description", "")).encode())
    return digest.hexdigest()[:32]


def _valid_fit_entry(entry) -> bool:
    return (isinstance(entry, dict)
            and set(entry) == {"weights", "initial_weights", "history", "best_epoch", "config", "seconds"}
            and all(isinstance(entry[k], torch.Tensor) and entry[k].ndim == 1 and bool(torch.isfinite(entry[k]).all())
                    for k in ("weights", "initial_weights"))
            and entry["weights"].shape == entry["initial_weights"].shape
            and isinstance(entry["history"], dict) and isinstance(entry["config"], dict))


@dataclass
class Experiment:
    """Everything one run of the protocol produced."""

    dataset: Any
    train_table: pd.DataFrame
    test_table: pd.DataFrame
    features: Any
    result: FitResult
    scored: pd.DataFrame            #: held-out rows with one distance column per metric
    table: pd.DataFrame             #: alignment of each metric on the held-out rankings
    settings: dict[str, Any] = field(default_factory=dict)

    def baseline_weights(self) -> torch.Tensor:
        return initial_weight_vector(self.settings["net"], "lpips")


def run(dataset, *, seed: int = DEFAULTS.seed, test_size: float = DEFAULTS.test_size, net: str = DEFAULTS.net,
        device: str = DEFAULTS.device, progress: bool = True, extra_metrics: Optional[dict] = None,
        cache: bool = True, **fit_options) -> Experiment:
    """Split ``dataset`` by target, fit CLPIPS on the training side, evaluate both metrics held-out.

    ``fit_options`` go to :func:`clpips.train.fit` (margin, lr, epochs, init, layers, ...).
    ``extra_metrics`` maps names to more weight vectors to evaluate beside ``lpips`` and ``clpips``.
    The fit is read from and written to an on-disk cache unless ``cache=False``
    (:func:`_cached_fit`): chapters 03, 04 and 05 run the same one.
    """
    train_table, test_table = datasets.split_by_target(dataset.table, test_size=test_size, seed=seed)
    features = pair_features_for(dataset, dataset.table, net=net, device=device, progress=progress)
    result = _cached_fit(dataset, train_table, features, {"seed": seed, "test_size": test_size, "net": net,
                                                          "device": device, **fit_options}, progress, cache)
    metrics = {"lpips": initial_weight_vector(net, "lpips"), "clpips": result.weights, **(extra_metrics or {})}
    scored = score_rankings(test_table, features, metrics)
    settings = {"seed": seed, "test_size": test_size, "net": net, "dataset": getattr(dataset, "name", "custom"),
                **result.config}
    return Experiment(dataset, train_table, test_table, features, result, scored,
                      alignment_table(scored, list(metrics)), settings)


def metrics_json(exp: Experiment, bootstrap=None) -> dict[str, Any]:
    """The ``metrics.json`` written by ``clpips fit``: split, settings, held-out alignment per metric."""
    heldout = {name: {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
               for name, row in exp.table.to_dict(orient="index").items()}
    out = {
        "dataset": exp.settings["dataset"],
        "settings": exp.settings,
        "split": {"seed": exp.settings["seed"], "test_size": exp.settings["test_size"],
                  "train_targets": sorted(exp.train_table["target"].unique().tolist()),
                  "test_targets": sorted(exp.test_table["target"].unique().tolist())},
        "training": {"best_epoch": exp.result.best_epoch, "seconds": exp.result.seconds,
                     "history": exp.result.history.to_dict(orient="list")},
        "heldout": heldout,
    }
    if bootstrap is not None:
        out["bootstrap"] = bootstrap
    return out


def bootstrap_summary(scored: pd.DataFrame, metric_a: str, metric_b: str, n_boot: int = DEFAULTS.n_boot,
                      seed: int = DEFAULTS.seed, ci: float = DEFAULTS.ci, unit: str = "target") -> dict[str, Any]:
    """:func:`bootstrap_result` as a JSON-ready dict (what ``clpips fit``/``evaluate`` write)."""
    res = bootstrap_result(scored, metric_a, metric_b, unit=unit, n_boot=n_boot, seed=seed, ci=ci)
    return {"metric_a": metric_a, "metric_b": metric_b, "n_boot": n_boot, "seed": seed, "ci": ci,
            "unit": BOOTSTRAP_UNITS[unit],
            "differences": {idx: {k: float(v) for k, v in row.items()} for idx, row in res.summary().iterrows()}}


#: resampling units of :func:`bootstrap_result`, and what each draws
BOOTSTRAP_UNITS = {"ranking": "ranking (one person's ranking of one set, set_id|rater)",
                   "target": "target image (with all its rankings)"}


def bootstrap_result(scored: pd.DataFrame, metric_a: str, metric_b: str, unit: str = "target",
                     n_boot: int = DEFAULTS.n_boot, seed: int = DEFAULTS.seed, ci: float = DEFAULTS.ci,
                     method: str = "percentile"):
    """Paired bootstrap of ΔICC(A,k) and Δrho (b − a) on held-out rankings.

    Parameters
    ----------
    scored : pandas.DataFrame
        Held-out ranking rows with both metrics' distances (``Experiment.scored``).
    metric_a, metric_b : str
        Metric columns; Δ = b − a. Both enter as their ranks within each ranking,
        so the pooled rho is the rank-vs-rank statistic of :func:`clpips.evaluate.alignment`.
    unit : {"target", "ranking"}
        What is drawn with replacement. ``"target"`` (default): a target image with
        *all* its rankings (every rater), the cluster bootstrap: in mur92 the 16
        rankings of one target share its candidates and are not independent.
        ``"ranking"``: one person's ranking of one set, treating all rankings as
        independent (narrower intervals; the paper's unit, where each
        participant ranked their own images). Statistics are computed per
        ranking either way.
    n_boot, seed, ci, method
        As :func:`clpips.stats.paired_bootstrap`; BCa's jackknife leaves out one unit at a time.
    """
    if unit not in BOOTSTRAP_UNITS:
        raise ValueError(f"unit must be one of {tuple(BOOTSTRAP_UNITS)}, got {unit!r}")
    frame = pd.DataFrame({"ranking": scored[RANKING].to_numpy(), "target": scored["target"].astype(str).to_numpy(),
                          "rank": scored["rank"].to_numpy(float),
                          "a": within_ranking_ranks(scored, metric_a).to_numpy(float),
                          "b": within_ranking_ranks(scored, metric_b).to_numpy(float)})
    res = paired_bootstrap(frame, "ranking", "rank", "a", "b", n_boot=n_boot, ci=ci, seed=seed, method=method,
                           cluster_col="target" if unit == "target" else None)
    return dataclasses.replace(res, metric_a=metric_a, metric_b=metric_b)


#: ICC(A,k) of two untied rankings from their pooled rho and number of rows
#: (:func:`clpips.stats.icc_ak_from_rho`; the old name, kept for the chapters)
spearman_brown_icc = icc_ak_from_rho


def spearman_brown_check(result, scored: pd.DataFrame) -> dict[str, Any]:
    """How exactly ICC(A,k) follows from rho on every resample of a :func:`bootstrap_result`.

    Rebuilds each resample's number of rows ``n`` from its draw
    (:func:`clpips.stats.bootstrap_counts` with the result's seed, units in
    ``result.set_ids`` order) and compares both metrics' ICC(A,k) with
    :func:`clpips.stats.icc_ak_from_rho` of their rho.

    Returns
    -------
    dict
        ``max_abs_error`` (over resamples and both metrics), ``same_sign_share`` (share of
        resamples where ΔICC(A,k) and Δrho have the same sign, zeros counted as a sign),
        ``p_equal`` (the two one-sided p-values are equal).
    """
    units = scored[RANKING] if set(result.set_ids) <= set(scored[RANKING]) else scored["target"].astype(str)
    sizes = units.value_counts().reindex(result.set_ids).to_numpy(float)
    n = bootstrap_counts(len(result.set_ids), result.n_boot, result.seed) @ sizes
    d = result.distribution
    errors = [np.abs(d[f"icc_{m}"].to_numpy() - icc_ak_from_rho(d[f"rho_{m}"].to_numpy(), n)) for m in "ab"]
    same = np.sign(d["delta_icc"].to_numpy()) == np.sign(d["delta_rho"].to_numpy())
    return {"max_abs_error": float(np.nanmax(np.concatenate(errors))), "same_sign_share": float(np.mean(same)),
            "p_equal": bool(result.p_values["ΔICC(A,k)"] == result.p_values["Δrho"])}
