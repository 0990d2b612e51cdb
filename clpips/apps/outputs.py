"""What the command line writes: the JSON forms of a fit, of its bootstrap and of a cross-validation run."""
from __future__ import annotations

from typing import Any

import pandas as pd

from clpips.atomic import json_ready
from clpips.defaults import DEFAULTS
from clpips.evaluate import RANKING
from clpips.experiment import BOOTSTRAP_UNITS, Experiment, bootstrap_result
from clpips.protocol import CrossvalResult, grid_edges

__all__ = ["metrics_json", "bootstrap_summary", "crossval_json", "kept"]


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


def crossval_json(result: CrossvalResult, ci: float = DEFAULTS.ci, n_boot: int = DEFAULTS.n_boot) -> dict[str, Any]:
    """Settings, summary, what was kept and chosen, grid edges and per-fold rows of a run as strict-JSON-ready
    values (what ``clpips crossval`` writes)."""
    summary = result.summary(ci=ci, n_boot=n_boot)
    return json_ready({"settings": result.settings, "summary": summary.reset_index().to_dict(orient="records"),
                       "kept": kept(result), "chosen": result.chosen().to_dict(orient="records"),
                       "grid_edges": grid_edges(result.folds, result.inner, warn=False).reset_index()
                       .to_dict(orient="records"),
                       "folds": result.folds.to_dict(orient="records")})


def kept(result: CrossvalResult) -> dict[str, Any]:
    """What a run's outer folds kept and dropped (a split by image shortens rankings), summed over them (each
    fold's row holds its own): what ``clpips crossval`` prints and writes."""
    f = result.folds
    sizes = result.oof.groupby(["repeat", "fold", RANKING]).size()
    table_rows = f["n_train_rows"] + f["n_test_rows"] + f["rows_on_neither_side"]
    return {"folds": int(len(f)), "min_candidates": result.settings.get("min_candidates"),
            "test_rows": int(f["n_test_rows"].sum()), "test_rankings": int(f["n_test_rankings"].sum()),
            "test_rankings_dropped": int(f["n_test_rankings_dropped"].sum()),
            "train_rankings_dropped": int(f["n_train_rankings_dropped"].sum()),
            "rows_on_neither_side": int(f["rows_on_neither_side"].sum()),
            "rows_on_neither_side_share": float((f["rows_on_neither_side"] / table_rows).mean()),
            "test_candidates_min": int(sizes.min()), "test_candidates_median": float(sizes.median()),
            "test_candidates_max": int(sizes.max()), "boot_targets": len(result.boot_targets()),
            "heldout_targets": int(result.oof["target"].nunique()),
            "untrained_folds": int((~f["trained"].astype(bool)).sum()) if "trained" in f else 0}
