"""The class report (clpips.apps.class_report): chapter 10 on a class file, as one standalone HTML page.

* the renderer, on a small executed notebook written here: glued values pasted in as myst_nb pastes them
  (checked against myst_nb's own formatter), what the data could not give as a dash, figures as data: URIs,
  cross references in words, no code, no warnings, no links out;
* end to end: a class of a small folder study as ``clpips classroom`` leaves it (Ana ranked 4 of its 10
  sets, Ben 3, Cleo joined and ranked none; nobody complete) gives a page with every student's name, every
  ranking counted, three figures inside and no raw markup; a class with no ranking yet is one line.
"""
from __future__ import annotations

import base64
import io
import re

import numpy as np
import pandas as pd
import pytest
from myst_nb.core.variables import format_plain_text
from PIL import Image

from clpips.apps import class_report as cr
from clpips.apps import classroom

RAW_MARKUP = ("{glue", "{cite", "{numref", "{doc", "`", "NaN", "Traceback", "$")


def _png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), (200, 30, 30)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _record(name: str, **data) -> dict:
    return {"output_type": "display_data", "metadata": {"scrapbook": {"name": name}},
            "data": {f"{cr.RECORD}{kind}": value for kind, value in data.items()}}


def _cell(kind: str, source: str, outputs=(), tags=()) -> dict:
    cell = {"cell_type": kind, "metadata": {"tags": list(tags)}, "source": source}
    return cell | ({"outputs": list(outputs)} if kind == "code" else {})


PNG = _png()
NOTEBOOK = {"cells": [
    _cell("markdown", "(sec-10-your-class)=\n# Your class\n\nSee {doc}`/book/classroom` and [a site](https://example.org)."),
    _cell("code", "class_csv = ''", tags=["parameters"]),
    _cell("code", "x = 1", outputs=[
        _record("nb10_rho", **{"text/plain": "0.48683982683982685"}),
        _record("nb10_low", **{"text/plain": "'<b>Ana</b>'"}),
        _record("nb10_missing", **{"text/plain": "nan"}),
        _record("nb10_count", **{"text/plain": "12"}),
        {"output_type": "stream", "name": "stdout", "text": ["Data: a class that `clpips classroom` served.\n"]},
        {"output_type": "stream", "name": "stderr", "text": ["UserWarning: something\n"]},
        {"output_type": "execute_result", "metadata": {}, "data": {
            "text/html": "<table><tr><th>Ben</th><td>NaN</td><td>0.5</td></tr></table>", "text/plain": "Ben NaN"}},
        {"output_type": "display_data", "metadata": {}, "data": {
            "application/vnd.jupyter.widget-view+json": {"model_id": "x"}, "text/plain": "VBox(...)"}}]),
    _cell("code", "fig", tags=["remove-output"], outputs=[
        _record("nb10_fig", **{"image/png": PNG, "text/plain": "<Figure>"}),
        {"output_type": "execute_result", "metadata": {}, "data": {"image/png": PNG, "text/plain": "<Figure>"}}]),
    _cell("markdown", "## Rank it yourself\n\nA widget.", tags=["remove-from-report"]),
    _cell("markdown", "Spearman's $\\rho$ = {glue:text}`nb10_rho:.2f` over {glue:text}`nb10_count:d` students "
                      "({numref}`fig-10-a`, {numref}`fig-10-b`); furthest: {glue:text}`nb10_low:s`; "
                      "undefined: {glue:text}`nb10_missing:.2f`, never glued: {glue:text}`nb10_nothing:.3f`; "
                      "see {numref}`sec-07-personal-metrics` and {cite}`trinh2026`.\n\n"
                      "```{glue:figure} nb10_fig\n:name: fig-10-a\n\nRanks, $\\rho$.\n```\n\n"
                      "```{glue:figure} nb10_absent\n:name: fig-10-b\n\nNot drawn.\n```\n"),
]}


@pytest.fixture(scope="module")
def page() -> str:
    titles = {"/book/classroom": "Teaching with the compendium", "sec-07-personal-metrics": "Personal metrics"}
    return cr.render_notebook(NOTEBOOK, titles, source="class.csv")


def test_format_value_is_myst_nbs_formatting_for_the_values_it_can_show():
    for text, spec in (("0.48683982683982685", ".2f"), ("-0.0087909", ".3f"), ("12", "d"), ("0.0364069", ".1%"),
                       ("'student 04'", "s"), ("3", ".0f"), ("'Ana'", "")):
        assert cr.format_value(text, spec) == format_plain_text(text, spec or "s"), (text, spec)


def test_format_value_shows_what_the_data_could_not_give_as_a_dash():
    for text, spec in (("nan", ".2f"), ("nan", "s"), ("None", ".2f"), ("inf", ".2f"), ("'nobody'", ".2f")):
        assert cr.format_value(text, spec) == cr.MISSING, (text, spec)


