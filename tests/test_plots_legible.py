"""The book's figures read at the page's width: text of at least 9 pt once a figure is shown in the text
column (:mod:`clpips.book.plots.style`), no overlapping tick labels, legends clear of the data.

Each figure is drawn at the size a chapter draws it (the same number of runs, candidates, students), on
small synthetic data: what is measured is the layout, not the numbers.
"""
from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from PIL import Image  # noqa: E402

from clpips.book.plots import datasets as pd_plots  # noqa: E402
from clpips.book.plots import evaluation as pe  # noqa: E402
from clpips.book.plots import personal as pp  # noqa: E402
from clpips.book.plots import protocol as pr  # noqa: E402
from clpips.book.plots import style  # noqa: E402
from clpips.book.plots import training as pt  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def legible(fig) -> float:
    """The smallest text on the page, asserted to be at least 9 pt; returned for the message."""
    points = style.smallest_text_points(fig)
    assert points >= 9.0, f"smallest text shows at {points:.1f} pt (figure {style.shown_width_px(fig):.0f} px wide)"
    return points


def overlapping_labels(ax, axis: str = "x") -> list[tuple[str, str]]:
    """Pairs of neighbouring tick labels of ``ax`` whose boxes overlap."""
    ax.figure.canvas.draw()
    labels = [t for t in (ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()) if t.get_text()]
    boxes = [t.get_window_extent() for t in labels]
    return [(a.get_text(), b.get_text()) for (a, ba), (b, bb) in zip(zip(labels, boxes), zip(labels[1:], boxes[1:]))
            if ba.overlaps(bb)]


# -- the measure itself ----------------------------------------------------------

def test_a_wide_figure_shrinks_its_text_below_nine_points():
    fig, ax = plt.subplots(figsize=(10, 3))
    ax.set_title("title", fontsize=9)
    ax.set_xticks([0, 1], ["a", "b"], fontsize=9)
    shrunk = style.smallest_text_points(fig)
    assert shrunk == pytest.approx(9 * style.COLUMN_PX / style.shown_width_px(fig) * fig.dpi / 96)
    assert shrunk < 9
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.set_title("title", fontsize=9)
    assert style.smallest_text_points(fig) == pytest.approx(9 * fig.dpi / 96)   # shown 1:1


def test_the_book_style_is_applied_on_import():
    assert matplotlib.rcParams["xtick.labelsize"] >= style.SMALL
    assert matplotlib.rcParams["legend.fontsize"] >= style.SMALL


# -- the chapters' figures at their chapters' sizes ---------------------------------

def _runs(names, n_folds=15, seed=0):
    rng = np.random.default_rng(seed)
    stats = ("icc_A_k", "spearman_raw", "spearman", "pair_accuracy")
    folds = {n: pd.DataFrame({f"delta_{s}": rng.normal(0.05, 0.05, n_folds) for s in stats}) for n in names}
    summary = pd.DataFrame({"delta": 0.05, "nb_low": -0.01, "nb_high": 0.11, "boot_delta": 0.05,
                            "boot_low": 0.0, "boot_high": 0.1}, index=list(stats))
    return folds, {n: summary for n in names}


@pytest.mark.parametrize("names, statistics", [
    (["by target", "by image"], ("icc_A_k", "spearman_raw", "spearman", "pair_accuracy")),           # chapter 04
    ([f"{d}\nby {m}" for d in ("mur92", "zappos", "simulated") for m in ("target", "image")],       # chapter 08
     ("icc_A_k", "spearman_raw", "spearman")),
    ([f"{d}\nby {m}" for d in ("mur92", "zappos", "alien_eggs", "simulated") for m in ("target", "image")],
     ("icc_A_k", "spearman_raw", "spearman")),                                                    # ... with eggs
])
def test_fold_deltas_read_and_their_run_labels_do_not_overlap(names, statistics):
    folds, summaries = _runs(names)
    fig = pr.plot_fold_deltas(folds, summaries, statistics=statistics, reference={"icc_A_k": 0.084})
    legible(fig)
    for ax in fig.axes:
        if ax.get_visible():
            assert not overlapping_labels(ax), "run labels overlap"


