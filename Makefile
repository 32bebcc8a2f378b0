# The README's commands. Each one creates the virtual environments it needs and installs what it
# needs on a fresh machine (PyPI reachable); nothing has to be installed by hand first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-test
UV := $(VENV)/bin/uv
# Offline wheels of the package's dependencies, for tests/integration/test_wheel.py's fresh venvs.
WHEELHOUSE := $(VENV)/wheelhouse
# make test-pythons: the unit tests under each of these (uv finds them; PYENV_ROOT is searched first).
PYTHON_VERSIONS ?= 3.10 3.11 3.12 3.13
PYENV_ROOT ?= $(HOME)/.pyenv
# make test-lowest: the lowest versions pyproject.toml allows, on the oldest supported Python.
LOWEST_PYTHON ?= 3.10
# Extra pytest arguments for test, test-lowest and test-pythons (pytest's exit code 5, no test
# collected, fails them like any other non-zero code).
PYTEST_ARGS ?=

# uv must not download interpreters (no network but PyPI) and uses the machine's own.
export UV_PYTHON_DOWNLOADS := never

.PHONY: install test lint demo record bench bench-local standin wheelhouse test-lowest test-pythons docs \
	docs-serve dist clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

$(VENV)/.installed-uv: $(STAMP)
	$(PY) -m pip install --quiet "uv>=0.5"
	touch $@

$(VENV)/.wheelhouse: pyproject.toml $(STAMP)
	rm -rf $(WHEELHOUSE)
	$(PY) -m pip wheel --quiet --wheel-dir $(WHEELHOUSE) ".[langchain,llama-index]"
	rm -f $(WHEELHOUSE)/aimlapi_bge-*.whl
	touch $@

## make wheelhouse: the dependencies' wheels, so test_wheel.py installs the built wheel offline.
wheelhouse: $(VENV)/.wheelhouse

## make test: the whole suite offline (cassettes + stand-in server; the built wheel in fresh venvs),
## then ruff and mypy.
test: $(STAMP) $(VENV)/.wheelhouse
	AIMLAPI_BGE_WHEELHOUSE=$(abspath $(WHEELHOUSE)) $(PY) -m pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory lint

lint: $(STAMP)
	$(PY) -m ruff check src tests bench examples docs
	$(PY) -m mypy

## make test-lowest: the suite against the lowest versions of every direct dependency that
## pyproject.toml allows (uv --resolution lowest-direct), in .venv-lowest. Together, the test tools
## lift some floors (pydantic, orjson, tqdm, langchain-core) above the package's own, so the core's
## tests also run with the core alone, and the LangChain adapter's with only its extra added.
LOWEST_RUNS := core:tests/integration/test_core_batching.py,tests/integration/test_faults.py \
	langchain:tests/integration/test_langchain_adapter.py
