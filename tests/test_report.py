"""clpips.book.report: the one p-value formatter, the glue helper and the one-home helpers it reaches."""
from __future__ import annotations

import sys
import types

import numpy as np
import pandas as pd
import pytest
import torch

from clpips.book import report
from clpips.experiment import FIT_OPTIONS, fit_options_except
from clpips.model import CHANNELS, layer_slices


@pytest.mark.parametrize("p, prose, table", [
    (0.0341, "p = 0.034", "0.034"), (0.0001, "p < 0.001", "1.0e-04"), (1.0, "p = 1", "1"),
    (float("nan"), "p undefined", "—"), (None, "p undefined", "—"),
])
def test_format_p_prose_and_table(p, prose, table):
    assert report.format_p(p) == prose
    assert report.format_p(p, style="table") == table


def test_format_p_rejects_an_unknown_style():
    with pytest.raises(ValueError, match="style must be"):
        report.format_p(0.1, style="latex")


def test_glue_all_glues_each_value_once_with_python_scalars(monkeypatch):
    calls = []
    fake = types.ModuleType("myst_nb")
    fake.glue = lambda name, value, display=True: calls.append((name, value, display))
    monkeypatch.setitem(sys.modules, "myst_nb", fake)
    out = report.glue_all({"n": np.int64(3), "label": "good", "x": np.float64(0.25)}, prefix="nb99_")
    assert calls == [("nb99_n", 3, False), ("nb99_label", "good", False), ("nb99_x", 0.25, False)]
    assert type(out["nb99_n"]) is int and type(out["nb99_x"]) is float


def _summary(delta_low: float, boot: bool) -> pd.DataFrame:
    """A two-statistic summary of the shape CrossvalResult.summary gives, with round numbers."""
    rows = {"icc_A_k": {"lpips": 0.25, "clpips": 0.3125, "delta": 0.0625, "nb_low": delta_low, "nb_high": 0.125,
                        "positive_share": 0.8, "n_folds": 15, "boot_delta": 0.0625 if boot else np.nan,
                        "boot_low": 0.03125 if boot else np.nan, "boot_high": 0.09375 if boot else np.nan},
            "spearman_raw": {"lpips": 0.5, "clpips": 0.5, "delta": 0.0, "nb_low": -0.25, "nb_high": 0.25,
                             "positive_share": 1 / 3, "n_folds": 15, "boot_delta": np.nan, "boot_low": np.nan,
                             "boot_high": np.nan}}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("statistic")


def test_protocol_table_writes_each_mode_and_statistic_with_its_intervals():
    table = report.protocol_table({"target": _summary(0.0078125, boot=True), "image": _summary(-0.5, boot=False)},
                                  reference={"icc_A_k": 0.084})
    assert list(table.index) == [("by target", "ICC(A,k)"), ("by target", "ρ, raw distances pooled (paper)"),
                                 ("by image", "ICC(A,k)"), ("by image", "ρ, raw distances pooled (paper)")]
    first = table.loc[("by target", "ICC(A,k)")]
    assert first.to_dict() == {"LPIPS": "0.250", "CLPIPS": "0.312", "Δ": "+0.062",
                               "corrected t 95%": "[+0.008, +0.125]", "target bootstrap 95%": "[+0.031, +0.094]",
                               "folds Δ > 0": "12/15", "paper Δ": "+0.084"}
    assert table.at[("by image", "ICC(A,k)"), "target bootstrap 95%"] == "—"          # no bootstrap: a dash
    assert table.at[("by target", "ρ, raw distances pooled (paper)"), "paper Δ"] == "—"  # no reference given
    assert table.at[("by image", "ρ, raw distances pooled (paper)"), "folds Δ > 0"] == "5/15"


def test_statistic_table_rows_per_dataset_and_mode_with_the_papers_row_last():
    summaries = {("mur92", "target"): _summary(0.0078125, boot=True), ("zappos", "image"): _summary(-0.5, boot=False)}
    table = report.statistic_table(summaries, "icc_A_k", {"Δ": "+0.084", "target bootstrap 95%": "[+0.071, +0.100]"})
    assert list(table.index) == ["mur92, by target", "zappos, by image", "paper (its data), one split by target"]
    # the same cells as protocol_table's row of that run and statistic (one formatter), without "paper Δ"
    same = report.protocol_table({"target": summaries[("mur92", "target")]}).loc[("by target", "ICC(A,k)")]
    assert table.loc["mur92, by target"].to_dict() == same.drop("paper Δ").to_dict()
    assert table.at["zappos, by image", "target bootstrap 95%"] == "—"
    assert table.loc["paper (its data), one split by target"].to_dict() == {
        "LPIPS": "—", "CLPIPS": "—", "Δ": "+0.084", "corrected t 95%": "—",
        "target bootstrap 95%": "[+0.071, +0.100]", "folds Δ > 0": "—"}
    assert len(report.statistic_table(summaries, "spearman_raw")) == 2           # no paper row: none added


