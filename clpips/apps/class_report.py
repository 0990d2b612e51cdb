"""A class's report: chapter 10 ("Your class") run on a class file, as one standalone HTML page.

:func:`write_report` runs the chapter on the class CSV through the book's own runner
(:func:`clpips.apps.notebook_runner.run_notebook`), so the report *is* the chapter's analysis,
and then renders the executed notebook into one HTML file a teacher can open, project or send:

* the prose, with every glued value pasted in as the book pastes it (myst_nb's ``{glue:text}``
  format specs honoured); a value the class's data could not give (NaN, or never glued because a
  section had too little data) shows as an em dash, and the chapter's notes say why in words;
* the figures, embedded as ``data:`` URIs (nothing is loaded from anywhere: the page works offline);
* what the cells show (tables, printed lines) without their code; warnings and the ranking widget,
  which needs a live kernel, are left out;
* cross references as words ("Figure 2", the title of the book's chapter referred to), ``$...$``
  math as Unicode, links as their text.

How myst_nb stores a glued value: a ``display_data`` output whose ``metadata.scrapbook.name`` is the
name and whose data keys are ``application/papermill.record/<mime type>`` (``scripts/glue_values.py``
reads them the same way). The Markdown is parsed by markdown-it-py with the MyST role, target and
dollar-math plugins of mdit-py-plugins (both come with jupyter-book, a dependency), raw HTML off:
text from the class file (students' names) is escaped, never interpreted.
"""
from __future__ import annotations

import ast
import html
import json
import math
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Optional

from markdown_it import MarkdownIt
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.myst_blocks import myst_block_plugin
from mdit_py_plugins.myst_role import myst_role_plugin

from clpips import atomic
from clpips.apps import notebook_runner as nr

#: the chapter a report renders
CHAPTER = "10_your_class"
#: what a value the data could not give shows as
MISSING = "—"
#: a cell with one of these tags is left out of the report (``remove-from-report``: e.g. the widget)
SKIP_CELL = frozenset({"parameters", "injected-parameters", "remove-cell", "remove-from-report"})
#: a cell with one of these tags shows no output in the report (its figure is pasted by the prose)
SKIP_OUTPUT = frozenset({"remove-output"})
#: the glue records' mime-type prefix (myst_nb's storage)
RECORD = "application/papermill.record/"
#: LaTeX the chapters use in ``$...$``, as Unicode (longest names first: ``\\leq`` before ``\\le``)
LATEX = {r"\approx": "≈", r"\Delta": "Δ", r"\delta": "δ", r"\alpha": "α", r"\beta": "β", r"\sigma": "σ",
         r"\times": "×", r"\ldots": "…", r"\infty": "∞", r"\cdot": "·", r"\rho": "ρ", r"\tau": "τ",
         r"\leq": "≤", r"\geq": "≥", r"\neq": "≠", r"\mu": "μ", r"\pm": "±", r"\le": "≤", r"\ge": "≥",
         r"\%": "%", r"\,": " ", r"\;": " "}


class ReportError(ValueError):
    """A class report that cannot be written (one line, for the command line)."""


