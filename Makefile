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

.PHONY: install dev federated demo test bench bench-quick models ncbi-transfer base-model base-model-tapt-ncbi clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e '.[default-model]'
	touch $@

# dev also installs Debian's chromium and chromium-driver (the browser test of `medtune serve`) when missing.
dev: $(VENV)/.dev-installed
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)

$(VENV)/.dev-installed: $(VENV)/.installed
	$(PIP) -e '.[default-model,dev,onnx,serve,ray,parquet,plots,retrieval,privacy]'
	touch $@

# Federated fine-tuning (medtune federate, Flower) in an environment of its own: Flower pins typer, rich and
# FastAPI below the main environment's versions and Ray below medtune[ray]'s (docs/federated.md).
FED_VENV := .venv-federated
FED_PIP := $(FED_VENV)/bin/pip install --disable-pip-version-check -q -c constraints.txt
federated: $(FED_VENV)/.installed

$(FED_VENV)/.installed: pyproject.toml constraints.txt
	test -x $(FED_VENV)/bin/python || $(PYTHON) -m venv $(FED_VENV)
	$(FED_PIP) torch==2.13.0
	$(FED_PIP) -e '.[default-model,federated,privacy]' 'pytest>=8' 'pytest-timeout>=2.3'
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

# Every model the shipped pipelines (pipelines/*.yaml) use, trained into models/ (git-ignored).
# Each is a file target: a model already trained is skipped. 1-2 hours on 2 cores.
MODELS := models/ade-ner models/ade-ner-s43 models/ade-ner-s44 models/ade-re models/ade-classification models/bc5cdr-ner models/bc5cdr-cid models/assertion \
	models/deid models/linker-disease models/linker-chemical
models: $(addsuffix /config.json,$(filter-out models/linker-%,$(MODELS))) \
	$(addsuffix /manifest.json,$(filter models/linker-%,$(MODELS)))

models/ade-ner/config.json: configs/ade-ner.yaml | install
	$(BIN)/medtune train $< --output $(@D) --overwrite
models/ade-ner-s%/config.json: configs/ade-ner.yaml | install   # the same config, another seed (ensemble)
	$(BIN)/medtune train $< --output $(@D) --overwrite --training.seed $*
models/ade-re/config.json: configs/ade-re.yaml models/ade-ner/config.json | install
	$(BIN)/medtune train $< --output $(@D) --overwrite
models/ade-classification/config.json: configs/ade-classification.yaml | install
	$(BIN)/medtune train $< --output $(@D) --overwrite
models/bc5cdr-ner/config.json: configs/bc5cdr.yaml | install
	$(BIN)/medtune train $< --output $(@D) --overwrite
models/bc5cdr-cid/config.json: configs/bc5cdr-cid.yaml | install
	$(BIN)/medtune train $< --output $(@D) --overwrite
models/assertion/config.json: configs/assertion.yaml | install
	$(BIN)/medtune train $< --output $(@D) --overwrite
# the PHI model of pipelines/deid.yaml, with its recall-first decoding bias chosen on dev
models/deid/config.json: configs/deid.yaml | install
	$(BIN)/medtune train $< --output $(@D) --overwrite
	$(BIN)/medtune deid-tune $(@D) --data physionet-deid --split dev --target-recall 0.98
models/linker-%/manifest.json: configs/linker-%.yaml | install
	$(BIN)/medtune link build $< --output $(@D) --overwrite

# NCBI-disease by intermediate-task transfer (configs/ncbi-disease-transfer.yaml): the default model is
# fine-tuned on BC5CDR-disease first, then on NCBI-disease; about 40 min on 2 cores.
ncbi-transfer: models/ncbi-disease-transfer/config.json

models/bc5cdr-disease/config.json: configs/bc5cdr-disease.yaml | install
	$(BIN)/medtune train $< --output $(@D) --overwrite
models/ncbi-disease-transfer/config.json: configs/ncbi-disease-transfer.yaml models/bc5cdr-disease/config.json | install
	$(BIN)/medtune train $< --output $(@D) --overwrite
	$(BIN)/medtune evaluate $(@D) --data ncbi-disease --split test --output $(@D)/test_results.json

test: dev federated
	$(BIN)/python -m pytest -q --ignore=tests/test_federated_flower.py
	$(FED_VENV)/bin/python -m pytest -q tests/test_federated_flower.py

# The medical base model (docs/pretraining.md): masked-LM pretraining of MiniLM on the shared corpora's
# training text, test splits excluded. Resumable: each run stops at the config's time budget with a
# checkpoint beside the output, and running it again continues; a finished model is left as it is.
base-model: install
	$(BIN)/medtune pretrain configs/pretrain-med.yaml --resume

base-model-tapt-ncbi: install
	$(BIN)/medtune pretrain configs/pretrain-tapt-ncbi.yaml --resume

clean:
	rm -rf $(VENV) $(FED_VENV) build *.egg-info .pytest_cache
