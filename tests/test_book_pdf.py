"""`make pdf` prints the single-page build: that page must carry every chapter's saved widgets
(book/_ext/single_page.py), which myst-nb adds only to each notebook's own page (issue #26, item 6)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
STATE = "application/vnd.jupyter.widget-state+json"


def notebook_with_widget(path: Path, model_id: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {STATE: {"version_major": 2, "version_minor": 0, "state": {model_id: {
        "model_name": "IntSliderModel", "model_module": "@jupyter-widgets/controls",
        "model_module_version": "2.0.0", "state": {"value": 3}}}}}
    nb.cells = [nbformat.v4.new_markdown_cell(f"# Chapter {model_id}")]
    path.write_text(nbformat.writes(nb))


def build(tmp_path: Path, builder: str) -> str:
    """``sphinx-build -W`` of two notebooks with saved widgets (a process each: Sphinx registers nodes globally)."""
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    notebook_with_widget(src / "one.ipynb", "aaaa1111")
    notebook_with_widget(src / "two.ipynb", "bbbb2222")
    (src / "index.md").write_text("# Book\n\n```{toctree}\none\ntwo\n```\n")
    (src / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(REPO / 'book' / '_ext')!r})\n"
        "extensions = ['myst_nb', 'single_page']\nnb_execution_mode = 'off'\n"
        "nb_ipywidgets_js = {'widgets/embed-amd.js': {}}\n")
    out = tmp_path / builder
    done = subprocess.run([sys.executable, "-m", "sphinx", "-b", builder, "-W", "-q", "-E", str(src), str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return (out / "index.html").read_text()


def states(page: str) -> list[str]:
    """The model ids of each widget-state script on a page."""
    found = []
    for part in page.split(f'<script type="{STATE}">')[1:]:
        found.append(sorted(json.loads(part.split("</script>")[0])["state"]))
    return sorted(found)


def test_the_single_page_carries_every_chapters_widget_state_and_the_scripts_once(tmp_path):
    page = build(tmp_path, "singlehtml")
    assert states(page) == [["aaaa1111"], ["bbbb2222"]]
    assert page.count('src="_static/widgets/embed-amd.js"') == 1


def test_the_html_pages_are_left_as_myst_nb_makes_them(tmp_path):
    assert states(build(tmp_path, "html")) == []                     # the root page has no widgets of its own
    chapter = (tmp_path / "html" / "one.html").read_text()
    assert states(chapter) == [["aaaa1111"]] and chapter.count("embed-amd.js") == 1
