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
    # a study of one's own: the built-in datasets' sampling options do not apply
    return datasets.load(name, **{k: v for k, v in options.items() if k not in ("k", "candidates", "seed")})


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


#: resampling units of :func:`bootstrap_result`
BOOTSTRAP_UNITS = ("ranking", "target")


def bootstrap_result(scored: pd.DataFrame, metric_a: str, metric_b: str, unit: str = "ranking",
                     n_boot: int = DEFAULTS.n_boot, seed: int = DEFAULTS.seed, ci: float = DEFAULTS.ci,
                     method: str = "percentile"):
    """Paired bootstrap of ΔICC(A,k) and Δrho (b − a) with the whole result (distributions included).

    Parameters
    ----------
    scored : pandas.DataFrame
        Held-out ranking rows with both metrics' distances (``Experiment.scored``).
    metric_a, metric_b : str
        Metric columns; Δ = b − a. Both enter as their ranks within each ranking,
        as in :func:`bootstrap_summary`.
    unit : {"ranking", "target"}
        What is drawn with replacement. ``"ranking"``: one person's ranking of one
        set (``set_id|rater``), as :func:`bootstrap_summary` and the CLI do; this
        treats the rankings of the same target image as independent. ``"target"``:
        a target image with *all* its rankings (every rater, every set of that
        target), the cluster bootstrap; the statistics are still computed per
        ranking (metric ranks within each ranking, a drawn target contributes
        each of its rankings as often as it was drawn).
    n_boot, seed, ci
        Resamples, seed of :func:`clpips.stats.bootstrap_counts` (drawing the units), level.
    method : {"percentile", "bca"}
        Interval; BCa's jackknife leaves out one *unit* at a time.

    Returns
    -------
    clpips.stats.PairedBootstrapResult
        ``set_ids`` are the units (ranking ids or targets).

    Notes
    -----
    The target bootstrap reuses the resampling engine of
    :func:`clpips.stats.paired_bootstrap` (its per-ranking sufficient statistics,
    private to :mod:`clpips.stats.bootstrap`): a draw of targets with counts
    ``c`` is the ranking draw in which every ranking of target ``t`` has count
    ``c[t]``. The tests check it against explicitly concatenated resamples.
    """
    import dataclasses
    import warnings

    import numpy as np

    from .evaluate import RANKING, within_ranking_ranks
    from .stats import (DegenerateDataWarning, PairedBootstrapResult, bca_interval, bootstrap_counts,
                        check_table, one_sided_pvalue, paired_bootstrap, percentile_interval)
    from .stats import bootstrap as _engine

    if unit not in BOOTSTRAP_UNITS:
        raise ValueError(f"unit must be one of {BOOTSTRAP_UNITS}, got {unit!r}")
    if method not in ("percentile", "bca"):
        raise ValueError(f"method must be 'percentile' or 'bca', got {method!r}")
    frame = pd.DataFrame({"ranking": scored[RANKING].to_numpy(), "target": scored["target"].astype(str).to_numpy(),
                          "rank": scored["rank"].to_numpy(float),
                          "a": within_ranking_ranks(scored, metric_a).to_numpy(float),
                          "b": within_ranking_ranks(scored, metric_b).to_numpy(float)})
    if unit == "ranking":
        res = paired_bootstrap(frame, "ranking", "rank", "a", "b", n_boot=n_boot, ci=ci, seed=seed, method=method)
        return dataclasses.replace(res, metric_a=metric_a, metric_b=metric_b)

    table = check_table(frame, {"set_col": "ranking", "rank_col": "rank", "metric_a_col": "a", "metric_b_col": "b"},
                        numeric=("rank_col", "metric_a_col", "metric_b_col"), caller="bootstrap_result")
    prep = _engine._prepare(table, {"a": "metric_a_col", "b": "metric_b_col"})
    target_of = frame.groupby("ranking")["target"].agg(["first", "nunique"])
    if (target_of["nunique"] > 1).any():
        raise ValueError("a ranking spans several targets; cannot resample by target")
    code, targets = pd.factorize(target_of["first"].reindex(prep.set_ids), sort=True)
    n_targets = len(targets)
    if n_targets < 2:
        raise ValueError(f"bootstrap_result: need at least 2 targets to resample, got {n_targets}")

    def evaluate(target_counts: np.ndarray) -> dict[str, np.ndarray]:
        parts = [_engine._evaluate(prep, target_counts[i:i + 1000][:, code])
                 for i in range(0, len(target_counts), 1000)]
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}

    def with_deltas(values: dict[str, np.ndarray]) -> pd.DataFrame:
        out = {}
        for stat in ("icc", "rho"):
            out[f"{stat}_a"], out[f"{stat}_b"] = values[f"{stat}_a"], values[f"{stat}_b"]
            out[f"delta_{stat}"] = values[f"{stat}_b"] - values[f"{stat}_a"]
        return pd.DataFrame(out)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)
        observed = with_deltas(evaluate(np.ones((1, n_targets), dtype=np.int64))).iloc[0]
        boot = with_deltas(evaluate(bootstrap_counts(n_targets, n_boot, seed)))
        jack = with_deltas(evaluate(1 - np.eye(n_targets, dtype=np.int64))) if method == "bca" else None
    intervals = {c: (bca_interval(boot[c].to_numpy(), observed[c], jack[c].to_numpy(), ci) if method == "bca"
                     else percentile_interval(boot[c].to_numpy(), ci)) for c in boot.columns}
    p_values = pd.Series({"ΔICC(A,k)": one_sided_pvalue(boot["delta_icc"].to_numpy()),
                          "Δrho": one_sided_pvalue(boot["delta_rho"].to_numpy())})
    obs = pd.DataFrame({"a": [observed["icc_a"], observed["rho_a"]], "b": [observed["icc_b"], observed["rho_b"]],
                        "delta": [observed["delta_icc"], observed["delta_rho"]]},
                       index=pd.Index(["ICC(A,k)", "rho"], name="statistic"))
    return PairedBootstrapResult(
        metric_a=metric_a, metric_b=metric_b, observed=obs, distribution=boot,
        intervals=pd.DataFrame(intervals, index=["ci_low", "ci_high"]).T, p_values=p_values, jackknife=jack,
        n_boot=int(n_boot), ci=ci, seed=seed, method=method, set_ids=np.asarray(targets))