test-lowest: $(VENV)/.installed-uv
	rm -rf .venv-lowest .venvs/lowest-*
	$(UV) venv --quiet --seed --python "$$(.ci/find-python $(LOWEST_PYTHON))" .venv-lowest
	$(UV) pip install --quiet --python .venv-lowest/bin/python --resolution lowest-direct -e ".[test]"
	$(UV) pip list --python .venv-lowest/bin/python > .venv-lowest/versions.txt
	.venv-lowest/bin/python -m pytest -p no:randomly -q --ignore=tests/integration/test_wheel.py $(PYTEST_ARGS)
	@set -e; for run in $(LOWEST_RUNS); do \
		extra="$${run%%:*}"; tests="$$(echo "$${run#*:}" | tr , ' ')"; \
		if [ "$$extra" = core ]; then spec=".[test-core]"; else spec=".[$$extra,test-core]"; fi; \
		echo "== lowest versions, $$spec: $$tests"; \
		$(UV) venv --quiet --python "$$(.ci/find-python $(LOWEST_PYTHON))" .venvs/lowest-$$extra; \
		$(UV) pip install --quiet --python .venvs/lowest-$$extra/bin/python --resolution lowest-direct -e "$$spec"; \
		$(UV) pip list --python .venvs/lowest-$$extra/bin/python > .venvs/lowest-$$extra/versions.txt; \
		.venvs/lowest-$$extra/bin/python -m pytest -p no:randomly -q $$tests $(PYTEST_ARGS); \
	done

## make test-pythons: tests/unit under every Python in PYTHON_VERSIONS, one venv each (.venvs/).
test-pythons: $(VENV)/.installed-uv
	@set -e; for version in $(PYTHON_VERSIONS); do \
		interpreter="$$(.ci/find-python $$version)" || exit 1; \
		if [ -z "$$interpreter" ]; then continue; fi; \
		echo "== Python $$version ($$interpreter)"; \
		rm -rf .venvs/py$$version; \
		$(UV) venv --quiet --seed --python "$$interpreter" .venvs/py$$version; \
		$(UV) pip install --quiet --python .venvs/py$$version/bin/python -e ".[test]"; \
		.venvs/py$$version/bin/python -m pytest tests/unit -p no:randomly -q $(PYTEST_ARGS); \
	done

## make docs: the documentation site (MkDocs Material, API reference from docstrings) into site/.
$(VENV)/.installed-docs: pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e ".[docs]"
	touch $@

docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

docs-serve: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

## make dist: the wheel and the sdist in dist/, checked with twine check --strict.
$(VENV)/.installed-release: pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e ".[release]"
	touch $@

dist: $(VENV)/.installed-release
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(PY) -m twine check --strict dist/*

## make demo: a small RAG run over a Chroma store in .demo/, queried by LangChain and LlamaIndex (AI/ML
## API when AIMLAPI_API_KEY is set, else the local model). Re-runs embed only new or changed passages.
## DEMO_ARGS="--indexer langchain", "--rebuild", "--chroma-url http://127.0.0.1:8000" (see --help).
$(VENV)/.installed-demo: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[chroma,local]"
	touch $@

demo: $(VENV)/.installed-demo
	ANONYMIZED_TELEMETRY=False $(PY) examples/rag_demo.py $(DEMO_ARGS)

## make record: re-record cassettes/ against $$AIMLAPI_BASE_URL with $$AIMLAPI_API_KEY (the live
## API, or the stand-in: make standin), then scan them for credentials.
## RECORD_ARGS="-k retrieval" re-records only the cassettes the selected tests use.
record: $(STAMP)
	$(PY) -m pytest tests/integration/test_cassettes.py --record-mode=rewrite --force-enable-socket -p no:randomly $(RECORD_ARGS)
	$(PY) -m pytest tests/integration/test_cassette_hygiene.py -k no_cassette_holds_a_credential -p no:randomly

## make bench: throughput side by side (see bench/throughput.py --help); BENCH_ARGS=--quick.
$(VENV)/.installed-bench: pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	touch $@

bench: $(VENV)/.installed-bench
	$(PY) bench/throughput.py $(BENCH_ARGS)

## make standin: the stand-in AI/ML API on 127.0.0.1 (test support, not shipped): STANDIN_ARGS="--port 8765".
standin: $(STAMP)
	PYTHONPATH=tests $(PY) -m support.standin $(STANDIN_ARGS)

## make bench-local: the in-process model against HuggingFaceEmbeddings, fastembed and raw ONNX
## Runtime on a random-weight bge-base model built offline (bench/local.py, ~13-15 min here);
## BENCH_LOCAL_ARGS=--quick for ~4 minutes. Installs the bench-local extra (torch, CPU) itself.
$(VENV)/.installed-bench-local: pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench-local]"
	touch $@

bench-local: $(VENV)/.installed-bench-local
	HF_HUB_OFFLINE=1 $(PY) bench/local.py $(BENCH_LOCAL_ARGS)

clean:
	rm -rf $(VENV) .venv-lowest .venvs .pytest_cache .mypy_cache .ruff_cache build dist site \
		src/*.egg-info
