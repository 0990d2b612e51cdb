"""How large an effect the fold-level test could see, and whether a null result is a small effect.

A corrected resampled t interval (:func:`clpips.stats.corrected_resampled_t`) that holds zero
says "no difference shown", not "no difference": with few folds it may also hold the effect
one looks for. This module says which, from the same corrected SE and its ``J - 1``
degrees of freedom (``J`` folds in all):

* :func:`detection_power` and :func:`minimal_detectable_effect`: the power of the two-sided
  (or one-sided) corrected t test against a true Δ, and the smallest Δ detected with a given
  power (noncentral t);
* :func:`equivalence`: two one-sided tests (TOST, Schuirmann 1987) of ``|Δ| < bound``;
* :func:`verdict`: one word for an interval against zero and a bound;
* :func:`power_table`: all of it per statistic of a :class:`clpips.protocol.CrossvalResult`;
* :func:`mode_difference`: two runs' Δs paired fold by fold (by target − by image).

Assumptions, shared by every function here: the corrected SE is the standard error of the
mean Δ (Nadeau & Bengio's heuristic correlation ``n_test / (n_test + n_train)`` between folds
holds), and the folds' Δs are about normal, so that ``(mean - Δ) / se`` is t with ``J - 1``
degrees of freedom. Under exactly that correlation and normal Δs it is exact (the tests
simulate it); the SE is the estimate from the data, so a power is a plug-in figure.
"""
from __future__ import annotations

from typing import Mapping, Union

import numpy as np
import pandas as pd
from scipy import optimize, stats

from clpips.choices import PROTOCOL_STATISTICS
from clpips.defaults import DEFAULTS
from clpips.stats.resampled import corrected_resampled_t

#: the words :func:`verdict` gives, in the order it tries them
VERDICTS: tuple[str, ...] = ("helps", "hurts", "equivalent", "inconclusive", "no gain shown", "no estimate")


def _check_test(se: float, df: float, alpha: float, sides: int) -> None:
    if not (se >= 0 or np.isnan(se)) or not (df > 0 or np.isnan(df)):
        raise ValueError(f"se must be >= 0 and df > 0, got se={se}, df={df}")
    if not 0 < alpha < 1 or sides not in (1, 2):
        raise ValueError(f"alpha must lie in (0, 1) and sides be 1 or 2, got alpha={alpha}, sides={sides}")


def detection_power(effect: float, se: float, df: float, alpha: float = 0.05, sides: int = 2) -> float:
    """Probability that the corrected t test rejects Δ = 0 when the true Δ is ``effect``.

    ``T = mean / se`` is noncentral t with ``df`` degrees of freedom and noncentrality
    ``effect / se``; two-sided, the test rejects when ``|T| > t_{1-alpha/2, df}`` (both tails
    count); one-sided (``sides=1``), when ``T > t_{1-alpha, df}`` (an effect in the positive
    direction). NaN when ``se`` or ``df`` is NaN (fewer than two folds).
    """
    _check_test(se, df, alpha, sides)
    if np.isnan(se) or np.isnan(df):
        return float("nan")
    if se == 0:
        return 1.0 if effect != 0 else alpha
    crit = stats.t.ppf(1 - alpha / sides, df)
    nc = effect / se
    upper = stats.nct.sf(crit, df, nc)
    # P(T < -crit) as P(T > crit) at -nc: scipy's nct.cdf returns NaN far in the lower tail (df 2, nc 12)
    return float(upper + stats.nct.sf(crit, df, -nc) if sides == 2 else upper)


def minimal_detectable_effect(se: float, df: float, alpha: float = 0.05, power: float = 0.8,
                              sides: int = 2) -> float:
    """The smallest true Δ > 0 that the corrected t test detects with probability ``power``.

    Solves :func:`detection_power` ``(Δ, se, df, alpha, sides) = power`` for Δ (noncentral t,
    :func:`scipy.optimize.brentq` on the noncentrality). The normal approximation, good for
    large ``df``, is ``(z_{1-alpha/sides} + z_{power}) * se`` (2.80 se at 5%, 80%, two-sided);
    with few folds the t quantiles and the noncentral t's spread make it larger.

    Assumes (see the module): ``se`` is the standard error of the mean Δ (the corrected SE of
    :func:`clpips.stats.corrected_resampled_t`), ``df = J - 1``, the folds' Δs about normal.
    Returns NaN when ``se`` or ``df`` is NaN, 0 when ``se`` is 0.
    """
    _check_test(se, df, alpha, sides)
    if not alpha / sides < power < 1:
        raise ValueError(f"power must lie in (alpha/sides, 1) = ({alpha / sides:g}, 1), got {power}")
    if np.isnan(se) or np.isnan(df):
        return float("nan")
    if se == 0:
        return 0.0

    def gap(nc: float) -> float:
        return detection_power(nc, 1.0, df, alpha, sides) - power

    high = stats.t.ppf(1 - alpha / sides, df) + stats.norm.ppf(power) + 1.0
    while gap(high) < 0:   # heavy tails at tiny df: widen until the power is reached
        high *= 2
    return float(optimize.brentq(gap, 0.0, high, xtol=1e-12) * se)


