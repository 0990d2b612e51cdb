"""Presentation: the chapters' tables, sentences and number formats, in one place.

The library computes (:mod:`clpips.evaluate`, :mod:`clpips.stats`, :mod:`clpips.book.ablations`,
:mod:`clpips.book.personal`); this module turns results into what a reader sees, and
:mod:`clpips.book.plots` draws. :func:`glue_all` lets a notebook glue a whole mapping of
values in one call.

* numbers and words: :func:`format_p` (the one p-value formatter), :func:`fmt`, :func:`sig` and
  :func:`readable` (table cells: 3 significant figures, ``—`` for NaN), :func:`view` (a table as a page
  shows it: one header row, readable headers, text left and numbers right), :func:`in_words` (a list as English),
  :func:`compare_words` ("larger than", "smaller than", "equal to"), :func:`verdict_sentence` (verdicts of
  :func:`clpips.stats.verdict` as one clause);
* the evaluation chapters: :func:`protocol_table` (the nested protocol's summary), :func:`table3`,
  :func:`table4` (the paper's tables), :func:`flat` (a table's numbers by name, for glue);
* the ablations chapter: :func:`factor_facts`, :func:`verdict_lists`, :func:`budget_note`,
  :func:`report_table`;
* notebooks: :func:`glue_all`.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Optional

import numpy as np
import pandas as pd

from clpips import protocol
from clpips.book.baselines import label as metric_label
from clpips.book.plots.protocol import TITLES as PROTOCOL_TITLES
from clpips.defaults import DEFAULTS

__all__ = ["format_p", "fmt", "in_words", "compare_words", "verdict_groups", "verdict_sentence", "sig", "readable", "Table", "view", "protocol_table", "interval_phrase", "flat", "table3", "table4", "factor_title", "factor_facts", "verdict_lists", "budget_note",
           "report_table", "glue_all"]


# --------------------------------------------------------------------------- numbers
def format_p(p: Optional[float], digits: int = 2, style: str = "prose") -> str:
    """A p-value as text: the package's one p-value formatter.

    ``style="prose"``: ``"p = 0.034"``, ``"p < 0.001"``, ``"p = 1"`` (NaN: ``"p undefined"``), for
    sentences. ``style="table"``: ``"0.034"``, ``"1.2e-04"`` (NaN: ``"—"``), for table cells.
    """
    if style not in ("prose", "table"):
        raise ValueError(f"style must be 'prose' or 'table', got {style!r}")
    undefined = p is None or not np.isfinite(p)
    if style == "table":
        return "—" if undefined else (f"{p:.{digits}g}" if p >= 1e-3 else f"{p:.1e}")
    if undefined:
        return "p undefined"
    if p < 0.001:
        return "p < 0.001"
    return f"p = {float(f'{p:.{digits}g}'):g}"


def fmt(value: Optional[float], spec: str) -> str:
    """``format(value, spec)``, or ``"—"`` for a missing or non-finite value."""
    return "—" if value is None or (isinstance(value, float) and not np.isfinite(value)) else format(value, spec)


def in_words(items, none: str = "none") -> str:
    """A list as English: ``[]`` -> ``"none"``, ``["A"]`` -> ``"A"``, ``["A", "B"]`` -> ``"A and B"``,
    ``["A", "B", "C"]`` -> ``"A, B and C"``; a name given twice is said once (first place kept)."""
    words = list(dict.fromkeys(str(item) for item in items))
    if not words:
        return none
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def sig(value: Any, digits: int = 3) -> str:
    """A number for a table cell: ``digits`` significant figures (no exponent between 1e-4 and 1e6),
    ``"—"`` where missing or not finite; integers as they are; anything else as text."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return "—" if value is None else str(value)
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not np.isfinite(v):
            return "—"
        if v == 0:
            return "0"
        if 1e-4 <= abs(v) < 1e6:
            decimals = max(0, digits - 1 - int(np.floor(np.log10(abs(v)))))
            if decimals and abs(round(v, decimals)) >= 10 ** (digits - decimals):   # 0.9996 -> 1.00, not 1.000
                decimals -= 1
            text = f"{round(v, decimals):.{decimals}f}"
            return "0" if float(text) == 0 else text
        return f"{v:.{digits - 1}e}"
    return "—" if value is pd.NA or value is pd.NaT else str(value)