def test_alignment_of_the_chapters_seven_metrics_reads_and_its_panels_keep_their_width():
    """Chapter 04's figure: seven metrics with their long names beside two bar panels. Drawn narrower than
    the column, constrained layout collapsed both panels to nothing (a warning, and overlapping ticks)."""
    metrics = ["ssim", "l2", "psnr", "lpips_vgg", "lpips", "lpips_ones", "clpips"]
    icc = np.linspace(0.02, 0.38, len(metrics))
    table = pd.DataFrame({"icc_A_k": icc, "icc_A_k_ci_low": icc - 0.03, "icc_A_k_ci_high": icc + 0.03,
                          "spearman_per_ranking": icc * 0.6}, index=metrics)
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # "constrained_layout not applied because axes ... collapsed"
        fig = pe.plot_alignment(table, ceiling=0.5)
        fig.canvas.draw()
    legible(fig)
    for ax in fig.axes:
        assert ax.get_position().width * fig.get_figwidth() >= 1.0, "a panel narrower than an inch"
        assert not overlapping_labels(ax), "tick labels overlap"


class _Images:
    """A dataset whose images are plain squares: ``table`` holds one ranking of ``k`` candidates per set."""

    def __init__(self, tmp_path, k=10, sets=("s0",)):
        rows = [{"set_id": s, "target": f"{s}_t.png", "candidate": f"{s}_c{i}.png", "rater": "subject01",
                 "rank": i + 1} for s in sets for i in range(k)]
        self.table = pd.DataFrame(rows)
        self.path = tmp_path
        for ref in set(self.table["target"]) | set(self.table["candidate"]):
            Image.new("RGB", (32, 32), (hash(ref) % 255, 90, 140)).save(tmp_path / ref)

    def open_image(self, ref):
        return Image.open(self.path / ref)


def test_ranking_sets_of_ten_candidates_read(tmp_path):
    data = _Images(tmp_path, k=10, sets=("s0", "s1"))
    views = [pd_plots.SetView(data, "s0", "subject01", title="mur92\nsubject01",
                              notes={c: "human\nbodypart" for c in data.table["candidate"]}),
             pd_plots.SetView(data, "s1", "subject01", title="simulated\nparticipant 03",
                              notes={c: "3 of 6 match" for c in data.table["candidate"]})]
    fig = pd_plots.plot_ranking_sets(views)
    legible(fig)
    assert len([ax for ax in fig.axes if ax.images]) == 2 * 11          # every image drawn once


def test_orders_of_ten_candidates_read(tmp_path):
    data = _Images(tmp_path, k=10)
    scored = data.table.assign(lpips=np.arange(10.0), clpips=np.arange(10.0)[::-1])
    legible(pe.plot_orders(data, scored, "s0", rho={"lpips": 0.1, "clpips": 0.3}))


def test_channel_weights_of_five_layers_read():
    rng = np.random.default_rng(0)
    channels = pd.DataFrame([{"layer": layer, "before": b, "after": b * rng.uniform(0.5, 1.5), "pinned": False,
                              "zero_before": False} for layer in range(1, 6) for b in rng.uniform(0, 1, 40)])
    legible(pt.plot_channel_weights(channels, title="mur92: learned against LPIPS v0.1 weights"))


def _students(n=12):
    rng = np.random.default_rng(1)
    index = pd.Index([f"student {i:02d}" for i in range(1, n + 1)], name="student")
    return pd.DataFrame({c: rng.uniform(0.3, 0.9, n) for c in ("icc_lpips", "icc_pooled", "icc_personal",
                                                                "icc_consensus")}, index=index)


def test_class_figures_read_and_the_legend_sits_above_the_bars():
    per = _students()
    fig = pp.plot_students(per)
    legible(fig)
    ax = fig.axes[0]
    fig.canvas.draw()
    legend, plot_area = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.y0 >= plot_area.y1 - 1, "the legend covers the bars"
    rho = pd.DataFrame(np.eye(12), index=per.index, columns=per.index)
    legible(pp.plot_student_agreement(rho))
    shares = pd.DataFrame(np.full((3, 5), 0.2), index=["LPIPS", "pooled CLPIPS", "the class's true taste"],
                          columns=[f"layer {i}" for i in range(1, 6)])
    fig = pp.plot_layer_shares(shares)
    legible(fig)
    fig.canvas.draw()
    assert fig.axes[0].get_legend().get_window_extent().y0 >= fig.axes[0].get_window_extent().y1 - 1


def test_every_text_of_a_figure_counts(tmp_path):
    """A note drawn with fig.text or ax.text is measured too (not only ticks and titles)."""
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.text(0.5, 0.5, "note", fontsize=5)
    assert any(isinstance(t, Text) and t.get_text() == "note" for t in fig.findobj(Text))
    assert style.smallest_text_points(fig) == pytest.approx(5 * fig.dpi / 96)