def equivalence(delta: float, se: float, df: float, bound: float, alpha: float = 0.05) -> dict[str, float]:
    """Two one-sided t tests (TOST) of ``-bound < Δ < bound`` with the corrected SE.

    ``t_lower = (delta + bound) / se`` tests H0: Δ <= -bound (p from the upper tail of t with
    ``df`` degrees of freedom), ``t_upper = (delta - bound) / se`` tests H0: Δ >= bound (lower
    tail). ``pval`` is the larger of the two; ``equivalent`` is ``pval < alpha``, which holds
    exactly when the ``1 - 2 alpha`` interval ``delta ± t_{1-alpha, df} se`` (``low, high``)
    lies inside ``(-bound, bound)``. Same assumptions as :func:`minimal_detectable_effect`.
    """
    _check_test(se, df, alpha, 2)
    if not bound > 0:
        raise ValueError(f"the equivalence bound must be > 0, got {bound}")
    t_lower, t_upper = (delta + bound) / se, (delta - bound) / se
    p_lower, p_upper = float(stats.t.sf(t_lower, df)), float(stats.t.cdf(t_upper, df))
    half = float(stats.t.ppf(1 - alpha, df) * se)
    pval = max(p_lower, p_upper)
    return {"delta": float(delta), "se": float(se), "df": float(df), "bound": float(bound),
            "t_lower": float(t_lower), "p_lower": p_lower, "t_upper": float(t_upper), "p_upper": p_upper,
            "pval": pval, "low": float(delta) - half, "high": float(delta) + half, "equivalent": bool(pval < alpha)}


def verdict(low: float, high: float, bound: float) -> str:
    """One word for an interval ``[low, high]`` of Δ = CLPIPS − LPIPS, against 0 and ``bound`` > 0.

    Tried in this order: ``"helps"`` (low > 0), ``"hurts"`` (high < 0); the interval now holds 0:
    ``"equivalent"`` (inside ``(-bound, bound)``: any effect is smaller than the bound either way),
    ``"inconclusive"`` (reaches ``bound``, high >= bound: zero and the sought gain both fit),
    ``"no gain shown"`` (otherwise: a gain of ``bound`` is ruled out, a loss of ``bound`` is not);
    ``"no estimate"`` for a NaN end. On a ``1 - 2 alpha`` interval that holds 0, "equivalent" is TOST at ``alpha``.
    """
    if np.isnan(low) or np.isnan(high):
        return "no estimate"
    if low > high or not bound > 0:
        raise ValueError(f"verdict needs low <= high and bound > 0, got [{low}, {high}] and bound {bound}")
    if low > 0 or high < 0:
        return "helps" if low > 0 else "hurts"
    if -bound < low and high < bound:
        return "equivalent"
    return "inconclusive" if high >= bound else "no gain shown"


def fold_ratio(folds: pd.DataFrame) -> float:
    """``n_test / n_train`` of a run's outer folds (targets), averaged: the corrected t's ratio."""
    return float((folds["n_test_targets"] / folds["n_train_targets"]).mean())


def _fold_tests(result, ci: float) -> pd.DataFrame:
    """Per statistic: Δ, the corrected interval, SE and df, from a result's folds or from its summary."""
    if hasattr(result, "folds"):
        ratio = fold_ratio(result.folds)
        rows = {s: corrected_resampled_t(result.folds[f"delta_{s}"].to_numpy(float), ratio, ci)
                for s in PROTOCOL_STATISTICS}
        out = pd.DataFrame({"delta": [r["mean"] for r in rows.values()], "low": [r["low"] for r in rows.values()],
                            "high": [r["high"] for r in rows.values()], "se": [r["se"] for r in rows.values()],
                            "n_folds": [r["n"] for r in rows.values()]}, index=pd.Index(list(rows), name="statistic"))
    elif isinstance(result, pd.DataFrame) and {"delta", "nb_low", "nb_high", "n_folds"} <= set(result.columns):
        out = result[["delta", "nb_low", "nb_high", "n_folds"]].rename(columns={"nb_low": "low", "nb_high": "high"})
        half_width = stats.t.ppf(0.5 + ci / 2, out["n_folds"] - 1)   # the summary's interval, made with this ci
        out = out.assign(se=(out["high"] - out["low"]) / (2 * half_width))
    else:
        raise TypeError(f"power_table needs a CrossvalResult or its summary() (columns delta, nb_low, nb_high, "
                        f"n_folds), got {type(result).__name__}")
    return out.assign(df=out["n_folds"].astype(float) - 1)