def readable(table: pd.DataFrame, digits: int = 3, decimals: Optional[Mapping[str, int]] = None) -> pd.DataFrame:
    """``table`` as text for reading: every number to ``digits`` significant figures (:func:`sig`), or to
    a fixed number of decimals for the columns named in ``decimals`` (aligned, as a column of estimates
    reads best), ``"—"`` for NaN. Index and headers are kept; nothing is computed."""
    decimals = dict(decimals or {})
    unknown = sorted(set(decimals) - set(table.columns))
    if unknown:
        raise ValueError(f"readable: no column {unknown[0]!r} in the table (columns: {list(table.columns)})")
    out = table.copy().astype(object)
    for column in table.columns:
        if column in decimals:
            out[column] = [fmt(v, f".{decimals[column]}f") if v is not None else "—" for v in table[column]]
        else:
            out[column] = [sig(v, digits) for v in table[column]]
    return out


def compare_words(a: float, b: float, digits: int = 3, words: tuple[str, str] = ("larger than", "smaller than")) -> str:
    """How ``a`` stands to ``b`` as the reader sees them (both shown to ``digits`` decimals): ``words[0]``,
    ``words[1]`` or ``"equal to"`` when the two shown values are the same (``0.1234`` and ``0.1231`` at 3
    decimals read as equal, and a sentence must not call one larger)."""
    shown_a, shown_b = round(float(a), digits), round(float(b), digits)
    return "equal to" if shown_a == shown_b else (words[0] if shown_a > shown_b else words[1])


class Table:
    """A table of display strings as a page shows it (:func:`view`): HTML with one header row, the index
    as the first columns (a repeated label said once), text left-aligned and numbers right-aligned; its
    plain text (what ``glue`` records and a terminal prints) is the same table without the index.

    ``frame``: the strings, index already moved into columns; ``left``: the columns to align left.
    """

    def __init__(self, frame: pd.DataFrame, left: list[str]) -> None:
        self.frame = frame
        self.left = [c for c in left if c in frame.columns]

    def _repr_html_(self) -> str:
        # ids from the content (not Python's per-process hash): the same table gives the same HTML on
        # every run, and two tables of one page different CSS ids
        uuid = hashlib.sha1(self.frame.to_csv().encode()).hexdigest()[:8]
        styler = self.frame.style.hide(axis="index").set_uuid(uuid).set_table_attributes('class="dataframe clpips-table"')
        columns = [f"#T_{uuid} .col{list(self.frame.columns).index(c)}" for c in self.left]
        # text columns: left-aligned, and free to wrap (numbers never wrap: clpips.css)
        align = f"<style>{', '.join(columns)} {{ text-align: left; white-space: normal; }}</style>\n" if columns else ""
        return align + styler.to_html()

    def __repr__(self) -> str:
        return self.frame.to_string(index=False)


