"""Rankings for chapter 02's worked example: read, written and listed.

Chapter 02 (``notebooks/02_worked_example.py``) computes Spearman's rho, the two-way
ANOVA and the ICCs of two rankings by hand, in its own visible cells. What it needs
around that arithmetic lives here:

* :func:`parse_ranking`: a ranking written as text, ``"1,3,4,2"`` (the rank of
  images A, B, C, D; 1 = most similar), checked to be a strict order;
* :func:`ranking_text`: the inverse, for the page's text;
* :func:`item_names`: the items' names A, B, C, ...;
* :func:`rankings_of`: every ranking of ``n`` items, or a sample of them when there are
  too many to list;
* the two verbal scales of an ICC side by side (:func:`interpret_icc`, :func:`interpretation_scale`):
  Koo & Li's (the core's, :func:`clpips.stats.koo_li_label`) and Cicchetti's (1994, Psychol Assess
  6(4):284-290) < .40 poor, .40-.59 fair, .60-.74 good, .75-1.00 excellent, read as half-open
  ``[lower, upper)`` (0.595 is fair);
* the closed forms of two rankings' ICCs that the chapter plots: :func:`icc_ck_from_rho` and the pole of
  :func:`clpips.stats.icc_ak_from_rho` (:func:`icc_ak_pole`).
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import string
from collections.abc import Sequence
from typing import Optional

import numpy as np
import pandas as pd

from clpips.stats import KOO_LI, Band, band_label, spearman_brown

__all__ = ["parse_ranking", "item_names", "ranking_text", "rankings_of", "MAX_PERMUTATIONS", "SCALES",
           "interpret_icc", "cicchetti_label", "interpretation_scale", "icc_ck_from_rho", "icc_ak_pole"]

#: :func:`rankings_of` lists every ranking up to this many (7! = 5040), else samples this many
MAX_PERMUTATIONS = 5040


def parse_ranking(text: str | Sequence[int], name: str = "ranking", n: Optional[int] = None) -> np.ndarray:
    """A ranking written as ``"1,3,4,2"`` (or a sequence of ints), checked.

    Parameters
    ----------
    text : str or sequence of int
        The rank of each item in item order (A, B, C, ...), comma- or
        space-separated; 1 = most similar.
    name : str
        What to call the ranking in an error message (e.g. ``"example_r1"``).
    n : int, optional
        The number of items the ranking must rank (e.g. as many as a reference ranking).

    Returns
    -------
    numpy.ndarray
        Integer ranks, a permutation of ``1..n``.

    Raises
    ------
    ValueError
        If a value is not a whole number, or the ranks are not a permutation of
        ``1..n`` (ties, gaps), or there are fewer than 3 or more than 26 items,
        or not ``n`` of them.

    Examples
    --------
    >>> parse_ranking("1, 3, 4, 2")
    array([1, 3, 4, 2])
    """
    if isinstance(text, str):
        parts = [p for p in text.replace(",", " ").split() if p]
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"{name}: expected whole-number ranks such as '1,3,4,2', got {text!r}") from None
    else:
        values = [int(v) for v in text]
    ranks = np.asarray(values, dtype=int)
    if not 3 <= len(ranks) <= 26:
        raise ValueError(f"{name}: expected 3 to 26 ranks (one per item A, B, C, ...), got {len(ranks)}: {text!r}")
    if n is not None and len(ranks) != n:
        raise ValueError(f"{name}: expected {n} ranks, one per item of the reference ranking, got {len(ranks)}: {text!r}")
    if sorted(ranks.tolist()) != list(range(1, len(ranks) + 1)):
        raise ValueError(f"{name}: the ranks must be 1..{len(ranks)}, each once (no ties or gaps), got {text!r}")
    return ranks


def item_names(n: int) -> list[str]:
    """The names of ``n`` items: ``A``, ``B``, ... (at most 26)."""
    if not 1 <= n <= 26:
        raise ValueError(f"expected 1 to 26 items, got {n}")
    return list(string.ascii_uppercase[:n])


def ranking_text(ranks: Sequence[int]) -> str:
    """``[1, 3, 4, 2]`` -> ``"1,3,4,2"`` (the inverse of :func:`parse_ranking`)."""
    return ",".join(str(int(r)) for r in ranks)


def rankings_of(n: int, limit: int = MAX_PERMUTATIONS, seed: int = 0) -> np.ndarray:
    """Every ranking of ``n`` items (``n! x n``, lexicographic) or, when ``n! > limit``, ``limit`` random ones.

    The random ones are distinct, drawn with ``numpy.random.default_rng(seed)``
    and sorted lexicographically.
    """
    if math.factorial(n) <= limit:
        return np.array(list(itertools.permutations(range(1, n + 1))), dtype=int)
    rng = np.random.default_rng(seed)
    found: set[tuple[int, ...]] = set()
    while len(found) < limit:
        found.add(tuple(int(v) for v in rng.permutation(n) + 1))
    return np.array(sorted(found), dtype=int)


#: the bands of each scale, lowest first; together they cover (-inf, 1]
SCALES: dict[str, tuple[Band, ...]] = {
    "koo_li": KOO_LI,
    "cicchetti": (Band("poor", -math.inf, 0.40, False, False), Band("fair", 0.40, 0.60, True, False),
                  Band("good", 0.60, 0.75, True, False), Band("excellent", 0.75, 1.00, True, True)),
}

_SOURCES = {
    "koo_li": "Koo & Li (2016), J Chiropr Med 15(2):155-163",
    "cicchetti": "Cicchetti (1994), Psychol Assess 6(4):284-290",
}


def _check_scale(scale: str) -> tuple[Band, ...]:
    try:
        return SCALES[scale]
    except KeyError:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}") from None


def interpret_icc(value: float, scale: str = "koo_li") -> str:
    """Label of an ICC on ``scale`` (``"koo_li"`` or ``"cicchetti"``); ``"undefined"`` for NaN; above 1 raises."""
    return band_label(value, _check_scale(scale))


def cicchetti_label(value: float) -> str:
    """Cicchetti (1994): poor < 0.40 <= fair < 0.60 <= good < 0.75 <= excellent."""
    return interpret_icc(value, "cicchetti")


def _interval(band: Band) -> str:
    left = "[" if band.lower_inclusive else "("
    right = "]" if band.upper_inclusive else ")"
    return f"{left}{band.lower:.2f}, {band.upper:.2f}{right}"


def interpretation_scale(scale: str = "koo_li") -> pd.DataFrame:
    """The bands of ``scale`` as a table, lowest first: ``label, lower, upper, lower_inclusive,
    upper_inclusive, interval, source``.
    """
    return pd.DataFrame([{**dataclasses.asdict(b), "interval": _interval(b), "source": _SOURCES[scale]}
                         for b in _check_scale(scale)])


def icc_ck_from_rho(rho):
    r"""ICC(C,k) of two untied rankings with Spearman :math:`\rho`: :math:`2\rho/(1+\rho)`, exactly."""
    return spearman_brown(rho, 2)


def icc_ak_pole(n: int) -> float:
    r"""The Spearman :math:`\rho = -(n-1)/(n+1)` at which the ICC(A,k) formula divides by zero."""
    return -(n - 1) / (n + 1)