# --------------------------------------------------------------------------- what the notebook glued
def glue_records(notebook: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{name: {mime type: data}}`` of every value an executed notebook glued (a later glue wins)."""
    out: dict[str, dict[str, Any]] = {}
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            data = {key[len(RECORD):]: value for key, value in output.get("data", {}).items()
                    if key.startswith(RECORD)}
            if name is not None and data:
                out[name] = data
    return out


def _text(data: Any) -> str:
    return "".join(data) if isinstance(data, list) else str(data)


def format_value(text: str, spec: str = "") -> str:
    """A glued ``text/plain`` value formatted as myst_nb's ``{glue:text}`name:spec``` formats it: the repr
    read back (:func:`ast.literal_eval`), then ``format(value, spec)``. A value the data could not give (NaN,
    None, or not a finite number where a number is asked for) shows as :data:`MISSING`."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text
    if value is None or text.strip() in ("nan", "NaN", "<NA>"):
        return MISSING
    kind = spec[-1:] if spec else "s"
    try:
        if kind in "bcdoxX":
            value = int(value)
        elif kind in "eEfFgGn%":
            value = float(value)
        else:
            return format(str(value), spec)
    except (TypeError, ValueError):
        return MISSING
    return format(value, spec) if math.isfinite(value) else MISSING


# --------------------------------------------------------------------------- names of the book's parts
def book_titles(root: Optional[Path] = None) -> dict[str, str]:
    """Every label of the book (``(sec-07-personal-metrics)=``) and page (``/book/classroom``) -> its title."""
    root = nr.repo_root() if root is None else Path(root)
    titles: dict[str, str] = {}
    target = re.compile(r"^(?:# )?\(([\w:-]+)\)=\s*\n(?:# )?#+ (.+)$", re.MULTILINE)
    heading = re.compile(r"^(?:# )?# (.+)$", re.MULTILINE)
    for path in [*nr.list_notebooks(root / "notebooks"), *sorted((root / "book").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        titles.update({label: title.strip() for label, title in target.findall(text)})
        first = heading.search(text)
        if first:
            titles[f"/{path.relative_to(root).with_suffix('').as_posix()}"] = first.group(1).strip()
    return titles


def _unlatex(source: str) -> str:
    for command, char in LATEX.items():
        source = source.replace(command, char)
    return re.sub(r"[{}]", "", source)


@dataclass
class Figures:
    """The chapter's figures (``{glue:figure}`` blocks) whose glue exists, numbered in order of appearance."""

    number: dict[str, int] = field(default_factory=dict)      #: label -> figure number
    labels: set[str] = field(default_factory=set)             #: every figure label, drawn or not

    @classmethod
    def of(cls, notebook: Mapping[str, Any], glued: Mapping[str, Mapping[str, Any]]) -> "Figures":
        figures = cls()
        pattern = re.compile(r"```\{glue:figure\}\s+(\S+)\s*\n:name:\s*(\S+)")
        for cell in notebook.get("cells", []):
            if cell.get("cell_type") == "markdown":
                for name, label in pattern.findall(_text(cell.get("source", ""))):
                    figures.labels.add(label)
                    if "image/png" in glued.get(name, {}):
                        figures.number[label] = len(figures.number) + 1
        return figures


# --------------------------------------------------------------------------- Markdown and outputs as HTML
class Renderer:
    """The chapter's Markdown and cell outputs as HTML, the glued values pasted in (see the module docstring)."""

    def __init__(self, glued: Mapping[str, Mapping[str, Any]], figures: Figures, titles: Mapping[str, str],
                 own: frozenset[str] = frozenset()) -> None:
        self.glued, self.figures, self.titles, self.own = glued, figures, titles, own
        self.md = (MarkdownIt("commonmark", {"html": False}).enable("table")
                   .use(myst_role_plugin).use(myst_block_plugin).use(dollarmath_plugin))
        self._fence = self.md.renderer.rules["fence"]
        rules = {"myst_role": self._role, "fence": self._fenced, "myst_target": self._nothing,
                 "myst_line_comment": self._nothing, "link_open": self._nothing, "link_close": self._nothing,
                 "image": self._image, "math_inline": self._math, "math_inline_double": self._math,
                 "math_block": self._math_block, "math_block_label": self._math_block}
        for name, rule in rules.items():       # markdown-it binds a rule to its renderer: the first argument
            self.md.add_render_rule(name, lambda _renderer, *args, rule=rule: rule(*args))

    # ---------------------------------------------------------------- roles and blocks
    def _nothing(self, tokens, idx, options, env) -> str:
        return ""

    def _image(self, tokens, idx, options, env) -> str:
        return html.escape(tokens[idx].content)             # a picture of the source: its words, nothing loaded

    def _math(self, tokens, idx, options, env) -> str:
        return f'<span class="math">{html.escape(_unlatex(tokens[idx].content))}</span>'

    def _math_block(self, tokens, idx, options, env) -> str:
        return f'<p class="math">{html.escape(_unlatex(tokens[idx].content))}</p>\n'

    def _role(self, tokens, idx, options, env) -> str:
        name, content = tokens[idx].meta.get("name", ""), tokens[idx].content
        if name in ("glue:text", "glue"):
            key, _, spec = content.partition(":")
            return html.escape(self.value(key.strip(), spec.strip()))
        if name in ("numref", "ref", "doc"):
            text, target = _split_reference(content)
            return html.escape(self.page(target, text) if name == "doc" else self.reference(target, text))
        if name.startswith("cite"):
            return html.escape(f"({content.replace(',', ', ')})")
        if name == "math":
            return self._math([tokens[idx]], 0, options, env)
        return html.escape(content)

    def _fenced(self, tokens, idx, options, env) -> str:
        token = tokens[idx]
        directive, _, argument = token.info.strip().partition(" ")
        if not directive.startswith("{"):
            return self._fence(tokens, idx, options, env)        # a code block, as Markdown draws it
        options_, body = _directive_parts(token.content)
        if directive == "{glue:figure}":
            return self.figure(argument.strip(), options_.get("name", ""), body)
        return self.md.render(body)                              # another directive: its content

    # ---------------------------------------------------------------- the pasted parts
    def value(self, name: str, spec: str = "") -> str:
        """A glued value, formatted (:func:`format_value`); :data:`MISSING` when it was never glued."""
        record = self.glued.get(name)
        return MISSING if record is None or "text/plain" not in record else format_value(
            _text(record["text/plain"]), spec)

    def reference(self, label: str, text: str = "") -> str:
        """A ``{numref}``: "Figure 2", "this chapter", or the title of the book's chapter it names."""
        if label in self.figures.number:
            number = str(self.figures.number[label])
            return text.replace("%s", number).replace("{number}", number) if text else f"Figure {number}"
        if label in self.figures.labels:
            return "no figure yet"                               # a section with too little data drew none
        if label in self.own:
            return text or "this chapter"
        if label in self.titles:
            return f"the book's chapter “{self.titles[label]}”"
        return text or "another chapter of the book"

    def page(self, target: str, text: str = "") -> str:
        """A ``{doc}``: the book's page, by its title."""
        title = self.titles.get("/" + target.strip().lstrip("/"))
        return f"the book's page “{title}”" if title else (text or "the book")

    def figure(self, name: str, label: str, caption: str) -> str:
        """A ``{glue:figure}``: the glued PNG as a ``data:`` URI, numbered, with its caption (nothing when the
        section drew no figure)."""
        png = self.glued.get(name, {}).get("image/png")
        if png is None or label not in self.figures.number:
            return ""
        number = self.figures.number[label]
        return (f'<figure id="{html.escape(label)}"><img alt="Figure {number}" '
                f'src="data:image/png;base64,{_base64(png)}">'
                f"<figcaption><b>Figure {number}.</b> {self.md.renderInline(caption.strip())}</figcaption>"
                f"</figure>\n")

    def markdown(self, source: str) -> str:
        return self.md.render(source)

    def outputs(self, outputs: list[Mapping[str, Any]]) -> str:
        """What a code cell shows: printed lines, tables, pictures; never its code, warnings, glue records
        or widgets (they need a live kernel)."""
        parts = []
        for output in outputs:
            data = output.get("data", {})
            if output.get("output_type") == "stream":
                if output.get("name") == "stdout" and _text(output.get("text", "")).strip():
                    parts.append(f'<p class="printed">{_inline_code(_text(output["text"]).strip())}</p>')
            elif "scrapbook" in output.get("metadata", {}) or any(key.startswith(RECORD) for key in data):
                continue
            elif "image/png" in data:
                parts.append(f'<img class="output" alt="" src="data:image/png;base64,{_base64(data["image/png"])}">')
            elif "text/html" in data:
                parts.append(f'<div class="table">{_no_nan(_text(data["text/html"]))}</div>')
            elif "text/plain" in data and not any("widget" in key for key in data):
                parts.append(f'<pre class="output">{html.escape(_text(data["text/plain"]))}</pre>')
        return "\n".join(parts)


def _base64(data: Any) -> str:
    """A notebook's base64 image data (a string or a list of lines) as one string, for a ``data:`` URI."""
    return re.sub(r"[^A-Za-z0-9+/=]", "", _text(data))


def _split_reference(content: str) -> tuple[str, str]:
    """``"Figure %s <fig-10-pairs>"`` -> ``("Figure %s", "fig-10-pairs")``; ``"fig-10-pairs"`` -> ``("", ...)``."""
    found = re.fullmatch(r"(.*?)\s*<([^<>]+)>", content.strip(), flags=re.DOTALL)
    return (found.group(1).strip(), found.group(2).strip()) if found else ("", content.strip())


def _directive_parts(content: str) -> tuple[dict[str, str], str]:
    """A MyST directive's ``:option: value`` lines (at its top) and the rest, its body."""
    lines, options = content.splitlines(), {}
    while lines and re.match(r"^:[\w-]+:", lines[0]):
        key, _, value = lines.pop(0)[1:].partition(":")
        options[key.strip()] = value.strip()
    return options, "\n".join(lines).strip()


def _inline_code(text: str) -> str:
    """Printed text, escaped, its ```code``` spans as <code> and its lines kept."""
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))
    return escaped.replace("\n", "<br>")


def _no_nan(table: str) -> str:
    """A pandas table with its missing cells (NaN, None, <NA>) shown as :data:`MISSING`."""
    return re.sub(r">\s*(?:NaN|nan|None|&lt;NA&gt;)\s*<", f">{MISSING}<", table)


# --------------------------------------------------------------------------- the page
STYLE = """
body { font: 17px/1.55 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f; margin: 0; }
main { max-width: 52rem; margin: 0 auto; padding: 1.5rem 1.2rem 4rem; }
h1 { font-size: 2rem; margin-bottom: .3rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
.meta { color: #555; font-size: .95rem; }
figure { margin: 1.5rem 0; } figure img, img.output { max-width: 100%; height: auto; }
figcaption { color: #444; font-size: .95rem; }
.table { overflow-x: auto; margin: 1rem 0; }
table { border-collapse: collapse; font-size: .9rem; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #ddd; padding: .25rem .6rem; text-align: right; }
pre.output { background: #f6f6f6; padding: .6rem .8rem; overflow-x: auto; }
.printed { color: #333; }
code { font-size: .92em; background: #f2f2f2; padding: 0 .2em; }
@media print { main { max-width: none; } }
"""


def render_notebook(notebook: Mapping[str, Any], titles: Mapping[str, str], source: str = "") -> str:
    """An executed chapter as one standalone HTML page (``source``: what it was run on, for the header)."""
    glued = glue_records(notebook)
    own = frozenset(re.findall(r"^\(([\w:-]+)\)=", "\n".join(
        _text(c.get("source", "")) for c in notebook.get("cells", []) if c.get("cell_type") == "markdown"),
        re.MULTILINE))
    page = Renderer(glued, Figures.of(notebook, glued), titles, own)
    body = []
    for cell in notebook.get("cells", []):
        tags = set(cell.get("metadata", {}).get("tags", []))
        if tags & SKIP_CELL:
            continue
        if cell.get("cell_type") == "markdown":
            body.append(page.markdown(_text(cell.get("source", ""))))
        elif cell.get("cell_type") == "code" and not tags & SKIP_OUTPUT:
            body.append(page.outputs(cell.get("outputs", [])))
    title = re.search(r"<h1>(.*?)</h1>", "".join(body))
    written = datetime.now().strftime("%Y-%m-%d %H:%M")
    header = (f'<p class="meta">A report of the class file <b>{html.escape(source)}</b>, written {written} by '
              f"clpips: chapter 10 of the book, run on this class.</p>" if source else "")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{title.group(1) if title else 'Your class'}{f' — {html.escape(source)}' if source else ''}"
            f"</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n{header}\n"
            + "\n".join(part for part in body if part) + "\n</main>\n</body>\n</html>\n")


