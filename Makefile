# Two entry points: `make demo` (the embedded default run) and `make test`.
# Both create .venv and install adbench into it when it is missing.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.adbench-installed

.PHONY: demo test lint venv clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	# torch/torchvision first, pinned to the releases available offline here
	$(PY) -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install --quiet -e ".[dev,elpv]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/adbench demo

test: $(STAMP)
	$(VENV)/bin/ruff check adbench tests benchmarks
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check adbench tests benchmarks