def power_table(result, bound: Union[float, Mapping[str, float]], ci: float = DEFAULTS.ci,
                power: float = 0.8) -> pd.DataFrame:
    """Per statistic (ICC(A,k) first): what the fold-level test shows and what it could have shown.

    ``result`` is a :class:`clpips.protocol.CrossvalResult` (its folds' Δs go through
    :func:`clpips.stats.corrected_resampled_t`, as its ``summary`` does) or its ``summary(ci=ci)``
    (the SE is read back from the interval, so pass the same ``ci``). ``bound``: the effect one
    looks for (the paper's ΔICC(A,k), say), one for every statistic or a mapping statistic ->
    bound (the table then holds those statistics). Columns: ``delta, low, high`` (the ``ci``
    corrected interval), ``se, df, n_folds``; ``mde``: :func:`minimal_detectable_effect` of the
    two-sided test at ``alpha = 1 - ci`` (the one whose interval is shown) with ``power``;
    ``power_at_bound``: :func:`detection_power` at Δ = bound; ``tost_pval``: :func:`equivalence`'s
    p against ± bound (below ``(1 - ci) / 2`` exactly when the shown interval lies inside
    ± bound); ``verdict``: :func:`verdict` of the shown interval.
    """
    tests = _fold_tests(result, ci)
    bounds = dict(bound) if isinstance(bound, Mapping) else {s: float(bound) for s in tests.index}
    missing = set(bounds) - set(tests.index)
    if missing:
        raise ValueError(f"power_table: no statistic {sorted(missing)} in the result (have {list(tests.index)})")
    tests = tests.loc[[s for s in tests.index if s in bounds]].assign(bound=pd.Series(bounds, dtype=float))
    alpha = 1 - ci
    rows = [{"mde": minimal_detectable_effect(r.se, r.df, alpha, power),
             "power_at_bound": detection_power(r.bound, r.se, r.df, alpha),
             "tost_pval": (equivalence(r.delta, r.se, r.df, r.bound)["pval"] if r.se > 0 else float("nan")),
             "verdict": verdict(r.low, r.high, r.bound)} for r in tests.itertuples()]
    return tests.assign(**pd.DataFrame(rows, index=tests.index))


def mode_difference(first, second, statistic: str = "icc_A_k", ci: float = DEFAULTS.ci) -> dict[str, float]:
    """``first``'s Δ minus ``second``'s, paired by (repeat, fold), with the corrected t interval.

    For two runs of one dataset in two split modes (by target − by image): each outer fold's Δ
    of ``statistic`` (CLPIPS − LPIPS) in ``first`` minus the same-numbered fold's in ``second``,
    through :func:`clpips.stats.corrected_resampled_t` with both runs' mean ``n_test / n_train``.
    The two runs' folds hold different rankings (their splits differ), so the pairing removes
    only what the same repeat and fold number share, which may be little: the interval is
    then about that of two independent sets of folds.
    Returns ``delta, se, df, low, high, pval, n_folds``.
    """
    keys = ["repeat", "fold"]
    a, b = (r.folds.set_index(keys)[f"delta_{statistic}"] for r in (first, second))
    if not a.index.sort_values().equals(b.index.sort_values()):
        raise ValueError("mode_difference: the two runs have different (repeat, fold) numbers "
                         "(compare runs with the same folds and repeats)")
    d = (a - b.reindex(a.index)).to_numpy(float)
    ratio = (fold_ratio(first.folds) + fold_ratio(second.folds)) / 2
    nb = corrected_resampled_t(d, ratio, ci)
    return {"delta": nb["mean"], "se": nb["se"], "df": float(nb["n"] - 1), "low": nb["low"], "high": nb["high"],
            "pval": nb["pval"], "n_folds": nb["n"]}
