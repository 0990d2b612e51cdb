"""The book's figure size and type sizes: figures drawn for the text column, text legible on the page.

The book's text column is about :data:`COLUMN_PX` CSS pixels wide, and a figure's PNG (matplotlib's
:data:`DPI`, cropped to its drawing) is shown at its own width or shrunk to the column. A figure
:data:`COLUMN_INCHES` wide is shown 1:1; a wider one shrinks, and its text with it. So the figures are
drawn at most that wide, with text of at least :data:`SMALL` points (9 pt), and
:func:`smallest_text_points` measures what a figure's smallest text becomes on the page (the tests check
every chapter figure with it).

Importing :mod:`clpips.book.plots` applies :data:`RC` (matplotlib's defaults for these sizes).
"""
from __future__ import annotations

import matplotlib as mpl
from matplotlib.figure import Figure
from matplotlib.text import Text

#: the text column of the book's pages, in CSS pixels (sphinx-book-theme at a 1280 px window; a
#: chapter's output area is 670-690 px)
COLUMN_PX = 670
#: matplotlib's resolution for the book's PNGs (its default; a CSS pixel per image pixel at 1:1)
DPI = 100
#: the widest figure shown without shrinking
COLUMN_INCHES = COLUMN_PX / DPI
#: the smallest type a figure may use (tick labels, legends, notes), and its titles' size
SMALL, TITLE = 9.0, 10.0
#: matplotlib's defaults for the book's figures
RC = {"font.size": 10.0, "axes.titlesize": TITLE, "axes.labelsize": 10.0, "xtick.labelsize": SMALL,
      "ytick.labelsize": SMALL, "legend.fontsize": SMALL, "legend.title_fontsize": SMALL,
      "figure.titlesize": 11.0, "figure.dpi": DPI, "savefig.dpi": "figure"}


def apply() -> None:
    """Set :data:`RC` in matplotlib's defaults (done once, when :mod:`clpips.book.plots` is imported)."""
    mpl.rcParams.update(RC)


def shown_width_px(fig: Figure) -> float:
    """The width of ``fig``'s PNG as the book saves it (cropped to what is drawn: ``bbox_inches="tight"``)."""
    renderer = fig.canvas.get_renderer()
    return fig.get_tightbbox(renderer).width * fig.dpi + 2 * 0.1 * fig.dpi   # the crop's 0.1 in padding


def smallest_text_points(fig: Figure, column_px: float = COLUMN_PX) -> float:
    """The size, in points on the page, of the smallest visible text of ``fig`` once shown in a column
    ``column_px`` wide: its size in the figure, times the shrink to the column (1 when it fits), times
    the figure's pixels per CSS pixel (``dpi / 96``). Infinity for a figure without text."""
    fig.canvas.draw()
    scale = min(1.0, column_px / shown_width_px(fig)) * fig.dpi / 96
    sizes = [t.get_fontsize() for t in fig.findobj(Text)
             if t.get_visible() and t.get_text().strip() and t.get_figure() is not None
             and _drawn(t)]
    return min(sizes) * scale if sizes else float("inf")


def _drawn(text: Text) -> bool:
    """Whether a text is on the figure (a tick label of a hidden or shared tick is not)."""
    axes = text.axes
    if axes is not None and not axes.get_visible():
        return False
    bbox = text.get_window_extent()
    return bbox.width > 0 and bbox.height > 0
