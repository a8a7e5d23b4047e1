# Quick start: `make demo` (set-up + the main job on the embedded default data) and
# `make test` (set-up + all tests). Both create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is installed first: a bare `torch` requirement would pull a multi-GB CUDA build.
# Override for another build, e.g. `make test TORCH_SPEC='torch==2.9.1'`.
TORCH_SPEC ?= torch==2.13.0
DEMO_DIR ?= demo
BENCH_ARGS ?= --quick

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[dev]'
	# musicnn's weights for `featurize --frontend musicnn-*` (its own code and pins are not used).
	$(PY) -m pip install -q --no-deps musicnn==0.1.0
	touch $@

demo: setup
	$(PY) -m artistsim demo $(DEMO_DIR)

test: setup
	$(PY) -m pytest tests

bench: setup
	$(PY) -m benchmarks.run_all $(BENCH_ARGS)

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