def view(table: pd.DataFrame, digits: int = 3, decimals: Optional[Mapping[str, int] | int] = None,
         names: Optional[Mapping[str, str]] = None) -> Table:
    """``table`` ready to show: :func:`readable` numbers (``digits`` significant figures, or ``decimals`` per
    column; one number: that many decimals in every column of floats, as a table of estimates reads best),
    columns renamed by ``names`` (headers in words wrap; ``icc_A_k_ci_low`` cannot), and the index levels
    moved in front as columns under their names, so every header sits on one row above its column. A
    label repeated down a leading index level is shown once (as pandas does for a MultiIndex)."""
    if isinstance(decimals, int):
        decimals = {c: decimals for c in table.columns if pd.api.types.is_float_dtype(table[c])}
    text = readable(table, digits=digits, decimals=decimals)
    index_names = [name if name is not None else "" for name in text.index.names]
    if len(set(index_names)) < len(index_names):             # unnamed levels: give each its own empty-ish name
        index_names = [name or " " * (i + 1) for i, name in enumerate(index_names)]
    levels = [[sig(v) if isinstance(v, (float, np.floating)) else str(v) for v in text.index.get_level_values(i)]
              for i in range(text.index.nlevels)]
    labels = [list(level) for level in levels]                # compared as they are, before any is blanked
    for i in range(len(levels) - 1):                          # say a leading label once per run of rows
        levels[i] = [v if j == 0 or any(labels[k][j] != labels[k][j - 1] for k in range(i + 1)) else ""
                     for j, v in enumerate(levels[i])]
    front = pd.DataFrame(dict(zip(index_names, levels)))
    body = text.reset_index(drop=True).rename(columns=lambda c: str(c))
    frame = pd.concat([front, body], axis=1).rename(columns=dict(names or {}))
    numeric = {str(c) for c in table.columns if pd.api.types.is_numeric_dtype(table[c])
               and not pd.api.types.is_bool_dtype(table[c])}
    words = [str(c) for c in table.columns if str(c) not in numeric
             and not table[c].astype(str).str.match(r"^\s*[-+−\[(0-9.—]").all()]
    left = index_names + [dict(names or {}).get(c, c) for c in words]
    return Table(frame, left)


#: how a sentence says each verdict of :func:`clpips.stats.verdict` (every word that is not "helps" or
#: "hurts" says that the interval holds zero: no difference shown)
VERDICT_PHRASES = {"helps": "helps on", "none": "shows no difference on", "hurts": "hurts on"}


def verdict_groups(verdicts: Mapping[str, str]) -> dict[str, list[str]]:
    """``{name: verdict word}`` grouped as ``{"helps": [...], "none": [...], "hurts": [...]}`` (order kept)."""
    groups: dict[str, list[str]] = {"helps": [], "none": [], "hurts": []}
    for name, word in verdicts.items():
        groups[word if word in ("helps", "hurts") else "none"].append(str(name))
    return groups


def verdict_sentence(verdicts: Mapping[str, str], things: str = "dataset") -> str:
    """Verdicts of :func:`clpips.stats.verdict` per name as one clause: ``"helps on A and B, and shows no
    difference on C"``; a verdict nobody got is left out, except "helps", said as ``"helps on no dataset"``
    (``things`` names what the names are). The clause follows a subject: "CLPIPS helps on ..."."""
    groups = verdict_groups(verdicts)
    parts = [f"{VERDICT_PHRASES[word]} {in_words(names)}" for word, names in groups.items() if names]
    if not groups["helps"]:
        parts.insert(0, f"helps on no {things}")
    # clauses joined with a comma before the last "and": each clause may hold an "and" of its own
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])}, and {parts[-1]}"


def _table_p(p: Optional[float]) -> str:
    return format_p(p, style="table")


# --------------------------------------------------------------------------- the evaluation chapters
def _protocol_cells(row: pd.Series) -> dict[str, str]:
    """One statistic's row of :meth:`clpips.protocol.CrossvalResult.summary` as the display strings of
    :func:`protocol_table` and :func:`statistic_table` (written once, so the two tables read alike)."""
    positive = int(round(row["positive_share"] * row["n_folds"]))
    return {"LPIPS": f"{row['lpips']:.3f}", "CLPIPS": f"{row['clpips']:.3f}", "Δ": f"{row['delta']:+.3f}",
            "corrected t 95%": f"[{row['nb_low']:+.3f}, {row['nb_high']:+.3f}]",
            "target bootstrap 95%": (f"[{row['boot_low']:+.3f}, {row['boot_high']:+.3f}]"
                                     if np.isfinite(row["boot_low"]) else "—"),
            "folds Δ > 0": f"{positive}/{int(row['n_folds'])}"}


