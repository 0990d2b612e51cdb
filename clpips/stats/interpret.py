"""Verbal labels for intraclass correlation coefficients on Koo & Li's (2016) scale.

The paper states its bands in words, which leave the end points open; the reading chosen here:
Koo & Li (2016, J Chiropr Med 15(2):155-163) "less than 0.5" poor, "between 0.5 and 0.75" moderate,
"between 0.75 and 0.9" good (0.90 itself is good), "greater than 0.90" excellent. :data:`KOO_LI`
writes every interval out; chapter 02 sets Cicchetti's (1994) scale beside it
(:mod:`clpips.book.worked_example`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from clpips.moved import moved_name

__all__ = ["Band", "KOO_LI", "band_label", "koo_li_label"]


@dataclass(frozen=True)
class Band:
    """One band of a scale: ``label`` for values between ``lower`` and ``upper`` (each end in or out)."""

    label: str
    lower: float
    upper: float
    lower_inclusive: bool
    upper_inclusive: bool

    def contains(self, value: float) -> bool:
        above = value >= self.lower if self.lower_inclusive else value > self.lower
        below = value <= self.upper if self.upper_inclusive else value < self.upper
        return above and below


#: Koo & Li's bands, lowest first; together they cover (-inf, 1]
KOO_LI = (Band("poor", -math.inf, 0.50, False, False), Band("moderate", 0.50, 0.75, True, False),
          Band("good", 0.75, 0.90, True, True), Band("excellent", 0.90, 1.00, False, True))


def band_label(value: float, bands: tuple[Band, ...] = KOO_LI) -> str:
    """The label of the band of ``bands`` holding ICC ``value``; ``"undefined"`` for NaN; above 1 raises.

    Koo & Li recommend labelling the 95% interval, not the estimate: label both ends.
    """
    value = float(value)
    if math.isnan(value):
        return "undefined"
    if value > 1 + 1e-12:    # slack: an ICC computed in floating point may exceed 1 by a few ulps
        raise ValueError(f"an ICC is at most 1, got {value!r}")
    value = min(value, 1.0)
    for band in bands:
        if band.contains(value):
            return band.label
    raise AssertionError(f"bands {[b.label for b in bands]} do not cover {value!r}")  # pragma: no cover


def koo_li_label(value: float) -> str:
    """Koo & Li (2016): poor < 0.5 <= moderate < 0.75 <= good <= 0.9 < excellent."""
    return band_label(value, KOO_LI)


def __getattr__(name: str):
    return moved_name(__name__, name)   # the Cicchetti scale and the scale tables, now chapter 02's
