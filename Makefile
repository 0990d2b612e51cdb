# The two commands of the README:
#   make book   - set up (if needed), execute every notebook and build the HTML book
#   make test   - set up (if needed) and run the test suite
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

.PHONY: setup book test bench lock example clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

example: $(STAMP)
	$(BIN)/clpips score $(CLPIPS_SHARED)/fixtures/lpips-reference/ref_dir/I03.bmp \
	    $(CLPIPS_SHARED)/fixtures/lpips-reference/dist_dir/I03.bmp

book: example

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

lock: $(STAMP)
	{ echo '# Lock file: the exact versions a fresh install resolves (pip install -c constraints.txt).'; \
	  echo '# Regenerate with `make lock` after changing dependencies in pyproject.toml.'; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^clpips'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf _build out
