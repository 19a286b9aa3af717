# Every install step lives here: CI runs `make test` on a fresh clone.
# Tests run in two pytest-xdist workers, one test file per worker at a time (module fixtures built once).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/kerascv-tl demo

test: install
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=25

clean:
	rm -rf runs data build *.egg-info
