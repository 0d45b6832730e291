# campaignd: `make run` starts the daemon, `make test` runs the tests. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint soak bench demo clean test-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# The editable install's notice about flat layouts says nothing an operator can act on.
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

run: $(STAMP)
	$(BIN)/campaignd --config daemon.toml serve

demo: $(STAMP)
	$(BIN)/campaignd --config daemon.toml demo

# Everything the tests need beyond Python packages (browser, node clients) is installed here.
test-deps: $(STAMP)
	@if [ -x scripts/test-deps.sh ]; then scripts/test-deps.sh; fi

# Three pytest-xdist workers on the 2-core machines we and CI run on: the tests spend a
# good part of their time waiting (for daemons to start, a browser to paint, timeouts,
# send rates), which a third worker fills (docs/reliability.md has the figures).
# `make test WORKERS=0` runs in one process. Groups of tests that must not run side by
# side stay on one worker (tests/conftest.py, SERIAL_GROUPS).
WORKERS ?= 3

# The tests run with bytecode caching on (__pycache__, ignored by git) even where
# PYTHONDONTWRITEBYTECODE is set, as on our shared machine: there every daemon and CLI
# process the tests start compiled all of our modules again (import: 1.3 s of CPU, 0.95 s
# with bytecode) and every worker rewrote every test module's asserts (collection: 7 s of
# CPU, 3 s with the cache).
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest

test: test-deps
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(PYTEST) -q -m "not slow" -n $(WORKERS) --dist loadgroup

# The property tests draw half their examples in `make test` (tests/examples.py);
# `make soak` runs them with all of them too.
PROPERTY_TESTS = $(shell grep -l 'max_examples=examples' tests/test_*.py)

soak: test-deps
	$(PYTEST) -q -m slow
	TEST_EXAMPLES=full $(PYTEST) -q -m "not slow" -n $(WORKERS) --dist loadgroup $(PROPERTY_TESTS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

# Every row of SPEC section 4 (about 10 minutes); `make bench ROW=webhook` for one row.
bench: $(STAMP)
	scripts/test-deps.sh bench
	$(BIN)/python -m bench $(ROW)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
