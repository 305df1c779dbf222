# Two entry points: `make demo` (the embedded default run) and `make test`.
# Both create .venv and install adbench into it when it is missing.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.adbench-installed

.PHONY: demo test quick-tests slow-tests golden-best golden-generic lint docs venv clean-venv mutation

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	# torch/torchvision first, pinned to the releases available offline here
	$(PY) -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install --quiet -e ".[dev,elpv]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/adbench demo

# The pinned numbers (pytest -m golden) are checked twice, side by side on one thread each: with the
# instruction sets this CPU has, and with the most generic ones (no AVX in ATen, MKL or oneDNN), so a
# tolerance that holds on one CPU family only cannot pass (tests/golden/README.md).
GENERIC_ISA := ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=SSE4_2 ONEDNN_MAX_CPU_ISA=SSE41

# The suite in two pairs of side-by-side pytest runs, one thread each (2 cores): the quick tests beside the slow
# ones (end-to-end runs, subprocesses: each test has its own folders, none waits on a clock), then the pinned
# numbers twice. On 2 idle cores (AMD EPYC, 2026-12-07): 6 min 14 s, then 2 min 38 s (a clean clone).
test: $(STAMP)
	$(VENV)/bin/ruff check adbench tests benchmarks
	$(MAKE) --no-print-directory docs
	$(MAKE) --no-print-directory -j2 --output-sync=target quick-tests slow-tests
	$(MAKE) --no-print-directory -j2 --output-sync=target golden-best golden-generic

# The docs site (mkdocs.yml, docs/): its reference pages are generated from the code first (docs/hooks.py);
# --strict turns every warning (a broken link, a page outside the nav) into a failure.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

# Two slow tests that need no subprocess run after the quick ones, so that the two groups take about as long
# side by side (alone on 2 idle cores, 2026-12-08: quick 4 min 4 s, slow 5 min 57 s, these two 63 s of it).
BALANCED := tests/test_toy.py::test_toy_study_reproduces_the_papers_qualitative_result \
	tests/test_diffusion.py::test_compiled_training_step_trains_the_eager_net

quick-tests: $(STAMP)
	@echo "tests but the slow and the pinned ones, then two slow ones:"
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -m "not golden and not slow"
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -p no:cacheprovider $(BALANCED)

slow-tests: $(STAMP)
	@echo "slow tests (end-to-end runs, subprocesses):"
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -m "slow and not golden" -p no:cacheprovider \
	  $(foreach t,$(BALANCED),--deselect $(t))

golden-best: $(STAMP)
	@echo "pinned numbers, this CPU's instruction sets:"
	$(PY) -m pytest -q -m golden -p no:cacheprovider

golden-generic: $(STAMP)
	@echo "pinned numbers, generic instruction sets:"
	$(GENERIC_ISA) $(PY) -m pytest -q -m golden -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check adbench tests benchmarks

# Mutation testing, not part of CI (about 11 minutes on 2 cores): mutmut 3 over the code that decides a
# published number (metrics, diffusion, scorers; the engine's scoring, keys, split, seeds and feature
# cache), then the score per package and every survivor (benchmarks/mutation_report.py).
MUTATE := 'adbench.metrics.*' 'adbench.diffusion.*' 'adbench.scorers.*' 'adbench.engine.cache.*' \
	$(foreach f,seed_everything scorer_label split_train features model_path context_key build_noise_net \
	  train_category run_scorer eval_set cell_config cell_scores cell_metrics score_cell \
	  training_features feature_normaliser needs_model holdout_size,\
	  $(foreach m,context training scoring rows build,'adbench.engine.$(m).*$(f)__mutmut_*')) \
	$(foreach f,scoring hash sections training_key feature_setup noise_net_fields trained_on \
	  holdout with_train_categories model_name input_stats,'adbench.config.*$(f)__mutmut_*') 'adbench.hashing.*'

mutation: $(STAMP)
	$(PY) -m pip install --quiet "mutmut>=3.8,<4"
	OMP_NUM_THREADS=1 $(VENV)/bin/mutmut run --max-children 2 $(MUTATE)
	$(PY) benchmarks/mutation_report.py
