# Two entry points, both self-contained on a fresh machine:
#   make demo  -> create .venv, run the whole Snakemake DAG on the embedded demo dataset
#   make test  -> create .venv, run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all
# Snakemake's and DVC's shell commands call `scenesynth` and `snakemake` from the venv.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo test test-fast setup clean-demo bench

setup: $(STAMP)

# The stamp depends on the dependency files, so editing them re-installs.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --config overlay=config/demo.yaml
	@$(BIN)/scenesynth summary --params params.yaml --overlay config/demo.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -ra

test-fast: $(STAMP)
	$(BIN)/python -m pytest -ra -m "not e2e"

bench: $(STAMP)
	$(BIN)/python benchmarks/attention.py
	$(BIN)/python benchmarks/train_step.py
	$(BIN)/python benchmarks/data_stage.py
	$(BIN)/python benchmarks/generate.py --vocoder-frames 64,256 --offline

# Removes what a run derived, never the downloads (data/downloads) or fetched models (data/pretrained).
clean-demo:
	rm -rf data/raw data/audio48k data/mels data/text runs outputs metrics logs benchmarks/logs mlflow.db mlartifacts .snakemake
