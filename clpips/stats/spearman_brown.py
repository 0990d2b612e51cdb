r"""Spearman–Brown: the reliability of the mean of ``k`` raters, and ICC(A,k) of two rankings.

When two raters both rank the same ``n`` items ``1..n`` without ties, with Spearman
correlation :math:`\rho`, the ICCs of the items x raters table are closed forms of
:math:`\rho`: ICC(C,k) is the Spearman–Brown step-up :math:`2\rho/(1+\rho)` exactly, and
ICC(A,k) is :math:`2\rho/(1+\rho-(1-\rho)/n)`. The derivation is in the book's method
chapter (``book/method.md``, *ICC on ranks*); chapter 02 works both out.
"""
from __future__ import annotations

import numpy as np

from clpips.moved import moved_name

__all__ = ["spearman_brown", "icc_ak_from_rho"]


def _out(value: np.ndarray):
    return float(value) if value.ndim == 0 else value


def spearman_brown(r, k: float = 2):
    r"""Spearman–Brown prophecy: the reliability of the mean of ``k`` raters, :math:`kr / (1 + (k-1)r)`."""
    r = np.asarray(r, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _out(k * r / (1 + (k - 1) * r))


def icc_ak_from_rho(rho, n):
    r"""ICC(A,k) of two untied rankings of ``n`` items: :math:`2\rho / (1 + \rho - (1-\rho)/n)`, exactly.

    ``rho`` and ``n`` may be arrays (e.g. one per bootstrap resample, ``n`` its number of rows).
    Increasing in ``rho`` where defined, so ICC(A,k) and rho order two metrics alike.
    """
    rho = np.asarray(rho, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _out(2 * rho / (1 + rho - (1 - rho) / np.asarray(n, dtype=float)))


def __getattr__(name: str):
    return moved_name(__name__, name)   # icc_ck_from_rho, icc_ak_pole: now chapter 02's
