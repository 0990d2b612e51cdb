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
import torch

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
