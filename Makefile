# Two entry points: `make demo` (the embedded default run) and `make test`.
# Both create .venv and install adbench into it when it is missing.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.adbench-installed

.PHONY: demo test lint venv clean-venv mutation

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

# Mutation testing, not part of CI (about 11 minutes on 2 cores): mutmut 3 over the code that decides a
# published number (metrics, diffusion, scorers; the engine's scoring, keys, split, seeds and feature
# cache), then the score per package and every survivor (benchmarks/mutation_report.py).
MUTATE := 'adbench.metrics.*' 'adbench.diffusion.*' 'adbench.scorers.*' 'adbench.engine.cache.*' \
	$(foreach f,seed_everything scorer_label split_train features model_path context_key build_noise_net \
	  train_category run_scorer eval_set cell_config cell_scores cell_metrics score_cell \
	  training_features feature_normaliser needs_model holdout_size,\
	  'adbench.engine.run.*$(f)__mutmut_*') \
	$(foreach f,scoring hash sections training_key feature_setup file_fingerprint noise_net_fields trained_on \
	  holdout with_train_categories model_name input_stats,'adbench.config.*$(f)__mutmut_*') 'adbench.hashing.*'

mutation: $(STAMP)
	$(PY) -m pip install --quiet "mutmut>=3.8,<4"
	OMP_NUM_THREADS=1 $(VENV)/bin/mutmut run --max-children 2 $(MUTATE)
	$(PY) benchmarks/mutation_report.py
