# The README's commands. Each one creates .venv and installs what it needs on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-test

.PHONY: install test lint demo record bench standin clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

## make test: the whole suite offline (cassettes + stand-in server), then ruff and mypy.
test: $(STAMP)
	$(PY) -m pytest
	$(MAKE) --no-print-directory lint

lint: $(STAMP)
	$(PY) -m ruff check src tests bench examples
	$(PY) -m mypy

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

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info
