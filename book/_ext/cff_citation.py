"""Sphinx extension: the book's citations rendered from ``CITATION.cff`` when the book is built.

A page writes ``cff-citation`` with a form and the works it wants::

    ```{cff-citation} bibtex
    :works: paper
    ```

Forms: ``bibtex`` (a code block), ``apa`` (a list; a reference's ``notes`` after it) and ``clone`` (the
commands that get the code: ``git clone`` of ``repository-code`` when the file names one). Works:
``paper`` (preferred-citation), ``software`` (this compendium), ``references`` (the datasets' papers),
space-separated. ``CITATION.cff`` is the one source (``clpips/book/citation.py`` renders it); a page that
uses it is re-read when it changes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from clpips.book import citation

FORMS = ("bibtex", "apa", "clone")
ROLES = ("paper", "software", "references")


class CffCitation(SphinxDirective):
    required_arguments = 1
    option_spec = {"works": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        path = Path(self.env.srcdir) / "CITATION.cff"
        self.env.note_dependency(str(path))
        form = self.arguments[0]
        roles = (self.options.get("works") or "paper").split()
        if form not in FORMS or not set(roles) <= set(ROLES):
            raise self.error(f"cff-citation: form {form!r} or works {roles} unknown (forms: {', '.join(FORMS)}; "
                             f"works: {', '.join(ROLES)})")
        try:
            cff = citation.load(path)
        except citation.CitationError as err:
            raise self.error(str(err)) from None
        chosen = [work for role in roles for work in citation.works(cff)[role]]
        if form == "bibtex":
            text = "\n\n".join(citation.bibtex(work) for work in chosen)
            return [nodes.literal_block(text, text, language="bibtex")]
        if form == "clone":
            where = cff.get("repository-code")
            text = (f"git clone {where} clpips && cd clpips" if where else
                    "git clone <the repository> clpips && cd clpips    # or unpack its archive and cd into it")
            text += "\nmake book    # .venv, every chapter executed, the HTML book in _build/html\nmake test"
            return [nodes.literal_block(text, text, language="bash")]
        markdown = "\n".join(f"- {citation.apa(work)}" + (f" ({work['notes']})" if work.get("notes") else "")
                             for work in chosen)
        holder = nodes.container()
        self.state.nested_parse(StringList(markdown.splitlines(), source=str(path)), self.content_offset, holder)
        return holder.children


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("cff-citation", CffCitation)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