def protocol_table(summaries: Mapping[str, pd.DataFrame],
                   reference: Optional[Mapping[str, float]] = None) -> pd.DataFrame:
    """The nested protocol's summary for reading: one row per (split mode, statistic), as display strings.

    ``summaries`` maps a split mode to :meth:`clpips.protocol.CrossvalResult.summary`; ``reference``
    maps a statistic to the paper's Δ (shown as "—" where it has none). Columns: ``LPIPS``,
    ``CLPIPS`` (means over folds), ``Δ``, ``corrected t 95%``, ``target bootstrap 95%`` ("—" for the
    statistics it does not cover), ``folds Δ > 0`` and ``paper Δ``; index ``(split, statistic)``.
    """
    reference = dict(reference or {})
    rows = [{"split": f"by {mode}", "statistic": PROTOCOL_TITLES[stat].lstrip("Δ").strip(), **_protocol_cells(row),
             "paper Δ": f"{reference[stat]:+.3f}" if stat in reference else "—"}
            for mode, summary in summaries.items() for stat, row in summary.iterrows()]
    return pd.DataFrame(rows).set_index(["split", "statistic"])


def statistic_table(summaries: Mapping[tuple[str, str], pd.DataFrame], stat: str,
                    paper_row: Optional[Mapping[str, str]] = None) -> pd.DataFrame:
    """One statistic of several protocol runs, for reading: a row per ``(dataset, split mode)`` of
    ``summaries`` (each a :meth:`~clpips.protocol.CrossvalResult.summary`), the columns of
    :func:`protocol_table` but ``paper Δ``; ``paper_row`` (display strings by column, "—" where missing)
    is added last as the paper's row. One statistic per table, so that it fits the page."""
    rows = [{"dataset, split": f"{name}, by {mode}", **_protocol_cells(summary.loc[stat])}
            for (name, mode), summary in summaries.items()]
    if paper_row is not None:
        rows.append({"dataset, split": "paper (its data), one split by target",
                     **{column: paper_row.get(column, "—") for column in rows[0] if column != "dataset, split"}})
    return pd.DataFrame(rows).set_index("dataset, split")


def grid_edge_table(runs: Mapping[Any, Any], names: list[str]) -> pd.DataFrame:
    """Where protocol runs chose a tuned value at an edge of its grid in most outer folds
    (:func:`clpips.protocol.grid_edges`: more than half, grids of three values or more): a row per run (its key
    in ``runs``, index levels ``names``) and parameter, with the value and the share of folds that chose it.
    Such a run's best setting may lie beyond the grid, so its result holds for the grid offered."""
    edges = pd.concat({key: protocol.grid_edges(run.folds, run.inner, warn=False) for key, run in runs.items()},
                      names=[*names, "parameter"])
    edges = edges[edges["warning"] != ""]
    value = edges["low"].where(edges["at_low"] > edges["at_high"], edges["high"])
    share = edges[["at_low", "at_high"]].max(axis=1)
    return pd.DataFrame({"value": [f"{v:g}" for v in value], "folds there (share)": share}, index=edges.index)


def interval_phrase(word: str) -> str:
    """:func:`clpips.book.power.verdict`'s word for an interval of Δ as the phrase book/reproduction.md pastes:
    where the interval lies against zero (``"helps"``: above, ``"hurts"``: below, any other word: it holds zero)."""
    return {"helps": "above zero: CLPIPS agrees better",
            "hurts": "below zero: CLPIPS agrees worse"}.get(word, "includes zero: no difference is shown")


def flat(table: pd.DataFrame, columns: Optional[list[str]] = None) -> dict[str, Any]:
    """``{"<row>_<column>": value}`` of a table's cells (numpy scalars as Python ones), for :func:`glue_all`."""
    columns = list(table.columns) if columns is None else columns
    # cell by cell, not by rows: a row of mixed columns would turn an int column's value into a float
    cells = {f"{row}_{col}": table.at[row, col] for row in table.index for col in columns}
    return {name: (value.item() if isinstance(value, np.generic) else value) for name, value in cells.items()}


