"""The paper's protocol end to end: split by target, fit, evaluate held-out.

Used by the CLI (``clpips fit``/``evaluate``), the notebooks and the benchmark,
so that all of them run the same steps with the same defaults.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import pandas as pd
import torch

from .defaults import DEFAULTS
from .evaluate import alignment_table, score_rankings
from .model import initial_weight_vector
from .train import FitResult, fit, pair_features_for

#: dataset options that a built-in dataset's loader takes from the defaults
DATASET_OPTIONS = {"mur92": ("k", "candidates", "seed"), "simulated": ("seed",)}


def load_dataset(name: str, **options):
    """A dataset by name or CSV path.

    Built-in datasets take the options they understand (:data:`DATASET_OPTIONS`),
    each defaulting to :data:`clpips.defaults.DEFAULTS`; other options are ignored
    for them. A CSV path is read by :func:`clpips.datasets.from_csv` with ``options``.
    """
    from . import datasets
    if name in DATASET_OPTIONS:
        # only the options this loader takes; the rest (e.g. k for simulated) do not apply
        return datasets.load(name, **{key: options.get(key, getattr(DEFAULTS, key)) for key in DATASET_OPTIONS[name]})
    return datasets.load(name, **options)


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
        **fit_options) -> Experiment:
    """Split ``dataset`` by target, fit CLPIPS on the training side, evaluate both metrics held-out.

    ``fit_options`` go to :func:`clpips.train.fit` (margin, lr, epochs, init, layers, ...).
    ``extra_metrics`` maps names to more weight vectors to evaluate beside ``lpips`` and ``clpips``.
    """
    from .datasets import split_by_target
    train_table, test_table = split_by_target(dataset.table, test_size=test_size, seed=seed)
    features = pair_features_for(dataset, dataset.table, net=net, device=device, progress=progress)
    result = fit(dataset, train_table, net=net, seed=seed, device=device, features=features,
                 progress=progress, **fit_options)
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
                      seed: int = DEFAULTS.seed, ci: float = DEFAULTS.ci) -> dict[str, Any]:
    """Paired bootstrap over rankings of ΔICC(A,k) and Δrho (b − a), as a JSON-ready dict.

    Both metrics enter as their ranks within each ranking, so the pooled rho is
    the same rank-vs-rank statistic that :func:`clpips.evaluate.alignment` reports.
    """
    from .evaluate import RANKING, within_ranking_ranks
    from .stats import paired_bootstrap
    frame = pd.DataFrame({"ranking": scored[RANKING].to_numpy(), "rank": scored["rank"].to_numpy(float),
                          "a": within_ranking_ranks(scored, metric_a).to_numpy(float),
                          "b": within_ranking_ranks(scored, metric_b).to_numpy(float)})
    res = paired_bootstrap(frame, "ranking", "rank", "a", "b", n_boot=n_boot, ci=ci, seed=seed)
    summary = res.summary()
    return {"metric_a": metric_a, "metric_b": metric_b, "n_boot": n_boot, "seed": seed, "ci": ci,
            "unit": "ranking (set_id|rater)",
            "differences": {idx: {k: float(v) for k, v in row.items()} for idx, row in summary.iterrows()}}