def test_flat_names_cells_and_keeps_int_columns_int():
    frame = pd.DataFrame({"x": [0.5, 0.25], "n": [3, 4]}, index=["a", "b"])
    out = report.flat(frame)
    assert out == {"a_x": 0.5, "a_n": 3, "b_x": 0.25, "b_n": 4}
    assert type(out["a_n"]) is int and type(out["a_x"]) is float     # glued as 3, not 3.0
    assert report.flat(frame, ["n"]) == {"a_n": 3, "b_n": 4}


@pytest.mark.parametrize("word, phrase", [
    ("helps", "above zero: CLPIPS agrees better"), ("hurts", "below zero: CLPIPS agrees worse"),
    ("inconclusive", "includes zero: no difference is shown"), ("equivalent", "includes zero: no difference is shown"),
    ("no gain shown", "includes zero: no difference is shown"), ("no estimate", "includes zero: no difference is shown"),
])
def test_interval_phrase_follows_the_verdict_word(word, phrase):
    assert report.interval_phrase(word) == phrase


@pytest.mark.parametrize("net", sorted(CHANNELS))
def test_layer_slices_cover_the_vector_in_layer_order(net):
    slices = layer_slices(net)
    assert [s.stop - s.start for s in slices] == list(CHANNELS[net])
    assert slices[0].start == 0 and slices[-1].stop == sum(CHANNELS[net])
    assert all(a.stop == b.start for a, b in zip(slices, slices[1:]))
    w = torch.arange(sum(CHANNELS[net]))
    assert torch.equal(torch.cat([w[s] for s in slices]), w)
    with pytest.raises(ValueError, match="net must be one of"):
        layer_slices("resnet")


def test_fit_options_subsets_keep_the_order_and_check_names():
    assert fit_options_except("init") == tuple(o for o in FIT_OPTIONS if o != "init")
    with pytest.raises(ValueError, match="not fit options"):
        fit_options_except("momentum")


@pytest.mark.parametrize("items, words", [([], "none"), (["A"], "A"), (["A", "B"], "A and B"),
                                          (["A", "B", "C"], "A, B and C"), (["A", "B", "A"], "A and B")])
def test_in_words_says_a_list_as_english_once_per_name(items, words):
    assert report.in_words(items) == words


@pytest.mark.parametrize("value, text", [(0.123456, "0.123"), (-0.0012345, "-0.00123"), (12.3456, "12.3"),
                                         (0.99951, "1.00"), (0.09996, "0.100"), (float("nan"), "—"), (None, "—"),
                                         (12345678.0, "1.23e+07"), (0.0, "0"), (7, "7"), (4480, "4,480")])
def test_sig_gives_three_significant_figures_and_a_dash_for_missing(value, text):
    assert report.sig(value) == text


def test_readable_formats_numbers_keeps_text_and_index_and_names_a_bad_column():
    table = pd.DataFrame({"rho": [0.4321, float("nan")], "delta": [0.0841, -0.1], "name": ["a", "b"]},
                         index=pd.Index(["x", "y"], name="dataset"))
    got = report.readable(table, decimals={"delta": 2})
    assert got.to_dict("list") == {"rho": ["0.432", "—"], "delta": ["0.08", "-0.10"], "name": ["a", "b"]}
    assert got.index.equals(table.index)
    with pytest.raises(ValueError, match="no column 'ICC'"):
        report.readable(table, decimals={"ICC": 2})


def test_view_puts_every_header_on_one_row_and_aligns_text_left():
    table = pd.DataFrame({"icc_A_k": [0.123456, float("nan"), 2.0], "verdict": ["helps", "hurts", "equivalent"],
                          "n": [3, 4, 5]},
                         index=pd.MultiIndex.from_tuples([("mur92", "target"), ("mur92", "image"), ("zappos", "target")],
                                                         names=["dataset", "split"]))
    shown = report.view(table, names={"icc_A_k": "ICC(A,k)"})
    assert list(shown.frame.columns) == ["dataset", "split", "ICC(A,k)", "verdict", "n"]
    assert shown.frame.to_dict("list") == {"dataset": ["mur92", "", "zappos"], "split": ["target", "image", "target"],
                                           "ICC(A,k)": ["0.123", "—", "2.00"], "verdict": ["helps", "hurts", "equivalent"],
                                           "n": ["3", "4", "5"]}
    assert shown.left == ["dataset", "split", "verdict"]             # numbers stay right-aligned
    html = shown._repr_html_()
    assert html.count("<thead>") == 1 and html.count("<tr>") == 1 + 3   # one header row, three rows
    assert "NaN" not in html and "nan" not in html
    assert html == report.view(table, names={"icc_A_k": "ICC(A,k)"})._repr_html_()   # the same on every run
    assert repr(shown).splitlines()[0].split() == ["dataset", "split", "ICC(A,k)", "verdict", "n"]



