# Every install step lives here: CI runs `make test` on a fresh clone.
# Tests run in two pytest-xdist workers, one test file per worker at a time (module fixtures built once).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONSTRAINTS := constraints.txt

.PHONY: install demo lint test bench bench-precision bench-export clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# pyproject.toml holds the ranges; constraints.txt pins the exact versions CI installs within them.
$(STAMP): pyproject.toml $(CONSTRAINTS) | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e ".[test,tfds,deploy]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/kerascv-tl demo

lint: install
	$(VENV)/bin/ruff check kerascv_tl tests benchmarks
	$(VENV)/bin/ruff format --check kerascv_tl tests benchmarks

test: install lint
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=25

# Every figure the README quotes: JSON in benchmarks/results/, the Markdown table RESULTS.md, then a check that each
# quoted figure agrees with its new measurement (benchmarks/quoted_figures.py; fails loudly). The real-data rows run
# the recipes exactly as committed: about 50 minutes on 2 cores.
BENCHMARKS := "input_pipeline.py" "input_pipeline.py --cache" profile_input_pipeline.py framework_overhead.py cached_features.py serving.py \
	distribute.py real_data.py imbalance.py cv_compare.py
bench: install
	set -e; for b in $(BENCHMARKS); do echo "== benchmarks/$$b $$(date +%T)"; $(PY) benchmarks/$$b; done; date +%T
	$(PY) benchmarks/report.py
	$(PY) benchmarks/quoted_figures.py

# Float32 vs mixed_bfloat16, XLA off vs on, for two networks (about 4 minutes; behind `precision` and `jit_compile: auto`).
bench-precision: install
	$(PY) benchmarks/precision_jit.py
	$(PY) benchmarks/report.py

# Every export format per task: size, export time, batch-1 latency, --verify agreement (about 15 minutes once the
# three runs it exports exist in runs/bench_export_formats/; it trains missing ones first).
bench-export: install
	$(PY) benchmarks/export_formats.py
	$(PY) benchmarks/report.py

clean:
	rm -rf runs data build *.egg-info
