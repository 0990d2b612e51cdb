"""Inference over people: a mean with its bootstrap interval, paired tests, Holm's adjustment."""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
from scipy import stats as sps

from clpips.defaults import DEFAULTS


def people_interval(values: Sequence[float], n_boot: int = DEFAULTS.n_boot, ci: float = DEFAULTS.ci,
                    seed: int = DEFAULTS.seed) -> tuple[float, float, float]:
    """Mean of per-person values with a percentile bootstrap interval over people
    (:func:`scipy.stats.bootstrap`, ``rng = numpy.random.default_rng(seed)``).

    NaN values (people without a result) are left out. Returns ``(mean, low, high)``;
    with fewer than two values the interval is NaN.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return np.nan, np.nan, np.nan
    if len(x) < 2:
        return float(x.mean()), np.nan, np.nan
    res = sps.bootstrap((x,), np.mean, n_resamples=int(n_boot), confidence_level=ci, method="percentile",
                        vectorized=True, rng=np.random.default_rng(seed))
    return float(x.mean()), float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_tests(deltas: Sequence[float]) -> dict[str, float]:
    """Sign test and Wilcoxon signed-rank test (two-sided) of per-person differences against 0.

    Returns ``n`` (people with a value), ``n_positive``, ``n_negative``,
    ``sign_p`` (exact binomial test on the non-zero signs) and ``wilcoxon_p``
    (:func:`scipy.stats.wilcoxon`, exact for small samples without ties;
    NaN with fewer than two non-zero differences).
    """
    d = np.asarray(deltas, dtype=float)
    d = d[~np.isnan(d)]
    pos, neg = int((d > 0).sum()), int((d < 0).sum())
    sign_p = float(sps.binomtest(pos, pos + neg, 0.5).pvalue) if pos + neg else np.nan
    nonzero = d[d != 0]
    if len(nonzero) >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # scipy's note on exact p with ties
            wil = float(sps.wilcoxon(nonzero).pvalue)
    else:
        wil = np.nan
    return {"n": int(len(d)), "n_positive": pos, "n_negative": neg, "sign_p": sign_p, "wilcoxon_p": wil}


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN stays NaN): :func:`pingouin.multicomp`."""
    import pingouin
    p = np.asarray(pvalues, dtype=float)
    if np.isnan(p).all():
        return np.full_like(p, np.nan)
    return np.asarray(pingouin.multicomp(p, method="holm")[1], dtype=float)
