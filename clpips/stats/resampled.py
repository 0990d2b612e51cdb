"""Intervals for a mean difference over repeated re-splits (cross-validation folds).

Folds of a K-fold split, and repeats of it, train on overlapping data, so the
per-fold differences are positively correlated and ``s^2 / J`` understates the
variance of their mean. Nadeau & Bengio (2003, *Machine Learning* 52:239) replace
it with ``(1/J + n_test/n_train) s^2`` (the "corrected resampled t"); Bouckaert &
Frank (2004) recommend it for repeated K-fold with ``J = R K`` folds in all.
It assumes the correlation between two folds' differences is about
``n_test / (n_test + n_train)``: a heuristic, not a bound, and still conditional
on the dataset (the population of targets) at hand.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from clpips.defaults import DEFAULTS


def corrected_resampled_t(differences, test_train_ratio: float | None, ci: float = DEFAULTS.ci) -> dict:
    """Mean of per-fold differences with a t interval corrected for overlapping training sets.

    ``test_train_ratio``: a fold's ``n_test / n_train``; None when the replicates share one test set
    (training noise only: plain ``s^2 / J``). Returns ``mean, sd, se, low, high, t, pval`` (two-sided,
    ``J - 1`` df) and ``n``; NaN interval, t and p below two finite differences.
    """
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    n = len(d)
    out = {"n": n, "mean": float(d.mean()) if n else float("nan")}
    if n < 2:
        return {**out, **dict.fromkeys(("sd", "se", "low", "high", "t", "pval"), float("nan"))}
    var = d.var(ddof=1)
    factor = 1 / n + (float(test_train_ratio) if test_train_ratio is not None else 0.0)
    se = float(np.sqrt(var * factor))
    half = float(stats.t.ppf(0.5 + ci / 2, n - 1) * se)
    t = out["mean"] / se if se > 0 else float("nan")
    pval = float(2 * stats.t.sf(abs(t), n - 1)) if se > 0 else float("nan")
    return {**out, "sd": float(np.sqrt(var)), "se": se, "low": out["mean"] - half, "high": out["mean"] + half,
            "t": float(t), "pval": pval}
