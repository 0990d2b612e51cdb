#!/usr/bin/env bash
# Build the HTML book into _build/html: fetch the widget JavaScript, execute every notebook
# with papermill (clpips run --all), check that every chapter the toc lists was executed
# without error, then `jupyter-book build . -W --keep-going` from a clean state.
# Any failing cell, missing chapter or Sphinx warning makes this script fail.
#
#   scripts/build_book.sh [--no-run] [-p NAME VALUE ...]
#     --no-run      render the notebooks already in out/notebooks (do not execute them)
#     -p NAME VALUE passed to `clpips run --all` (each notebook that declares NAME gets it)
#
# Environment: PYTHON (default .venv/bin/python), BOOK_OUT (default out/notebooks: it must
# match the paths in _toc.yml), BOOK_JOBS (notebooks run at once, default 2); CLPIPS_PROFILE
# and CLPIPS_DATA_MIRROR reach the notebooks.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
BOOK_OUT=${BOOK_OUT:-out/notebooks}
JUPYTER_BOOK="$(dirname "$PYTHON")/jupyter-book"
RUN=1
if [[ "${1:-}" == "--no-run" ]]; then RUN=0; shift; fi

scripts/fetch_widget_js.sh

if (( RUN )); then
    echo "build_book: executing the notebooks into $BOOK_OUT"
    # two notebooks at once (BOOK_JOBS): most chapters keep one of the two cores busy
    "$PYTHON" -m clpips run --all --jobs "${BOOK_JOBS:-2}" --out "$BOOK_OUT" "$@"
fi

# Every chapter in the toc must exist, and must not come from a failed run.
"$PYTHON" - "$BOOK_OUT" <<'PY'
import json, sys
from pathlib import Path
import yaml

out = Path(sys.argv[1])
def files(node):
    if isinstance(node, dict):
        if "file" in node:
            yield node["file"]
        for value in node.values():
            yield from files(value)
    elif isinstance(node, list):
        for value in node:
            yield from files(value)

toc = yaml.safe_load(Path("_toc.yml").read_text())
record = json.loads((out / "execution.json").read_text()) if (out / "execution.json").exists() else {}
problems = []
for file in [toc["root"], *files(toc.get("parts", []))]:
    if any(Path(file + ext).exists() for ext in (".md", ".ipynb")):
        name = Path(file).name
        status = record.get("notebooks", {}).get(name, {}).get("status")
        if file.startswith("out/") and status == "failed":
            problems.append(f"{file}.ipynb: its last run failed (see the error in the notebook)")
        continue
    if file.startswith("out/notebooks/"):
        name = Path(file).name
        source = Path("notebooks") / f"{name}.py"
        hint = (f"run `clpips run {name}` or `make book`" if source.exists()
                else f"its source {source} does not exist yet")
        problems.append(f"{file}.ipynb is missing: {hint}")
    else:
        problems.append(f"{file}.md is missing")
if problems:
    sys.exit("build_book: cannot build, chapters listed in _toc.yml are not ready:\n  "
             + "\n  ".join(problems))
PY

# A clean build: Sphinx only re-reports warnings of documents it re-reads.
rm -rf _build/html _build/.doctrees _build/jupyter_execute
"$JUPYTER_BOOK" build . -W --keep-going --all

# Offline check: no page may load a script or stylesheet from another host.
"$PYTHON" - <<'PY'
import re, sys
from pathlib import Path
pattern = re.compile(r'<(?:script[^>]*\ssrc|link[^>]*\shref)="((?:https?:)?//[^"]+)"[^>]*>', re.I)
bad = []
for page in sorted(Path("_build/html").rglob("*.html")):
    for tag in pattern.finditer(page.read_text(encoding="utf-8", errors="replace")):
        if tag.group(0).lower().startswith("<link") and not re.search(
                r'rel="(?:stylesheet|preload|modulepreload|prefetch)"', tag.group(0), re.I):
            continue
        bad.append(f"{page}: {tag.group(1)}")
if bad:
    sys.exit("build_book: pages load resources from other hosts (the book must work offline):\n  "
             + "\n  ".join(bad))
PY
echo "build_book: the book is in _build/html/index.html"
