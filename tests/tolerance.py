"""Float tolerances for the tests, each derived from an error bound, never from one machine's result.

Two computations of the same real number in floating point differ by the rounding of each:
CPUs (Intel or AMD, AVX2 or AVX-512 kernels, MKL's conditional bit-reproducibility modes) sum
the same terms in other orders, so a test that compares two such results needs a tolerance that
holds for *any* order. The bounds here are the textbook ones (Higham, *Accuracy and Stability of
Numerical Algorithms*, 2nd ed., 2002):

* a sum or dot product of ``n`` terms, any order (Higham eq. 3.5 and Lemma 3.1):
  ``|fl(sum x_i y_i) - sum x_i y_i| <= gamma_n * sum |x_i y_i|`` with ``gamma_n = n u / (1 - n u)``
  and ``u`` the unit roundoff (``2^-24`` for float32, ``2^-53`` for float64). Two computations
  in different orders differ by at most twice that (:func:`dot_bound`).
* the same error *typically*: Higham & Mary (SIAM J. Sci. Comput. 41(5), 2019, Thm 2.8) show that
  with rounding errors modelled as independent and mean zero, the error is at most
  ``lam * sqrt(n) * u * sum |x_i y_i|`` (to first order) with probability at least
  ``1 - 2 n exp(-lam^2 / 2)``; at ``lam = 6`` that is over 0.99 for every ``n`` used here (``n`` up to
  4,096), so at least half of a tensor's entries meet it and its *median* error must too
  (:func:`typical_dot_bound`). That is the tight bound asserted beside each worst-case one.

Iterative fits (Adam over many steps, a hinge whose slope jumps) have no useful a-priori bound:
tests compare them *in float64* (``clpips.train.compute_dtype``: float64 features give a float64
fit) against :func:`iterative_bound`, a growth factor times ``u``. The factor comes from a measurement
across both CPU kinds (see ``ITERATIVE_GROWTH``), so in float64 the allowance is still ~1e-12.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from scipy import stats

from clpips.stats import MeanSquares, icc_inference, mean_squares
from clpips.stats.icc import LABELS

#: unit roundoff of each floating-point format (round to nearest)
UNIT_ROUNDOFF = {torch.float32: 2.0 ** -24, torch.float64: 2.0 ** -53,
                 np.dtype(np.float32): 2.0 ** -24, np.dtype(np.float64): 2.0 ** -53}

#: lambda of the probabilistic bound (Higham & Mary 2019): failure probability <= 2 n exp(-18) < 0.01 for n <= 4,096
LAMBDA = 6.0

#: error growth of an iterative fit, in units of u * max|w|. Measured in float32, as the largest
#: |difference| / (u32 * max|w|) between two summation orders of the same fit: 118 on an Intel Xeon
#: (AVX-512, this suite's ``test_early_stopped_selection_equals_fit_on_a_small_problem``) and 523 on an
#: AMD EPYC (6.23e-05 with max|w| = 2.0, issue #25); 1e4 leaves a factor of about 20 over both.
ITERATIVE_GROWTH = 1e4


def unit_roundoff(dtype) -> float:
    try:
        return UNIT_ROUNDOFF[dtype]
    except KeyError:
        return UNIT_ROUNDOFF[np.dtype(dtype)]


def gamma(n: int, u: float) -> float:
    """Higham's ``gamma_n = n u / (1 - n u)``."""
    if n * u >= 1:
        raise ValueError(f"gamma_{n} is undefined for u = {u}")
    return n * u / (1 - n * u)


def dot_bound(abs_sum, n: int, dtype, computations: int = 2):
    """Worst-case |difference| between ``computations`` evaluations (orders) of sums of ``n`` terms whose
    absolute values add up to ``abs_sum`` (a number or an array, one per sum): ``computations * gamma_n * abs_sum``.
    ``computations=1`` bounds one evaluation against the exact value."""
    return computations * gamma(n, unit_roundoff(dtype)) * abs_sum


def typical_dot_bound(abs_sum, n: int, dtype, computations: int = 2):
    """The probabilistic bound ``computations * LAMBDA * sqrt(n) * u * abs_sum`` that a median error meets."""
    return computations * LAMBDA * math.sqrt(n) * unit_roundoff(dtype) * abs_sum


def iterative_bound(scale: float, dtype) -> float:
    """Allowed |difference| between two summation orders of the same iterative fit: ``ITERATIVE_GROWTH * u * scale``."""
    return ITERATIVE_GROWTH * unit_roundoff(dtype) * scale


def _as_array(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=float)


