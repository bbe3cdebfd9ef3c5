# The two commands README.md gives: `make demo` (main job) and `make test` (test suite).
# Both set up the environment first (tools/setup_env.sh; idempotent, seconds when ready).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: env test demo

env:
	MMDIST_VENV=$(VENV) bash tools/setup_env.sh

test: env
	$(PY) -m pytest tests $(PYTEST_ARGS)

demo: env
	$(PY) -m demo $(if $(TASK),--task $(TASK),)