def table3(alignment: pd.DataFrame, paper: Optional[Mapping[str, Mapping[str, float]]] = None,
           labels: Optional[Mapping[str, str]] = None,
           cluster_ci: Optional[Mapping[str, tuple[float, float]]] = None) -> pd.DataFrame:
    """The paper's Table 3 layout for any metrics, as display strings.

    Parameters
    ----------
    alignment : pandas.DataFrame
        :func:`clpips.evaluate.alignment_table` (index = metric column names).
    paper : mapping, optional
        Row label -> published values with keys among ``icc_A_k``, ``icc_A_k_ci_low``,
        ``icc_A_k_ci_high``, ``icc_A_k_pval``, ``spearman_raw`` (the paper pools raw
        distances), ``spearman``, ``spearman_pval``, ``kendall``; a missing key shows as
        "—" (not reported, or not transcribed).
    labels : mapping, optional
        Metric column -> display name (default :data:`clpips.book.baselines.LABELS`).
    cluster_ci : mapping, optional
        Metric column -> (low, high) of ICC(A,k) from a bootstrap over targets.

    Returns
    -------
    pandas.DataFrame
        Index ``metric``; columns ``ICC(A,k) [F 95% CI, rows independent]``,
        ``[95% CI, targets resampled]``, ``p (ICC)``, ``ρ raw pooled (paper)``,
        ``ρ ranks (= mean per-ranking)``, ``p (ρ ranks)``, ``Kendall τ_b``, ``Koo & Li``.
    """
    def row(values: Mapping[str, float], cluster: Optional[tuple[float, float]]) -> dict[str, str]:
        get = lambda key: values.get(key, np.nan)  # noqa: E731
        ci = (f" [{fmt(get('icc_A_k_ci_low'), '.3f')}, {fmt(get('icc_A_k_ci_high'), '.3f')}]"
              if np.isfinite(get("icc_A_k_ci_low")) else "")
        return {"ICC(A,k) [F 95% CI, rows independent]": fmt(get("icc_A_k"), ".3f") + ci,
                "[95% CI, targets resampled]": (f"[{fmt(cluster[0], '.3f')}, {fmt(cluster[1], '.3f')}]"
                                                if cluster is not None else "—"),
                "p (ICC)": _table_p(get("icc_A_k_pval")),
                "ρ raw pooled (paper)": fmt(get("spearman_raw"), ".3f"),
                "ρ ranks (= mean per-ranking)": fmt(get("spearman"), ".3f"), "p (ρ ranks)": _table_p(get("spearman_pval")),
                "Kendall τ_b": fmt(get("kendall"), ".3f"),
                "Koo & Li": str(values.get("icc_A_k_koo_li", "—"))}

    names = dict(labels or {})
    clusters = dict(cluster_ci or {})
    rows = {names.get(m, metric_label(m)): row({k: (float(v) if isinstance(v, (int, float, np.number)) else v)
                                                 for k, v in alignment.loc[m].items()}, clusters.get(m))
            for m in alignment.index}
    for name, values in (paper or {}).items():
        rows[name] = row({k: float(v) for k, v in values.items()}, None)
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("metric")


