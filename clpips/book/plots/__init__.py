"""Figures of the book's chapters, one module per topic (e.g. :mod:`clpips.book.plots.datasets`).

Every function returns a :class:`matplotlib.figure.Figure` (or draws on a given axes) and
leaves showing or saving it to the caller. Figures are drawn for the book's text column, with
text of at least 9 pt on the page (:mod:`clpips.book.plots.style`, applied on import).
"""
from clpips.book.plots import style

style.apply()