def test_the_page_pastes_the_glued_values_and_shows_no_markup(page):
    text = re.sub(r"<[^>]+>", "", page)
    assert "Spearman's ρ = 0.49 over 12 students" in text
    assert "furthest: &lt;b&gt;Ana&lt;/b&gt;" in page and "<b>Ana</b>" not in page     # a name is text, escaped
    assert f"undefined: {cr.MISSING}, never glued: {cr.MISSING}" in text
    for markup in RAW_MARKUP:
        assert markup not in page, markup


def test_the_page_numbers_its_figures_and_names_what_it_refers_to(page):
    assert page.count("<figure") == 1 and f'<img alt="Figure 1" src="data:image/png;base64,{PNG}">' in page
    assert "(Figure 1, no figure yet)" in page                                   # fig-10-b was not drawn
    assert "the book&#x27;s chapter “Personal metrics”" in page and "(trinh2026)" in page
    assert "See the book&#x27;s page “Teaching with the compendium” and a site." in page
    assert "<figcaption><b>Figure 1.</b> Ranks, <span class=\"math\">ρ</span>.</figcaption>" in page


def test_the_page_shows_outputs_not_code_warnings_widgets_or_links(page):
    assert "class_csv" not in page and "x = 1" not in page and "UserWarning" not in page
    assert "VBox" not in page and "Rank it yourself" not in page
    assert "Data: a class that <code>clpips classroom</code> served." in page
    assert f"<td>{cr.MISSING}</td><td>0.5</td>" in page
    assert page.count("data:image/png") == 1                                     # the removed output is not shown
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?(?:https?:)?//", page)


# --------------------------------------------------------------------------- end to end
def _study(folder, n_images: int = 12):
    rng = np.random.default_rng(0)
    (folder / "study").mkdir()
    for i in range(n_images):
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(folder / "study" / f"im{i:02d}.png")
    return folder / "study"


def _class(folder, ranked: dict[str, int], joined=()):
    """A class of a folder study as the classroom leaves it: the sidecar, the names, the rankings."""
    study = classroom.load_study(str(_study(folder)), k=4, seed=0)
    sets = classroom.class_sets(study, 10, 0)
    csv = folder / "class.csv"
    classroom.write_sidecar(csv, study=str(folder / "study"), dataset=study, sets=sets, k=4, seed=0,
                            candidates="random")
    rng, rows = np.random.default_rng(1), []
    for name, n in ranked.items():
        for set_id in sets[:n]:
            part = study.table[study.table["set_id"] == set_id]
            rows += [{"set_id": set_id, "target": t, "candidate": c, "rater": name, "rank": int(r) + 1}
                     for t, c, r in zip(part["target"], part["candidate"], rng.permutation(len(part)))]
    pd.DataFrame(rows, columns=["set_id", "target", "candidate", "rater", "rank"]).to_csv(csv, index=False)
    for name in [*ranked, *joined]:
        classroom.NameRegister(csv).claim(name)
    return csv


def test_a_partial_class_gives_a_readable_page(tmp_path):
    csv = _class(tmp_path, {"Ana": 4, "Ben": 3}, joined=["Cleo"])
    out = cr.write_report(csv, tmp_path / "report" / "report.html", parameters={"n_boot": 200, "epochs": 3},
                          work_dir=tmp_path / "run")
    page = out.read_text(encoding="utf-8")
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page))
    for markup in RAW_MARKUP:
        assert markup not in page, markup
    for name in ("Ana", "Ben", "Cleo"):
        assert name in text
    assert "The data are 7 rankings by 2 students of 4 sets" in text            # every ranking: 4 + 3
    assert "None of the 3 students ranked all 10 sets" in text and "joined but ranked none (Cleo)" in text
    assert len(re.findall(r'<img alt="Figure \d" src="data:image/png;base64,[A-Za-z0-9+/=]{100,}">', page)) == 3
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?(?:https?:)?//", page)
    assert "Warning" not in page and "Error" not in page


def test_a_class_without_rankings_is_one_line(tmp_path):
    csv = _class(tmp_path, {}, joined=["Ana", "Ben"])
    with pytest.raises(cr.ReportError) as info:
        cr.write_report(csv, tmp_path / "report.html")
    assert str(info.value) == (f"{csv}: chapter 10 could not run on it: {csv}: no rankings yet (2 students "
                               f"joined: Ana, Ben); run chapter 10 once a student has ranked a set")
    assert not (tmp_path / "report.html").exists()


def test_bad_arguments_are_one_line_before_anything_runs(tmp_path):
    with pytest.raises(cr.ReportError, match=r"no such class file"):
        cr.write_report(tmp_path / "none.csv", tmp_path / "r.html")
    (tmp_path / "class.csv").write_text("set_id,target,candidate,rater,rank\n")
    with pytest.raises(cr.ReportError, match=r"--out .*r\.txt: must name an \.html file"):
        cr.write_report(tmp_path / "class.csv", tmp_path / "r.txt")
    (tmp_path / "dir.html").mkdir()
    with pytest.raises(cr.ReportError, match=r"is a folder"):
        cr.write_report(tmp_path / "class.csv", tmp_path / "dir.html")
