# Two entry points (README): `make run` and `make test`. Both create the project-local virtual
# environment .venv from requirements.txt on first use (and again when the pins change).
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed-stamp
# Tools from the venv (stages find it themselves: stages/python, docs/stack.md); no telemetry.
ENV := PATH="$(BIN):$$PATH" DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=1

.PHONY: install run full show study test lint format clean-checkpoints

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@echo "make install: $(VENV) with the pinned packages of requirements.txt (about 5 minutes on a fresh machine; pip lists each package)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --progress-bar off -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	$(ENV) $(BIN)/python -m pipelines.workspace --as 'make run' $(BIN)/dvc repro

# The full seven-pipeline comparison: params.yaml's `pipelines` widened by `dvc exp run -S`.
full: $(STAMP)
	$(ENV) $(BIN)/python -m scripts.full_comparison

# The study (docs/study/): the rows docs/study/plan.yaml lists and docs/study/rows/ lacks, two at a
# time at one torch thread each, then the report. On a GPU: make study STUDY_ARGS="--jobs 1
# --profile params-gpu.yaml". Needs npm and rsvg-convert (Debian: librsvg2-bin) for the data set.
STUDY_ARGS ?= --jobs 2
study: $(STAMP)
	$(ENV) OMP_NUM_THREADS=1 $(BIN)/python -m pipelines.study run $(STUDY_ARGS)

# `dvc exp show` has a column for every metric and every param (too wide for a terminal, so rich
# folds them all to "…"): the headline scores and the training length of each experiment.
HEADLINE := Experiment|Created|^kid_el0$$|^fd_el0_[0-9]+$$|^swd_mean$$|^precision$$|^recall$$|^train.total_kimg$$
show: $(STAMP)
	$(ENV) $(BIN)/dvc exp show --no-pager --drop '.*' --keep '$(HEADLINE)'

# The README's test command (CI's .ci/run): lint and format check, then every test, `slow` included,
# on two xdist workers of one torch thread each (tests that share the Prefect server stay on one).
test: lint
	$(ENV) OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m "" -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean-checkpoints:
	rm -rf checkpoints
