"""Verbal labels for intraclass correlation coefficients, on two published scales.

The papers state their bands in words, which leave the end points open; the reading chosen here:
Koo & Li (2016, J Chiropr Med 15(2):155-163) "less than 0.5" poor, "between 0.5 and 0.75" moderate,
"between 0.75 and 0.9" good (0.90 itself is good), "greater than 0.90" excellent; Cicchetti (1994,
Psychol Assess 6(4):284-290) < .40 poor, .40-.59 fair, .60-.74 good, .75-1.00 excellent, read as
half-open ``[lower, upper)`` (0.595 is fair). :data:`SCALES` writes every interval out.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import pandas as pd

__all__ = ["koo_li_label", "cicchetti_label", "interpret_icc", "interpretation_scale", "SCALES"]

Scale = Literal["koo_li", "cicchetti"]

#: label returned for a NaN ICC (an undefined estimate has no verbal label)
UNDEFINED = "undefined"

#: float slack above 1 (an ICC computed in floating point may exceed 1 by a few ulps)
_ABOVE_ONE_SLACK = 1e-12


@dataclass(frozen=True)
class _Band:
    label: str
    lower: float
    upper: float
    lower_inclusive: bool
    upper_inclusive: bool

    def contains(self, value: float) -> bool:
        above = value >= self.lower if self.lower_inclusive else value > self.lower
        below = value <= self.upper if self.upper_inclusive else value < self.upper
        return above and below

    def interval(self) -> str:
        left = "[" if self.lower_inclusive else "("
        right = "]" if self.upper_inclusive else ")"
        return f"{left}{self.lower:.2f}, {self.upper:.2f}{right}"


_INF = math.inf

#: the bands of each scale, lowest first; together they cover (-inf, 1]
SCALES: dict[str, tuple[_Band, ...]] = {
    "koo_li": (
        _Band("poor", -_INF, 0.50, False, False),
        _Band("moderate", 0.50, 0.75, True, False),
        _Band("good", 0.75, 0.90, True, True),
        _Band("excellent", 0.90, 1.00, False, True),
    ),
    "cicchetti": (
        _Band("poor", -_INF, 0.40, False, False),
        _Band("fair", 0.40, 0.60, True, False),
        _Band("good", 0.60, 0.75, True, False),
        _Band("excellent", 0.75, 1.00, True, True),
    ),
}

_SOURCES = {
    "koo_li": "Koo & Li (2016), J Chiropr Med 15(2):155-163",
    "cicchetti": "Cicchetti (1994), Psychol Assess 6(4):284-290",
}


def _check_scale(scale: str) -> tuple[_Band, ...]:
    try:
        return SCALES[scale]
    except KeyError:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}") from None


def interpret_icc(value: float, scale: Scale = "koo_li") -> str:
    """Label of an ICC on ``scale`` (``"koo_li"`` or ``"cicchetti"``); ``"undefined"`` for NaN; above 1 raises.

    Koo & Li recommend labelling the 95% interval, not the estimate: label both ends.
    """
    bands = _check_scale(scale)
    value = float(value)
    if math.isnan(value):
        return UNDEFINED
    if value > 1 + _ABOVE_ONE_SLACK:
        raise ValueError(f"an ICC is at most 1, got {value!r}")
    value = min(value, 1.0)
    for band in bands:
        if band.contains(value):
            return band.label
    raise AssertionError(f"bands of {scale!r} do not cover {value!r}")  # pragma: no cover


def koo_li_label(value: float) -> str:
    """Koo & Li (2016): poor < 0.5 <= moderate < 0.75 <= good <= 0.9 < excellent."""
    return interpret_icc(value, "koo_li")


def cicchetti_label(value: float) -> str:
    """Cicchetti (1994): poor < 0.40 <= fair < 0.60 <= good < 0.75 <= excellent."""
    return interpret_icc(value, "cicchetti")


def interpretation_scale(scale: Scale = "koo_li") -> pd.DataFrame:
    """The bands of ``scale`` as a table, lowest first: ``label, lower, upper, lower_inclusive,
    upper_inclusive, interval, source``.
    """
    return pd.DataFrame([{**asdict(b), "interval": b.interval(), "source": _SOURCES[scale]} for b in _check_scale(scale)])
