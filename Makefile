# Developer shortcuts; README shows the two commands that matter.
PY := .venv/bin/python

.PHONY: setup test test-fast lint format smoke

setup:
	bash scripts/setup.sh

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

lint: setup
	$(PY) -m ruff check .

format: setup
	$(PY) -m ruff format .

smoke: setup
	$(PY) -m rlsys.run +exp=smoke
