# The two entry points of README: `make bench` (embedded default, no servers) and `make test` (everything).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: bench test test-pythons lint typecheck services services-stop clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

bench: $(VENV)/.installed
	$(VENV)/bin/tierstore bench --quick --json bench-quick.json

services:
	scripts/services start > /dev/null

services-stop:
	scripts/services stop

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks examples

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

test: $(VENV)/.installed services lint typecheck
	eval "$$(scripts/services env)" && $(PY) -m pytest -q
	$(MAKE) --no-print-directory test-pythons

# The unit suite on the other supported Pythons (3.12, 3.13), each in its own .venv-<minor>.
test-pythons:
	scripts/test-pythons

clean:
	rm -rf $(VENV) .venv-3.* .pytest_cache .mypy_cache .ruff_cache bench-quick.json
