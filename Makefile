# The README's commands. Each one creates .venv and installs what it needs on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-test

.PHONY: install test lint demo record bench bench-local clean

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

## make demo: a small RAG run (AI/ML API when AIMLAPI_API_KEY is set, else the local model).
demo: $(STAMP)
	$(PY) examples/rag_demo.py

## make record: re-record cassettes/ against $$AIMLAPI_BASE_URL with $$AIMLAPI_API_KEY (the live
## API, or the stand-in: python -m aimlapi_bge.standin), then scan them for credentials.
## RECORD_ARGS="-k retrieval" re-records only the cassettes the selected tests use.
record: $(STAMP)
	$(PY) -m pytest tests/test_cassettes.py --record-mode=rewrite --force-enable-socket -p no:randomly $(RECORD_ARGS)
	$(PY) -m pytest tests/test_cassette_hygiene.py -k no_cassette_holds_a_credential -p no:randomly

## make bench: throughput side by side (see bench/throughput.py --help); BENCH_ARGS=--quick.
$(VENV)/.installed-bench: pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	touch $@

bench: $(VENV)/.installed-bench
	$(PY) bench/throughput.py $(BENCH_ARGS)

## make bench-local: the in-process model against HuggingFaceEmbeddings, fastembed and raw ONNX
## Runtime on a random-weight bge-base model built offline (bench/local.py, ~15-20 min here);
## BENCH_LOCAL_ARGS=--quick for ~2 minutes. Installs the bench-local extra (torch, CPU) itself.
$(VENV)/.installed-bench-local: pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench-local]"
	touch $@

bench-local: $(VENV)/.installed-bench-local
	HF_HUB_OFFLINE=1 $(PY) bench/local.py $(BENCH_LOCAL_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info
