# Everything installs into a virtual environment in .venv (created on first use).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast lint bench clean-results

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# A first end-to-end job: find the data, show the report's model1, train it for one epoch on
# 5% of the data, run a 3-trial quick search, and print the leaderboard.
demo: $(STAMP)
	$(BIN)/fmnist-search data
	$(BIN)/fmnist-search describe model1
	$(BIN)/fmnist-search baseline model1 --epochs 1 --subset 0.05
	$(BIN)/fmnist-search run --space cnn --search quick --trials 3 --project demo
	$(BIN)/fmnist-search leaderboard demo

# Two test processes (pytest-xdist): most tests wait on TensorFlow start-ups in subprocesses, so
# two halve the wall time on two cores. Tests marked serial assert how fast something happens
# (a refusal in under a second, orphans stopping within 2 s), which a neighbour's load would
# distort: they run alone afterwards.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) -m "not serial" --durations=15
	$(BIN)/python -m pytest -q -m serial

# The quick loop while editing: the tests not marked slow, no real data (1 min 40 s here).
test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m "not slow and not realdata"

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py
