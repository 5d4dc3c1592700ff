# The two commands of the README: `make book` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.colorlib-installed
# test runs keep their caches (smoke checkpoints, scans) apart from the book's
TEST_CACHE ?= $(CURDIR)/.cache/test

.PHONY: book test unit notebooks lint format bench clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade-strategy only-if-needed -r requirements.txt
	$(PY) -m pip install --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (colorlib)"
	touch $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going
	@echo "open _build/html/index.html"

test: $(STAMP) lint unit notebooks

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

unit: $(STAMP)
	COLORLIB_CACHE=$(TEST_CACHE) COLORLIB_PROFILE=smoke $(PY) -m pytest -n 2 tests

notebooks: $(STAMP)
	COLORLIB_CACHE=$(TEST_CACHE) COLORLIB_PROFILE=smoke $(PY) -m pytest --nbval-lax -p no:randomly book

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)
	$(PY) benchmarks/data_bench.py
	$(PY) benchmarks/train_bench.py
	$(PY) benchmarks/ddcolor_bench.py

clean:
	rm -rf _build .cache/test .pytest_cache .ruff_cache
