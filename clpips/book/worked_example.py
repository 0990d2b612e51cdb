"""Rankings for chapter 02's worked example: read, written and listed.

Chapter 02 (``notebooks/02_worked_example.py``) computes Spearman's rho, the two-way
ANOVA and the ICCs of two rankings by hand, in its own visible cells. What it needs
around that arithmetic lives here:

* :func:`parse_ranking`: a ranking written as text, ``"1,3,4,2"`` (the rank of
  images A, B, C, D; 1 = most similar), checked to be a strict order;
* :func:`ranking_text`: the inverse, for the page's text;
* :func:`item_names`: the items' names A, B, C, ...;
* :func:`rankings_of`: every ranking of ``n`` items, or a sample of them when there are
  too many to list.
"""
from __future__ import annotations

import itertools
import math
import string
from collections.abc import Sequence
from typing import Optional

import numpy as np

__all__ = ["parse_ranking", "item_names", "ranking_text", "rankings_of", "MAX_PERMUTATIONS"]

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