def assert_within(got, ref, max_bound, median_bound=None, what: str = "") -> None:
    """Assert ``|got - ref| <= max_bound`` entry by entry (``max_bound`` a number or an array of the
    same shape) and, when given, ``median(|got - ref|) <= median(median_bound)``. The message gives the
    worst ratio of error to bound."""
    got, ref = _as_array(got), _as_array(ref)
    assert got.shape == ref.shape, f"{what}: shapes {got.shape} and {ref.shape}"
    err = np.abs(got - ref)
    bound = np.broadcast_to(_as_array(max_bound), err.shape)
    worst = float(np.max(err / np.where(bound > 0, bound, np.inf), initial=0.0)) if err.size else 0.0
    assert np.all(err <= bound), f"{what}: |difference| {err.max():.3g} over its bound (worst ratio {worst:.3g})"
    if median_bound is not None and err.size:
        typical = float(np.median(np.broadcast_to(_as_array(median_bound), err.shape)))
        assert float(np.median(err)) <= typical, \
            f"{what}: median |difference| {np.median(err):.3g} over its typical bound {typical:.3g}"


#: the same growth for a *median* entry: most entries see few roundings (median float32 differences of
#: the suite's fits were 0 to 8 u32 on the Intel machine); 100 leaves a factor of over 10
TYPICAL_GROWTH = 100.0


def assert_same_computation(got, ref, what: str = "", scale: float | None = None, dtype=None) -> None:
    """Two computations of the same function in other orders (a fit, a network's forward pass): entry
    by entry within ``ITERATIVE_GROWTH * u * scale``, the median within ``TYPICAL_GROWTH * u * scale``,
    with ``u`` the unit roundoff of the less precise of the two and ``scale`` (default ``max|ref|``)
    the size of the quantity (``dtype`` names the precision the two were computed in where their types
    no longer say it, e.g. float32 results stored as float64). Deep and iterative computations have no useful a-priori bound; the
    growth constants come from measurements across both CPU kinds (``ITERATIVE_GROWTH``)."""
    got_a, ref_a = _as_array(got), _as_array(ref)
    u = unit_roundoff(dtype) if dtype is not None else max(
        unit_roundoff(getattr(x, "dtype", np.float64)) for x in (got, ref))
    scale = float(np.abs(ref_a).max(initial=0.0)) if scale is None else scale
    assert_within(got_a, ref_a, ITERATIVE_GROWTH * u * scale, TYPICAL_GROWTH * u * scale, what)


def assert_same_fit(got, ref, what: str = "") -> None:
    """:func:`assert_same_computation` for two float64 computations of the same fit (weights, any shape),
    on the scale ``max(1, max|ref|)``. Float32 fits are refused: their rounding would need a tolerance
    a thousand times looser than the effects such tests guard against, and a hinge loss may flip a
    pair on another CPU."""
    for x in (got, ref):
        assert x.dtype in (torch.float64, np.float64), f"{what}: compare fits in float64, got {x.dtype}"
    assert_same_computation(got, ref, what, scale=max(1.0, float(np.abs(_as_array(ref)).max(initial=0.0))))


# --------------------------------------------------------------------------- float64 statistics
#: floating-point operations from the sums of squares to a statistic (F, an ICC, an interval end, a
#: correlation), counted generously: each rounds once, relatively, in each of the two programs
FORMULA_OPERATIONS = 30


def icc_bound(Y) -> dict:
    """How far two float64 programs' ICC statistics of the same ``n x k`` ratings ``Y`` may lie apart
    (``bound[label][key]`` for every ICC label and ``ICC``, ``F``, ``pval``, ``ci_low``, ``ci_high``).

    Both compute the three sums of squares (targets, raters, residual) and then the same formulas. A
    sum of ``N = nk`` terms in any order is within ``gamma_N`` times the sum of the terms' absolute
    values of the exact one (:func:`dot_bound`); the means, the centring and the squares each add at
    most ``gamma_N sum(y^2)`` (Cauchy-Schwarz), so one computed sum of squares is within
    ``4 gamma_N sum(y^2)``. A residual taken as a difference of three sums is within
    ``12 gamma_N sum(y^2)``, one taken as a sum within ``4``: two programs differ by at most
    ``16 gamma_N sum(y^2)`` (``dot_bound(8 sum(y^2), N)``), plus the inputs' own rounding,
    ``FORMULA_OPERATIONS u |SS|``. That difference is carried through
    :func:`clpips.stats.icc_inference` to first order: each sum of squares is moved by its bound, up and
    down, and the largest change of every statistic is added up over the three; the statistic's own
    rounding, ``2 FORMULA_OPERATIONS u |value|``, comes on top.
    """
    Y = np.asarray(Y, dtype=float)
    u = unit_roundoff(np.float64)
    n, k = Y.shape
    ms = mean_squares(Y)
    ss = np.array([float(ms.msb) * (n - 1), float(ms.msj) * (k - 1), float(ms.mse) * (n - 1) * (k - 1)])
    delta = dot_bound(8 * float(np.sum(Y ** 2)), Y.size, np.float64) + FORMULA_OPERATIONS * u * np.abs(ss)
    moved = np.repeat(ss[:, None], 6, axis=1)                      # column 2i: SS_i up, 2i + 1: SS_i down
    for i in range(3):
        moved[i, 2 * i] += delta[i]
        moved[i, 2 * i + 1] -= delta[i]
    bound = {}
    with np.errstate(all="ignore"):                 # an undefined statistic (degenerate data): a NaN bound
        base, pert = icc_inference(ms), icc_inference(MeanSquares.from_sums_of_squares(*moved, n, k))
        for label in LABELS:
            bound[label] = {}
            for key in ("ICC", "F", "pval", "ci_low", "ci_high"):
                value = float(base[label][key])
                change = np.abs(np.asarray(pert[label][key], dtype=float) - value).reshape(3, 2).max(axis=1).sum()
                bound[label][key] = float(change) + 2 * FORMULA_OPERATIONS * u * abs(value)
    return bound