def table4(results: Mapping[str, object], bca: Optional[Mapping[str, object]] = None,
           paper: Optional[Mapping[str, Mapping[str, float]]] = None) -> pd.DataFrame:
    """The paper's Table 4 layout: Δ (b − a) with 95% CIs and one-sided p, as display strings.

    Parameters
    ----------
    results : mapping
        Label (e.g. the resampling unit) -> :class:`clpips.stats.PairedBootstrapResult`
        with percentile intervals.
    bca : mapping, optional
        The same labels -> results with ``method="bca"`` (same resamples), for a BCa column.
    paper : mapping, optional
        Row label -> ``{"statistic": ..., "delta": ..., "ci_low": ..., "ci_high": ..., "p_value": ...}``
        (missing keys shown as "—").

    Returns
    -------
    pandas.DataFrame
        Index ``(resampling, statistic)``; columns ``Δ``, ``95% CI (percentile)``,
        ``95% CI (BCa)``, ``p (one-sided)``, ``resamples``.
    """
    rows = []
    for name, res in results.items():
        summary = res.summary()
        other = bca[name].summary() if bca and name in bca else None
        for stat, s in summary.iterrows():
            bca_ci = (f"[{fmt(other.at[stat, 'ci_low'], '+.3f')}, {fmt(other.at[stat, 'ci_high'], '+.3f')}]"
                      if other is not None else "—")
            rows.append({"resampling": name, "statistic": stat, "Δ": fmt(s["delta"], "+.3f"),
                         "95% CI (percentile)": f"[{fmt(s['ci_low'], '+.3f')}, {fmt(s['ci_high'], '+.3f')}]",
                         "95% CI (BCa)": bca_ci, "p (one-sided)": _table_p(s["p_value"]),
                         "resamples": f"{res.n_boot:,}"})
    for name, v in (paper or {}).items():
        get = lambda key: float(v.get(key, np.nan))  # noqa: E731
        rows.append({"resampling": name, "statistic": v.get("statistic", "ΔICC(A,k)"),
                     "Δ": fmt(get("delta"), "+.3f"),
                     "95% CI (percentile)": f"[{fmt(get('ci_low'), '+.3f')}, {fmt(get('ci_high'), '+.3f')}]",
                     "95% CI (BCa)": "—", "p (one-sided)": _table_p(get("p_value")), "resamples": "—"})
    return pd.DataFrame(rows).set_index(["resampling", "statistic"])


# --------------------------------------------------------------------------- the ablations chapter
def factor_title(factor: str, titles: Optional[Mapping[str, str]] = None) -> str:
    """A factor's name for readers: ``titles[factor]``, else :data:`clpips.book.ablations.FACTORS`' title."""
    from clpips.book.ablations.grid import FACTORS
    return dict(titles or {}).get(factor, FACTORS.get(factor, {}).get("title", factor))


def factor_facts(summary: pd.DataFrame, factor: str) -> dict[str, Any]:
    """Plain-Python numbers and words about one factor, for the chapter's prose (glue).

    Keys: ``ref_level, ref_mean, ref_sd, best_level, best_mean, best_diff, best_low, best_high,
    best_verdict`` (the best non-reference level), the same with ``worst_`` (the worst one),
    ``range`` (max − min of the level means), ``lpips`` and ``base`` (the LPIPS means), and
    ``n`` (replicates of the reference level).
    """
    frame = summary[summary["factor"] == factor]
    if frame.empty:
        raise KeyError(f"no factor {factor!r} in the summary")
    ref = frame[frame["reference"]]
    if ref.empty:
        raise ValueError(f"factor {factor!r} has no reference level")
    ref = ref.iloc[0]
    others = frame[~frame["reference"]]
    out: dict[str, Any] = {"ref_level": str(ref["level"]), "ref_mean": float(ref["mean"]),
                           "ref_sd": float(ref["sd"]), "range": float(frame["mean"].max() - frame["mean"].min()),
                           "lpips": float(ref["lpips"]), "base": float(ref["base"]), "n": int(ref["n"]),
                           "n_levels": int(len(frame))}
    for name, row in (("best", others.loc[others["mean"].idxmax()] if len(others) else None),
                      ("worst", others.loc[others["mean"].idxmin()] if len(others) else None)):
        if row is None:
            continue
        out.update({f"{name}_level": str(row["level"]), f"{name}_mean": float(row["mean"]),
                    f"{name}_diff": float(row["diff"]), f"{name}_low": float(row["diff_low"]),
                    f"{name}_high": float(row["diff_high"]), f"{name}_verdict": _verdict_words(row["verdict"])})
    return out


