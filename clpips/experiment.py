"""The paper's protocol on one split: split by target, fit, evaluate held-out (:func:`run`).

The CLI (``clpips fit``/``evaluate``), the chapters and the benchmarks run these same steps. The
nested cross-validation (:mod:`clpips.protocol`) takes its bootstrap over targets
(:func:`bootstrap_result`) and its cache key (:func:`cache_key`) from here.
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import pandas as pd
import torch

import clpips.atomic as atomic
from clpips import datasets
from clpips.defaults import DEFAULTS
from clpips.evaluate import RANKING, alignment_table, score_rankings, within_ranking_ranks
from clpips.features import read_cached
from clpips.model import initial_weight_vector
from clpips.moved import moved_name
from clpips.paths import cache_dir, sha256_file
from clpips.stats import paired_bootstrap
from clpips.train import FitResult, fit, pair_features_for


class _LoaderOptions(Mapping):
    """Dataset name (:func:`clpips.datasets.available`) -> which of ``k``, ``candidates``, ``seed`` its loader
    takes, read from the loader's signature: a dataset another package declares needs no entry here.
    Read when asked, as a name may be registered after import (and only then is its loader imported)."""

    SAMPLING = ("k", "candidates", "seed")

    def __getitem__(self, name: str) -> tuple[str, ...]:
        if name not in self:
            raise KeyError(name)
        parameters = inspect.signature(datasets.loader(name)).parameters
        return tuple(option for option in self.SAMPLING if option in parameters)

    def __contains__(self, name: object) -> bool:
        return name in datasets.available()

    def __iter__(self):
        return iter(datasets.available())

    def __len__(self) -> int:
        return len(datasets.available())


#: dataset options that a named dataset's loader takes from the defaults (mur92: k, candidates, seed)
DATASET_OPTIONS: Mapping[str, tuple[str, ...]] = _LoaderOptions()


def load_dataset(name: str, **options):
    """A dataset by name (with the options of :data:`DATASET_OPTIONS` it takes, others ignored, defaults
    from :data:`clpips.defaults.DEFAULTS`) or a CSV path (:func:`clpips.datasets.from_csv` with ``options``)."""
    if name in DATASET_OPTIONS:
        return datasets.load(name, **{key: options.get(key, getattr(DEFAULTS, key)) for key in DATASET_OPTIONS[name]})
    # a study of one's own: the built-in datasets' sampling options do not apply
    return datasets.load(name, **{k: v for k, v in options.items() if k not in ("k", "candidates", "seed")})


#: the options of :func:`clpips.train.fit` that the CLI and the notebooks expose as parameters (the one list)
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


#: bump when a change alters what :func:`run`'s fit gives: it keys the fit cache
FIT_CACHE_VERSION = 1


def _cached_fit(dataset, train_table: pd.DataFrame, features, settings: dict[str, Any], progress: bool,
                cache: bool = True) -> FitResult:
    """:func:`clpips.train.fit` on ``train_table`` with ``settings``, read from ``<cache>/fits/`` when this
    dataset (:func:`cache_key`) was fitted so before: the fit is deterministic, and chapters 03, 04 and 05
    each ran it (2.4 s on mur92); a lock makes chapters side by side fit it once."""
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

    def write(result: FitResult) -> None:
        entry = {"weights": result.weights.detach().clone(), "initial_weights": result.initial_weights.detach().clone(),
                 "history": {c: result.history[c].tolist() for c in result.history.columns},
                 "best_epoch": int(result.best_epoch), "config": atomic.json_ready(result.config),
                 "seconds": float(result.seconds)}
        atomic.write_checked(path, atomic.torch_bytes(entry))

    return atomic.read_or_compute(path.parent / f".{path.name}.lock", read, lambda: fit(
        dataset, train_table, features=features, progress=progress, **options), write)


def fit_cache_path(dataset, settings: dict[str, Any]) -> Path:
    """Where :func:`run` caches the fit of ``dataset`` with ``settings`` (``clpips fit`` names it)."""
    return cache_dir() / "fits" / f"v{FIT_CACHE_VERSION}-{cache_key(dataset, settings)}.pt"


def cache_key(dataset, settings: Mapping[str, Any]) -> str:
    """The key of a cached fit or :func:`clpips.protocol.crossval` run: sha256 of ``settings``, the ranking
    table and every image's bytes (and a drawing dataset's description: its draws depend on its options)."""
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


def run(dataset, *, seed: int = DEFAULTS.seed, test_size: float = DEFAULTS.test_size, net: str = DEFAULTS.net,
        device: str = DEFAULTS.device, progress: bool = True, extra_metrics: Optional[dict] = None,
        cache: bool = True, **fit_options) -> Experiment:
    """Split ``dataset`` by target, fit CLPIPS on the training side (cached), evaluate both metrics held-out;
    ``fit_options`` go to :func:`clpips.train.fit`, ``extra_metrics`` (name -> weight vector) are scored too."""
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


#: resampling units of :func:`bootstrap_result`, and what each draws
BOOTSTRAP_UNITS = {"ranking": "ranking (one person's ranking of one set, set_id|rater)",
                   "target": "target image (with all its rankings)"}


def bootstrap_result(scored: pd.DataFrame, metric_a: str, metric_b: str, unit: str = "target",
                     n_boot: int = DEFAULTS.n_boot, seed: int = DEFAULTS.seed, ci: float = DEFAULTS.ci,
                     method: str = "percentile"):
    """Paired bootstrap of ΔICC(A,k) and Δrho (b − a) on held-out rankings (``Experiment.scored``).

    Both metrics enter as ranks within each ranking (the rank-vs-rank statistics of
    :func:`clpips.evaluate.alignment`). ``unit``: what is drawn. ``"target"`` (default), a target with
    *all* its rankings: in mur92 the 16 rankings of one target share its candidates and are not
    independent. ``"ranking"``: every ranking independent (narrower; the paper's unit, where each
    participant ranked their own images). The rest as :func:`clpips.stats.paired_bootstrap`.
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


def __getattr__(name: str):
    return moved_name(__name__, name)   # the batched fits, chapter 05's check, chapters 08-09's studies (clpips.book)
