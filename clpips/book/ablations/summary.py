"""Summaries of ablation results: per level, the spread across replicates and the paired difference from the default.

:func:`summarize` (with the corrected resampled t interval for re-splits),
:func:`default_fit_rows`, :func:`budget_limited` (levels that ran out of epochs) and
:func:`noise_table` (training versus split noise). The chapter's words and tables about
these numbers are :mod:`clpips.book.report`'s.
"""
from __future__ import annotations

import json
from typing import Any, Optional

import numpy as np
import pandas as pd

from clpips.defaults import DEFAULTS

#: metric columns of a result row
METRICS = ("icc", "rho")

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
    from clpips.stats import corrected_resampled_t
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
