"""Verbal labels for intraclass correlation coefficients.

Two published rules of thumb are implemented, each with its interval
boundaries written out explicitly (the papers state them in words, and words
leave the end points open to reading, so the reading chosen here is stated):

=========  ==================  ====================  ======================
scale      label               interval              source wording
=========  ==================  ====================  ======================
koo_li     poor                ICC < 0.50            "less than 0.5"
koo_li     moderate            0.50 <= ICC < 0.75    "between 0.5 and 0.75"
koo_li     good                0.75 <= ICC <= 0.90   "between 0.75 and 0.9"
koo_li     excellent           ICC > 0.90            "greater than 0.90"
cicchetti  poor                ICC < 0.40            "< .40"
cicchetti  fair                0.40 <= ICC < 0.60    ".40 - .59"
cicchetti  good                0.60 <= ICC < 0.75    ".60 - .74"
cicchetti  excellent           ICC >= 0.75           ".75 - 1.00"
=========  ==================  ====================  ======================

Koo & Li put 0.90 itself in "good" because "excellent" is "greater than
0.90"; 0.50 and 0.75 open the higher band. Cicchetti's bands are given to two
decimals (".40-.59"), so a value such as 0.595 that falls between the printed
bands is put in the lower one: the bands are read as half-open ``[lower,
upper)``.

References
----------
Koo, T. K., & Li, M. Y. (2016). A guideline of selecting and reporting
intraclass correlation coefficients for reliability research. *Journal of
Chiropractic Medicine*, 15(2), 155-163. https://doi.org/10.1016/j.jcm.2016.02.012

Cicchetti, D. V. (1994). Guidelines, criteria, and rules of thumb for
evaluating normed and standardized assessment instruments in psychology.
*Psychological Assessment*, 6(4), 284-290. https://doi.org/10.1037/1040-3590.6.4.284
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
    """Verbal label of an ICC value on a published scale.

    Parameters
    ----------
    value : float
        An intraclass correlation coefficient (at most 1; it may be negative).
    scale : {"koo_li", "cicchetti"}
        Koo & Li (2016) or Cicchetti (1994); see the module docstring for the
        exact interval boundaries.

    Returns
    -------
    str
        The label, or ``"undefined"`` for NaN.

    Raises
    ------
    ValueError
        If ``value`` exceeds 1 (no ICC does) or ``scale`` is unknown.

    Notes
    -----
    Koo & Li (2016) recommend judging the *95% confidence interval* of the ICC,
    not its point estimate: an ICC of 0.86 with CI [0.72, 0.94] is "moderate
    to excellent". Label both ends of the interval to follow them.

    Examples
    --------
    >>> from clpips.stats import interpret_icc
    >>> interpret_icc(0.90), interpret_icc(0.9000001)
    ('good', 'excellent')
    >>> interpret_icc(0.75, scale="cicchetti")
    'excellent'
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
    """Koo & Li (2016) label: poor < 0.5 <= moderate < 0.75 <= good <= 0.9 < excellent.

    See :func:`interpret_icc`.
    """
    return interpret_icc(value, "koo_li")


def cicchetti_label(value: float) -> str:
    """Cicchetti (1994) label: poor < 0.40 <= fair < 0.60 <= good < 0.75 <= excellent.

    See :func:`interpret_icc`.
    """
    return interpret_icc(value, "cicchetti")


def interpretation_scale(scale: Scale = "koo_li") -> pd.DataFrame:
    """The bands of a scale as a table (for a notebook).

    Parameters
    ----------
    scale : {"koo_li", "cicchetti"}

    Returns
    -------
    pandas.DataFrame
        One row per band, lowest first: ``label``, ``lower``, ``upper``,
        ``lower_inclusive``, ``upper_inclusive``, ``interval`` (as text) and
        ``source``.

    Examples
    --------
    >>> from clpips.stats import interpretation_scale
    >>> interpretation_scale("koo_li")[["label", "interval"]]
           label      interval
    0       poor   (-inf, 0.50)
    1   moderate  [0.50, 0.75)
    2       good  [0.75, 0.90]
    3  excellent  (0.90, 1.00]
    """
    return pd.DataFrame([{**asdict(b), "interval": b.interval(), "source": _SOURCES[scale]} for b in _check_scale(scale)])
