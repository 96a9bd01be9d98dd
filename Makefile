# Trainyard: `make demo` runs the whole flow on a tiny model; `make test` runs the test suite.
VENV ?= .venv
PY := $(VENV)/bin/python
export TRAINYARD_DEV ?= 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: bootstrap demo test test-fast lint bench chaos up down clean

bootstrap:
	@bash scripts/bootstrap.sh

demo: bootstrap
	$(VENV)/bin/trainyard demo $(DEMO_ARGS)

test: bootstrap
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: bootstrap
	$(PY) -m pytest -m "not slow and not browser and not compose" $(PYTEST_ARGS)

lint: bootstrap
	$(VENV)/bin/ruff check .

bench: bootstrap
	$(PY) -m bench.run_all $(BENCH_ARGS)

chaos: bootstrap
	TRAINYARD_CHAOS_ROUNDS=$${TRAINYARD_CHAOS_ROUNDS:-10} $(PY) -m pytest -m chaos $(PYTEST_ARGS)

up: bootstrap
	$(VENV)/bin/trainyard up

down:
	$(VENV)/bin/trainyard down

clean:
	rm -rf .state .demo .pytest_cache .ruff_cache

# The web UI's JavaScript (eslint; scripts/lint-js.sh skips with a message where npm is missing). Added to
# `lint` as a prerequisite so the lint recipe above stays as it is.
.PHONY: lint-js
lint: lint-js
lint-js:
	@bash scripts/lint-js.sh
