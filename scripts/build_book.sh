#!/usr/bin/env bash
# Build the HTML book into _build/html: fetch the widget JavaScript, execute every notebook
# with papermill (clpips run --all), check that every chapter the toc lists was executed
# without error, then `jupyter-book build . -W --keep-going` from a clean state.
# Any failing cell, missing chapter or Sphinx warning makes this script fail.
#
#   scripts/build_book.sh [--no-run | --pdf] [-p NAME VALUE ...]
#     --no-run      render the notebooks already in out/notebooks (do not execute them)
#     --pdf         the whole book as one PDF, _build/pdf/clpips-compendium.pdf: the notebooks
#                   already in out/notebooks (not executed again) built as a single page
#                   (_build/singlehtml) and printed by headless Chromium (CHROMIUM, or the first
#                   of chromium, chromium-browser, google-chrome on the PATH; `make browser`)
#     -p NAME VALUE passed to `clpips run --all` (each notebook that declares NAME gets it)
#
# Quiet: one line per chapter, in the chapters' order, with its time (each chapter's own output
# is in out/notebooks/logs/), then one line per build. jupyter-book's output goes to
# _build/logs/BUILDER.log; its warnings and errors are printed, and its end when it failed
# without any. A failing cell prints its error and the end of its traceback.
#
# Environment: PYTHON (default .venv/bin/python), BOOK_OUT (default out/notebooks: it must
# match the paths in _toc.yml), BOOK_JOBS (notebooks run at once, default 2); CLPIPS_PROFILE
# and CLPIPS_DATA_MIRROR reach the notebooks.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
BOOK_OUT=${BOOK_OUT:-out/notebooks}
JUPYTER_BOOK="$(dirname "$PYTHON")/jupyter-book"
PDF=_build/pdf/clpips-compendium.pdf
RUN=1 MODE=html
if [[ "${1:-}" == "--no-run" ]]; then RUN=0; shift; fi
if [[ "${1:-}" == "--pdf" ]]; then RUN=0 MODE=pdf; shift; fi

scripts/fetch_widget_js.sh

if (( RUN )); then
    # two notebooks at once (BOOK_JOBS): most chapters keep one of the two cores busy
    echo "build_book: executing the chapters into $BOOK_OUT, ${BOOK_JOBS:-2} at a time (logs in $BOOK_OUT/logs)"
    start=$SECONDS
    "$PYTHON" -m clpips run --all --jobs "${BOOK_JOBS:-2}" --out "$BOOK_OUT" "$@"
    echo "build_book: every chapter executed in $((SECONDS - start)) s"
elif [[ $MODE == html && -f $BOOK_OUT/execution.json ]]; then
    # the status page lists what each chapter last ran with: a chapter re-run alone since the last
    # build (clpips run CH) changed that record, so the status page is made again (a few seconds)
    "$PYTHON" -m clpips run 99_status --out "$BOOK_OUT" >/dev/null
    echo "build_book: status page made again from $BOOK_OUT/execution.json"
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

# build BUILDER: a clean `jupyter-book build . -W --keep-going --all` (Sphinx only re-reports warnings of
# documents it re-reads) into _build/BUILDER. Its output, colours removed, goes to _build/logs/BUILDER.log;
# what it warned or failed about is printed, and the log's end when it failed without saying so.
build() {
    local builder=$1 log=_build/logs/$1.log start=$SECONDS status=0 said
    rm -rf "_build/$builder" _build/.doctrees _build/jupyter_execute
    mkdir -p _build/logs
    "$JUPYTER_BOOK" build . --builder "$builder" -W --keep-going --all 2>&1 \
        | sed -u 's/\x1b\[[0-9;]*[A-Za-z]//g' > "$log" || status=$?
    said=$(grep -E 'WARNING|ERROR|CRITICAL|Exception occurred|Extension error|build finished with problems' "$log" || true)
    [[ -z "$said" ]] || sed 's/^/  /' <<< "$said" >&2
    if (( status )); then
        [[ -n "$said" ]] || tail -n 20 "$log" | sed 's/^/  /' >&2
        echo "build_book: jupyter-book ($builder) failed; its whole output: $log" >&2
        exit 1
    fi
    echo "build_book: built _build/$builder in $((SECONDS - start)) s"
}

if [[ $MODE == pdf ]]; then
    build singlehtml
    # Sphinx writes the single page as the root document (book/intro.html) with its links relative
    # to _build/singlehtml: read from there, they resolve
    root=$("$PYTHON" -c 'import yaml; print(yaml.safe_load(open("_toc.yml"))["root"])')
    cp "_build/singlehtml/$root.html" _build/singlehtml/index.html
    chromium=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
    if [[ -z "$chromium" ]]; then
        echo "build_book: no Chromium to print the PDF with: \`make browser\` installs it, or set CHROMIUM" >&2
        exit 1
    fi
    profile=$(mktemp -d) part="${PDF%.pdf}.part.pdf" start=$SECONDS
    trap 'rm -rf "$profile"' EXIT
    mkdir -p "$(dirname "$PDF")"
    rm -f "$part"
    # virtual time: the page's scripts (MathJax, the saved widgets) finish before it is printed
    if ! "$chromium" --headless --no-sandbox --disable-gpu --disable-background-networking \
            --disable-component-update --disable-sync --no-first-run --disable-extensions \
            --user-data-dir="$profile" --no-pdf-header-footer --virtual-time-budget=60000 \
            --print-to-pdf="$part" "file://$PWD/_build/singlehtml/index.html" > _build/logs/chromium.log 2>&1 \
            || [[ ! -s "$part" ]]; then
        tail -n 20 _build/logs/chromium.log | sed 's/^/  /' >&2
        echo "build_book: Chromium did not print the book; its output: _build/logs/chromium.log" >&2
        exit 1
    fi
    mv "$part" "$PDF"
    pages=$("$PYTHON" -c 'import re, sys; print(len(re.findall(rb"/Type\s*/Page\b", open(sys.argv[1], "rb").read())))' "$PDF")
    echo "build_book: printed $PDF in $((SECONDS - start)) s: $pages pages, $(du -h "$PDF" | cut -f1)"
    exit 0
fi

build html

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