def test_view_says_each_leading_label_once_per_run_of_rows_at_any_depth():
    index = pd.MultiIndex.from_tuples([("mur92", "image", "margin"), ("mur92", "image", "epochs"),
                                       ("zappos", "image", "lr"), ("zappos", "target", "lr")],
                                      names=["dataset", "split", "parameter"])
    shown = report.view(pd.DataFrame({"share": [0.5, 0.6, 0.7, 0.8]}, index=index))
    # by hand: a label is blank where it and every label left of it repeat the row above
    assert shown.frame["dataset"].tolist() == ["mur92", "", "zappos", ""]
    assert shown.frame["split"].tolist() == ["image", "", "image", "target"]
    assert shown.frame["parameter"].tolist() == ["margin", "epochs", "lr", "lr"]


def test_grid_edge_table_lists_what_grid_edges_warns_about_run_by_run():
    from clpips import protocol

    grid = protocol.Grid(margins=(0.01, 0.05, 0.1), lrs=(0.001, 0.01), epochs=(2, 5, 10))
    inner = grid.settings()
    runs = {("a", "image"): types.SimpleNamespace(folds=pd.DataFrame({"margin": [0.1, 0.1, 0.05], "lr": [0.01] * 3,
                                                                      "epochs": [2, 5, 10]}), inner=inner),
            ("b", "target"): types.SimpleNamespace(folds=pd.DataFrame({"margin": [0.01, 0.01, 0.01, 0.05],
                                                                       "lr": [0.001] * 4, "epochs": [2, 2, 2, 2]}),
                                                   inner=inner)}
    table = report.grid_edge_table(runs, names=["dataset", "split"])
    # by hand: a: margin 0.1 in 2 of 3 folds (lr has two values: never warned); b: margin 0.01 in 3 of 4, epochs 2 in 4 of 4
    assert table.index.tolist() == [("a", "image", "margin"), ("b", "target", "margin"), ("b", "target", "epochs")]
    assert table["value"].tolist() == ["0.1", "0.01", "2"]
    assert table["folds there (share)"].tolist() == pytest.approx([2 / 3, 3 / 4, 1.0])
    warned = [name for run in runs.values() for name, row in protocol.grid_edges(run.folds, run.inner, warn=False)
              .iterrows() if row["warning"]]
    assert warned == ["margin", "margin", "epochs"]

def test_view_keeps_a_column_of_intervals_right_aligned_and_names_a_bad_column():
    table = pd.DataFrame({"Δ": ["+0.106", "-0.011"], "interval": ["[+0.017, +0.195]", "[-0.05, +0.1]"]},
                         index=pd.Index(["by target", "by image"], name="split"))
    assert report.view(table).left == ["split"]
    with pytest.raises(ValueError, match="no column 'low'"):
        report.view(table, decimals={"low": 3})


@pytest.mark.parametrize("a, b, words", [(0.1234, 0.1231, "equal to"), (0.2, 0.1, "larger than"),
                                         (0.1, 0.2, "smaller than"), (0.0841, 0.0839, "equal to")])
def test_compare_words_says_equal_when_the_shown_values_are_equal(a, b, words):
    assert report.compare_words(a, b) == words


@pytest.mark.parametrize("verdicts, sentence", [
    ({"mur92": "helps", "zappos": "helps", "simulated": "equivalent"},
     "helps on mur92 and zappos, and shows no difference on simulated"),
    ({"mur92": "inconclusive", "zappos": "hurts"}, "helps on no dataset, shows no difference on mur92, and hurts on zappos"),
    ({"mur92": "helps"}, "helps on mur92"),
    ({"a": "no gain shown", "b": "equivalent"}, "helps on no dataset, and shows no difference on a and b"),
])
def test_verdict_sentence_says_each_verdict_once_and_never_on_none(verdicts, sentence):
    assert report.verdict_sentence(verdicts) == sentence
    assert "on none" not in report.verdict_sentence(verdicts)
