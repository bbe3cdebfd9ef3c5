# The two commands README.md gives: `make demo` (main job) and `make test` (test suite).
# Both set up the environment first (tools/setup_env.sh; idempotent, seconds when ready).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# Test worker processes (pytest-xdist), one test file per worker at a time; 0 runs in-process.
TEST_WORKERS ?= 2

.PHONY: env test demo

env:
	MMDIST_VENV=$(VENV) bash tools/setup_env.sh

test: env
	$(PY) -m pytest tests -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

demo: env
	$(PY) -m demo $(if $(TASK),--task $(TASK),)