def _verdict_words(verdict: str) -> str:
    return {"higher": "reliably higher", "lower": "reliably lower",
            "within noise": "within the noise", "reference": "the reference"}.get(verdict, verdict)


def verdict_lists(summary: pd.DataFrame, titles: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """Which factors have a level reliably better / worse than their default, and which stay within noise.

    Returns ``{"better": ..., "worse": ..., "within": ...}``, each a readable
    list of factor titles ("none" when empty).
    """
    titles = dict(titles or {})
    better, worse, within = [], [], []
    for factor, frame in summary.groupby("factor", sort=False):
        name = factor_title(factor, titles)
        verdicts = set(frame["verdict"])
        if "higher" in verdicts:
            better.append(name)
        if "lower" in verdicts:
            worse.append(name)
        if not verdicts & {"higher", "lower"}:
            within.append(name)
    return {"better": in_words(better), "worse": in_words(worse), "within": in_words(within)}


def budget_note(results: pd.DataFrame, titles: Optional[Mapping[str, str]] = None, max_listed: int = 6,
                share: float = 0.5) -> str:
    """:func:`budget_limited` in words: ``"none"``, the levels, or how many when they are too many to list."""
    from clpips.book.ablations.summary import budget_limited
    limited = budget_limited(results, share=share)
    if limited.empty:
        return "none"
    titles = dict(titles or {})
    names = [f"{factor_title(f, titles)} {lv}"
             for f, lv in zip(limited["factor"], limited["level"])]
    if len(names) <= max_listed:
        return ", ".join(names)
    n_levels = results.groupby(["factor", "level"]).ngroups
    refs = set(zip(results.loc[results["reference"], "factor"], results.loc[results["reference"], "level"]))
    with_default = ", the default fit among them," if refs & set(zip(limited["factor"], limited["level"])) else ""
    return (f"{len(names)} of the {n_levels} levels{with_default} so on this data the epoch budget rather than "
            "early stopping ends most fits, and a larger `epochs` may change the picture")


def report_table(summary: pd.DataFrame, titles: Optional[Mapping[str, str]] = None, digits: int = 3,
                 ci: float = DEFAULTS.ci) -> pd.DataFrame:
    """:func:`summarize`'s table for reading: one row per (factor, level), rounded, the interval as text.

    Columns: ``replicates``, ``ICC(A,k)`` (mean), ``sd``, ``minus LPIPS`` (mean gain over the
    baseline on the same rankings), ``minus default`` (paired difference from the factor's
    reference level), its interval and the verdict. Indexed by (factor title, level).
    """
    titles = dict(titles or {})
    interval = f"{ci:.0%} interval"

    def span(row) -> str:
        if row["reference"]:
            return "(reference)"
        if not (np.isfinite(row["diff_low"]) and np.isfinite(row["diff_high"])):
            return "n/a"
        return f"{row['diff_low']:+.{digits}f} to {row['diff_high']:+.{digits}f}"

    out = pd.DataFrame({
        "factor": [factor_title(f, titles) for f in summary["factor"]],
        "level": summary["level"].astype(str), "replicates": summary["n"].astype(int),
        "ICC(A,k)": summary["mean"].round(digits), "sd": summary["sd"].round(digits),
        "minus LPIPS": summary["delta"].round(digits), "minus default": summary["diff"].round(digits),
        interval: [span(row) for _, row in summary.iterrows()], "verdict": summary["verdict"]})
    return out.set_index(["factor", "level"])


# --------------------------------------------------------------------------- notebooks
def glue_all(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Glue every ``name -> value`` of ``values`` (as ``prefix + name``) for the book, not displayed.

    A numpy scalar is glued as its Python value. Returns the glued mapping, so a cell can
    show it or check it. Needs ``myst_nb`` (the book's extension).
    """
    from myst_nb import glue
    out = {f"{prefix}{name}": (value.item() if isinstance(value, np.generic) else value)
           for name, value in values.items()}
    for name, value in out.items():
        glue(name, value, display=False)
    return out
