"""The RAG demo's pipeline against a Chroma server: stored vectors, cosine space, top-k, re-indexing.

One ``chroma run`` server (127.0.0.1, free port, temporary directory) serves the whole module;
one stand-in API serves the embeddings. The demo runs in-process with ``--chroma-url``, each test
in its own collection and state directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

os.environ["ANONYMIZED_TELEMETRY"] = "False"  # before chromadb is imported

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings

from aimlapi_bge import BGE_QUERY_INSTRUCTION
from support.examples import load_example
from support.standin import StandInServer, standin_vector

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
INDEXERS = ("llama-index", "langchain")


def load_demo() -> ModuleType:
    return load_example("rag_demo.py", "rag_demo_chroma")


DEMO = load_demo()
QUERY_INPUTS = {BGE_QUERY_INSTRUCTION + question for question in DEMO.QUESTIONS}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Chroma server (`chroma run`) on 127.0.0.1, stopped by its PID after the module."""
    executable = shutil.which("chroma", path=str(Path(sys.executable).parent))
    assert executable, "the chroma CLI ships with chromadb ([chroma] extra)"
    port = free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    log = (data / "server.log").open("wb")
    process = subprocess.Popen(
        [executable, "run", "--path", str(data / "db"), "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:  # wait for the heartbeat (a start-up wait, not a timing assertion)
            assert process.poll() is None, (data / "server.log").read_text(errors="replace")
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the Chroma server did not start"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def api() -> Iterator[StandInServer]:
    with StandInServer() as server:
        yield server


@pytest.fixture
def chroma(chroma_url: str) -> Any:
    port = int(chroma_url.rsplit(":", 1)[1])
    return chromadb.HttpClient(
        host="127.0.0.1", port=port, settings=Settings(anonymized_telemetry=False)
    )


def run_demo(
    api: StandInServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *args: str,
) -> str:
    monkeypatch.setenv("AIMLAPI_BASE_URL", api.url)
    monkeypatch.setenv("AIMLAPI_API_KEY", api.api_key or "")
    api.reset()
    code = DEMO.main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def retrieved(output: str) -> dict[str, tuple[list[str], list[str]]]:
    """Question -> (LangChain's ids, LlamaIndex's ids), in rank order, from the demo's output."""
    found = re.findall(
        r"Q\d+\. (.+)\n\s+LangChain  retriever: (.+)\n\s+LlamaIndex retriever: (.+)\n", output
    )
    return {
        question: (lc.split(", "), re.findall(r"([\w-]+) \([\d.]+\)", li))
        for question, lc, li in found
    }


def write_corpus(path: Path, passages: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(p) + "\n" for p in passages), encoding="utf-8")


@pytest.mark.parametrize("indexer", INDEXERS)
def test_both_frameworks_query_the_vectors_stored_on_a_chroma_server(
    indexer: str,
    chroma_url: str,
    chroma: Any,
    api: StandInServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from langchain_aimlapi_bge import AIMLBGEEmbeddings
    from llama_index_aimlapi_bge import AIMLBGEEmbedding

    prefix = f"server-{indexer}"
    out = run_demo(
        api, monkeypatch, capsys,
        "--chroma-url", chroma_url, "--store", str(tmp_path), "--collection", prefix,
        "--indexer", indexer,
    )  # fmt: skip
    name = f"{prefix}-{indexer}"
    assert f"Chroma (server, {chroma_url}): collection {name!r}, cosine space, 20 vectors" in out

    collection = chroma.get_collection(name)
    assert collection.configuration_json["hnsw"]["space"] == "cosine"
    assert collection.metadata["hnsw:space"] == "cosine"
    stored = collection.get(include=["embeddings", "documents", "metadatas"])
    passages = DEMO.load_corpus(DEMO.CORPUS)
    text_of = {p["id"]: p["text"] for p in passages}
    ids = [metadata["passage"] for metadata in stored["metadatas"]]
    assert sorted(ids) == sorted(text_of)
    assert stored["documents"] == [text_of[i] for i in ids]
    vectors = np.asarray(stored["embeddings"], dtype=np.float64)
    assert vectors.shape == (20, 768)

    # The stored vectors are what the adapters return for these passages (Chroma keeps float32).
    texts = [text_of[i] for i in ids]
    settings = {"base_url": api.url, "api_key": api.api_key}
    lc_vectors = np.asarray(AIMLBGEEmbeddings(**settings).embed_documents(texts))
    li_vectors = np.asarray(AIMLBGEEmbedding(**settings).get_text_embedding_batch(texts))
    np.testing.assert_allclose(vectors, lc_vectors, atol=1e-6)
    np.testing.assert_allclose(vectors, li_vectors, atol=1e-6)

    # Top-k by brute-force cosine over the stored vectors, for the adapter's query vectors.
    query_model = AIMLBGEEmbeddings(**settings)
    answers = retrieved(out)
    assert set(answers) == set(DEMO.QUESTIONS)
    for question, (lc_ids, li_ids) in answers.items():
        query = np.asarray(query_model.embed_query(question))
        scores = vectors @ query / np.linalg.norm(vectors, axis=1) / np.linalg.norm(query)
        expected = [ids[i] for i in np.argsort(-scores)[: DEMO.TOP_K]]
        assert lc_ids == expected, question
        assert li_ids == expected, question


@pytest.mark.parametrize("indexer", INDEXERS)
def test_re_indexing_embeds_only_new_or_changed_passages(
    indexer: str,
    chroma_url: str,
    chroma: Any,
    api: StandInServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    passages = DEMO.load_corpus(DEMO.CORPUS)
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, passages)
    prefix = f"incremental-{indexer}"
    args = (
        "--chroma-url", chroma_url, "--store", str(tmp_path / "state"), "--corpus", str(corpus),
        "--collection", prefix, "--indexer", indexer,
    )  # fmt: skip
    texts = [p["text"] for p in passages]

    # Run 1 embeds every passage once (plus the questions).
    out = run_demo(api, monkeypatch, capsys, *args)
    seen = api.inputs_seen
    assert Counter(t for t in seen if t not in QUERY_INPUTS) == Counter(texts)
    assert "embedded 20 new or changed passages" in out

    # Run 2 embeds nothing but the questions.
    out = run_demo(api, monkeypatch, capsys, *args)
    seen = api.inputs_seen
    assert seen and set(seen) <= QUERY_INPUTS
    assert "embedded 0 new or changed passages: -" in out
    assert "skipped 20 unchanged passages" in out

    # Edit one passage: run 3 embeds exactly that one and replaces its vector.
    edited = "Ocean tides rise and fall twice a day, pulled by the Moon and, less, by the Sun."
    write_corpus(corpus, [{**p, "text": edited} if p["id"] == "tides" else p for p in passages])
    out = run_demo(api, monkeypatch, capsys, *args)
    assert [t for t in api.inputs_seen if t not in QUERY_INPUTS] == [edited]
    assert "embedded 1 new or changed passages: tides\n" in out
    assert "skipped 19 unchanged passages" in out
    assert "removed 1 stale vectors" in out

    collection = chroma.get_collection(f"{prefix}-{indexer}")
    stored = collection.get(where={"passage": "tides"}, include=["embeddings", "documents"])
    assert stored["documents"] == [edited]
    np.testing.assert_allclose(stored["embeddings"][0], standin_vector(edited), atol=1e-6)
    assert collection.count() == 20

    # Remove a passage from the corpus: run 4 embeds nothing and drops its vector.
    kept = [p for p in passages if p["id"] != "chess"]
    write_corpus(corpus, [{**p, "text": edited} if p["id"] == "tides" else p for p in kept])
    out = run_demo(api, monkeypatch, capsys, *args)
    assert set(api.inputs_seen) <= QUERY_INPUTS
    assert "embedded 0 new or changed passages: -" in out
    assert "removed 1 stale vectors" in out
    assert collection.count() == 19
    assert collection.get(where={"passage": "chess"})["ids"] == []


def test_a_missing_chroma_server_is_named_with_the_flag_to_change(
    tmp_path: Path,
    api: StandInServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AIMLAPI_BASE_URL", api.url)
    monkeypatch.setenv("AIMLAPI_API_KEY", api.api_key or "")
    url = f"http://127.0.0.1:{free_port()}"
    assert DEMO.main(["--chroma-url", url, "--store", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"rag_demo: error: No Chroma server answered at {url}")
    assert "chroma run --path DIR" in last and "--chroma-url" in last
