# Trainyard: `make demo` runs the whole flow on a tiny model; `make test` runs the test suite.
VENV ?= .venv
PY := $(VENV)/bin/python
export TRAINYARD_DEV ?= 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: bootstrap demo test test-fast lint bench chaos gpu-check up down clean

bootstrap:
	@bash scripts/bootstrap.sh

demo: bootstrap
	$(VENV)/bin/trainyard demo $(DEMO_ARGS)

test: bootstrap
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: bootstrap
	$(PY) -m pytest -m "not slow and not browser and not compose" $(PYTEST_ARGS)

# ruff (incl. C901 complexity <= 12), the import contracts (pyproject [tool.importlinter]), the size limits.
lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-logo
	$(PY) scripts/size_check.py
	@if command -v duplicates >/dev/null; then echo "repeated blocks (target: at most 5 pairs in services/ + shared/):"; \
	  duplicates --repo services | head -1; duplicates --repo shared | head -1; fi

bench: bootstrap
	$(PY) -m bench.run_all $(BENCH_ARGS)

# On the GPU box (CUDA torch installed, see README "GPU install"): the real-shape lane on the GPU, then the
# real-shape benchmarks with --device cuda and bf16; the figures land in bench/RESULTS.md with the GPU's name.
gpu-check: bootstrap
	@$(PY) -c "import sys, torch; torch.cuda.is_available() or sys.exit('make gpu-check: no CUDA device visible to torch (install the CUDA build: README, GPU install)'); print('gpu-check on', torch.cuda.get_device_name())"
	TRAINYARD_DEVICE=cuda TRAINYARD_DTYPE=bfloat16 TRAINYARD_INFERENCE_DEVICE=cuda $(PY) -m pytest -m realshape -p no:cacheprovider $(PYTEST_ARGS)
	$(PY) -m bench.bench_realshape --device cuda --dtype bfloat16 $(BENCH_ARGS)
	@if [ -n "$(VLLM_URL)" ]; then $(PY) -m bench.bench_evalremote --url $(VLLM_URL) --base-model $(VLLM_MODEL) --device cuda; \
	else echo "gpu-check: set VLLM_URL (a vLLM server started with --enable-lora) and VLLM_MODEL to compare the evaluator's vLLM backend with its own engine"; fi

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