def spearman_brown_icc(rho, n_items):
    """ICC(A,k) of two raters who both give untied ranks, from their pooled rank correlation.

    With ranks ``1..k`` on both sides of every ranking the two columns have equal
    means and variances, so the between-rater mean square is 0 and
    ``ICC(C,k) = 2 rho / (1 + rho)`` (Spearman–Brown) while
    ``ICC(A,k) = 2 rho / (1 + rho - (1 - rho) / n)`` with ``n`` items
    (rows). Both are increasing in ``rho``: on the same resample, ΔICC(A,k) and
    Δrho have the same sign.
    """
    import numpy as np
    rho = np.asarray(rho, dtype=float)
    return 2 * rho / (1 + rho - (1 - rho) / np.asarray(n_items, dtype=float))


def spearman_brown_check(result, scored: pd.DataFrame) -> dict[str, Any]:
    """How exactly ICC(A,k) follows from rho on every resample of a :func:`bootstrap_result`.

    Rebuilds each resample's number of rows ``n`` from its draw
    (:func:`clpips.stats.bootstrap_counts` with the result's seed, units in
    ``result.set_ids`` order) and compares both metrics' ICC(A,k) with
    :func:`spearman_brown_icc` of their rho.

    Returns
    -------
    dict
        ``max_abs_error`` (over resamples and both metrics), ``same_sign_share`` (share of
        resamples where ΔICC(A,k) and Δrho have the same sign, zeros counted as a sign),
        ``p_equal`` (the two one-sided p-values are equal).
    """
    import numpy as np

    from .evaluate import RANKING
    from .stats import bootstrap_counts
    units = scored[RANKING] if set(result.set_ids) <= set(scored[RANKING]) else scored["target"].astype(str)
    sizes = units.value_counts().reindex(result.set_ids).to_numpy(float)
    n = bootstrap_counts(len(result.set_ids), result.n_boot, result.seed) @ sizes
    d = result.distribution
    errors = [np.abs(d[f"icc_{m}"].to_numpy() - spearman_brown_icc(d[f"rho_{m}"].to_numpy(), n)) for m in "ab"]
    same = np.sign(d["delta_icc"].to_numpy()) == np.sign(d["delta_rho"].to_numpy())
    return {"max_abs_error": float(np.nanmax(np.concatenate(errors))), "same_sign_share": float(np.mean(same)),
            "p_equal": bool(result.p_values["ΔICC(A,k)"] == result.p_values["Δrho"])}