def _check_out(out_html: str | Path) -> Path:
    out = Path(out_html)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ReportError(f"--out {out_html}: must name an .html file (the report is one page)")
    if out.is_dir():
        raise ReportError(f"--out {out_html}: is a folder; give the report's file, e.g. {out / 'report.html'}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out.parent):
            pass
    except OSError as err:
        raise ReportError(f"--out {out_html}: cannot write in {out.parent} ({err.strerror or err})") from None
    return out


def run_chapter(class_csv: Path, out_dir: Path, parameters: Optional[Mapping[str, Any]] = None) -> Path:
    """Chapter 10 on ``class_csv`` (an absolute path: the chapter runs in ``out_dir``); its executed notebook.
    A cell that fails (a class file with no rankings yet, say) is a one-line :class:`ReportError`."""
    try:
        return nr.run_notebook(CHAPTER, {**(parameters or {}), "class_csv": str(class_csv)}, out_dir)
    except nr.NotebookExecutionError as err:
        reason = (str(err.evalue).strip().splitlines() or [err.ename])[0]
        raise ReportError(f"{class_csv}: chapter 10 could not run on it: {reason}") from None
    except nr.NotebookError as err:
        raise ReportError(str(err).splitlines()[0]) from None


def write_report(class_csv: str | Path, out_html: str | Path, *, parameters: Optional[Mapping[str, Any]] = None,
                 work_dir: Optional[str | Path] = None) -> Path:
    """Run chapter 10 on ``class_csv`` and write its report to ``out_html``: one HTML page, figures inside.

    ``parameters``: more of the chapter's parameters (e.g. ``{"n_boot": 2000}``); ``work_dir``: where the
    executed notebook is kept (default: a temporary folder, removed). Returns ``out_html``. Every problem
    (no such class file, an ``out_html`` that is not an ``.html`` file one can write, a class the chapter
    cannot read) is one :class:`ReportError` line.
    """
    csv = Path(class_csv).expanduser().resolve()
    if not csv.is_file():
        raise ReportError(f"{class_csv}: no such class file")
    out = _check_out(out_html)
    with tempfile.TemporaryDirectory(prefix="clpips-report-") as scratch:
        executed = run_chapter(csv, Path(work_dir or scratch).resolve(), parameters)
        notebook = json.loads(executed.read_text(encoding="utf-8"))
        page = render_notebook(notebook, book_titles(), source=csv.name)
    atomic.write_text(out, page)
    return out
