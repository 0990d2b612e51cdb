"""Sphinx extension for the CLPIPS book: every page works offline, without JS errors.

* sphinx-thebe (always loaded by Jupyter Book 1.x) adds an inline script declaring
  ``const THEBE_JS_URL = "https://unpkg.com/..."``; with Sphinx 7.4 it appears twice on every
  page, a ``SyntaxError`` in the reader's browser. The book has no live-code ("launch")
  buttons, so thebe's inline configuration and loader are dropped from every page, and with
  them the last reference to a CDN.
* Any other script that ends up twice on a page is kept once.

MathJax and the widget scripts are pointed at local copies in ``_config.yml``
(``mathjax_path``, ``nb_ipywidgets_js``).
"""
from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx


def _is_thebe(script: Any) -> bool:
    body = str(getattr(script, "attributes", {}).get("body", ""))
    return "THEBE_JS_URL" in body or str(script).endswith("sphinx-thebe.js")


def _key(script: Any) -> tuple:
    attributes = getattr(script, "attributes", {})
    return (str(script), tuple(sorted((k, str(v)) for k, v in attributes.items())))


def clean_scripts(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any],
                  doctree: Any) -> None:
    """Drop thebe's scripts and duplicated scripts from one page's ``script_files``."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    kept = []
    for script in scripts:
        key = _key(script)
        if _is_thebe(script) or key in seen:
            continue
        seen.add(key)
        kept.append(script)
    context["script_files"] = kept


def setup(app: Sphinx) -> dict[str, Any]:
    # run after the extensions that add per-page scripts (myst-nb's widgets run at 500)
    app.connect("html-page-context", clean_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
