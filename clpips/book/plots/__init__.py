"""Figures of the book's chapters, one module per topic (e.g. :mod:`clpips.book.plots.datasets`).

Every function returns a :class:`matplotlib.figure.Figure` (or draws on a given axes) and
leaves showing or saving it to the caller.
"""
