"""Sphinx extension: the single-page build (``make pdf``) shows the chapters' saved widgets.

myst-nb adds a notebook's widget state and the widget scripts (``nb_ipywidgets_js``) to that notebook's
own page. The single-page build has one page, the root document's, so no chapter's widgets would
render there, and the printed book would lose them. Here the single page gets every document's
state (one ``<script>`` each: the widget manager renders each state's views) and the scripts once.
Other builders are left alone.
"""
from __future__ import annotations

from typing import Any

from myst_nb.sphinx_ import NbMetadataCollector
from sphinx.application import Sphinx

#: myst-nb's key for a document's widget state (its other keys, the scripts, are the same for every page)
STATE_KEY = "ipywidgets_state"


def add_every_documents_widgets(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any],
                                doctree: Any) -> None:
    if app.builder.name != "singlehtml" or pagename != app.config.root_doc:
        return
    scripts: dict[str, tuple[Any, dict[str, str]]] = {}
    for docname in app.env.all_docs:
        if docname == pagename:                      # myst-nb added the page's own
            continue
        for key, (path, kwargs) in NbMetadataCollector.get_js_files(app.env, docname).items():
            scripts[f"{key}:{docname}" if key == STATE_KEY else key] = (path, kwargs)
    for path, kwargs in scripts.values():
        app.add_js_file(path, **kwargs)


def setup(app: Sphinx) -> dict[str, Any]:
    # before offline_book's clean-up of each page's scripts (priority 900), after myst-nb's own (500)
    app.connect("html-page-context", add_every_documents_widgets, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