def icc_ak_bound(human, metric) -> float:
    """:func:`icc_bound` of ICC(A,k) for the items (human rank, metric rank): how far two float64
    programs' ICC(A,k) of the same two rank columns may lie apart."""
    return icc_bound(np.column_stack([np.asarray(human, float), np.asarray(metric, float)]))["ICC(A,k)"]["ICC"]


def spearman_bound(x, y, dtype=np.float64) -> float:
    """How far two programs' Spearman correlations of the same ``n`` pairs ``(x, y)`` may lie apart.

    Spearman's rho is Pearson's ``r = S_xy / sqrt(S_xx S_yy)`` of the ranks, from centred sums. As in
    :func:`icc_bound`, each computed sum is within ``4 gamma_n`` of the exact one relative to the uncentred
    ``sum x^2`` (``S_xy``: ``sqrt(sum x^2 sum y^2)``), in each program; with ``c = max(sum x^2 / S_xx,
    sum y^2 / S_yy)`` of the ranks and ``|r| <= 1``, first order,
    ``|dr| <= |dS_xy| / sqrt(S_xx S_yy) + (|dS_xx| / S_xx + |dS_yy| / S_yy) / 2 <= 2 x 4 gamma_n x 2c``
    for the two programs, plus ``2 FORMULA_OPERATIONS u`` for the formula's own roundings (0 where one side
    is constant and rho undefined)."""
    rx, ry = (stats.rankdata(np.asarray(v, dtype=float)) for v in (x, y))
    spread = [float(np.sum((r - r.mean()) ** 2)) for r in (rx, ry)]
    if min(spread) == 0:
        return 0.0                                  # a constant side: rho is undefined (NaN) in every program
    c = max(float(np.sum(r ** 2)) / s for r, s in zip((rx, ry), spread))
    u = unit_roundoff(dtype)
    return 16 * c * gamma(len(rx), u) + 2 * FORMULA_OPERATIONS * u


def assert_order_kept(dist, slack, groups, what: str = "") -> None:
    """Within each group (a ranking), every two rows' distances ``dist`` lie further apart than the sum of
    their ``slack`` (how far another computation may move each: a :func:`dot_bound`, a fit's
    :func:`iterative_bound` carried through): any such computation orders them the same, so statistics
    of the within-group ranks see the *same* ranks. Adjacent rows in sorted order suffice: a wider gap
    spans the slacks of the rows between as well."""
    frame = pd.DataFrame({"d": np.asarray(dist, float), "s": np.asarray(slack, float), "g": np.asarray(groups)})
    frame = frame.sort_values(["g", "d"], kind="stable")
    same = frame["g"].to_numpy()[1:] == frame["g"].to_numpy()[:-1]
    gap = np.diff(frame["d"].to_numpy())[same]
    room = (frame["s"].to_numpy()[1:] + frame["s"].to_numpy()[:-1])[same]
    assert np.all(gap > room), (f"{what}: {int(np.sum(gap <= room))} neighbouring distances closer than their "
                                f"rounding bounds (smallest gap/bound {np.min(gap / room, initial=np.inf):.3g}): "
                                "the ranks could differ on another CPU")


def mean_bound(x, dtype=np.float64) -> float:
    """How far two programs' means of the (finite) numbers ``x`` may lie apart: their sums differ by at
    most :func:`dot_bound` of ``sum|x|`` (two computations), divided by ``n``, plus each division's rounding."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if not x.size:
        return 0.0
    return dot_bound(float(np.abs(x).sum()), x.size, dtype) / x.size + 2 * unit_roundoff(dtype) * abs(float(x.mean()))



def kendall_bound() -> float:
    """How far two float64 programs' Kendall tau (a, b or c) of the same pairs may lie apart: the
    concordant, discordant and tied pair counts are integers, exact in any order; then a handful of
    roundings (a difference, products, a square root, a division): ``2 FORMULA_OPERATIONS u``."""
    return 2 * FORMULA_OPERATIONS * unit_roundoff(np.float64)


def assert_within_or_both_nan(got, ref, bound, what: str = "") -> None:
    """:func:`assert_within` entry by entry where both are numbers; both NaN (an undefined statistic) passes."""
    got, ref = _as_array(got), _as_array(ref)
    bound = np.broadcast_to(_as_array(bound), got.shape)
    both = np.isnan(got) & np.isnan(ref)
    assert np.array_equal(np.isnan(got), np.isnan(ref)), f"{what}: NaN in one and not the other"
    assert_within(got[~both], ref[~both], bound[~both], what=what)
