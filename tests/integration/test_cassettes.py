"""Both adapters, replayed from the HTTP cassettes in ``cassettes/``.

Normal runs replay only: no key, the default base URL (``https://api.aimlapi.com/v1``), the
placeholder key and ``max_retries=0``; a request missing from a cassette fails at once. With
``--record-mode=rewrite`` (``make record``) or ``AIMLAPI_BGE_RECORD=1`` the same tests run
against ``$AIMLAPI_BASE_URL`` with ``$AIMLAPI_API_KEY`` and rewrite the cassettes (all but the
published example, which is built from the documentation; see ``vcr_published.py``).

Expected values come from the cassettes themselves, parsed independently of the client
(``vcr_support.recorded_vectors``), so the tests hold for stand-in and live recordings alike;
the published example is checked against the documented vector.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from llama_index.core import VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.response_synthesizers.no_text import NoText
from llama_index.core.schema import TextNode
from vcr.cassette import Cassette
from vcr.errors import CannotOverwriteExistingCassetteException

from aimlapi_bge import BGE_QUERY_INSTRUCTION
from langchain_aimlapi_bge import AIMLBGEEmbeddings
from llama_index_aimlapi_bge import AIMLBGEEmbedding
from support.vcr_published import PUBLISHED_TEXT, published_vector
from support.vcr_support import (
    CASSETTE_DIR,
    PLACEHOLDER_KEY,
    RECORDING_API_KEY,
    RECORDING_BASE_URL,
    RecordMode,
    record_mode,
    recorded_inputs,
    recorded_usage,
    recorded_vectors,
    use_recording,
)

UseCassette = Callable[[str], AbstractContextManager[Cassette]]
Vector = list[float]


@pytest.fixture(scope="session")
def cassette_mode(pytestconfig: pytest.Config) -> RecordMode:
    return record_mode(pytestconfig.getoption("--record-mode", default=None))


@pytest.fixture
def endpoint(cassette_mode: RecordMode) -> dict[str, Any]:
    """Where adapters send requests: the recording target, or nowhere real when replaying."""
    if cassette_mode == "none":
        return {"api_key": PLACEHOLDER_KEY, "max_retries": 0}
    return {"base_url": RECORDING_BASE_URL, "api_key": RECORDING_API_KEY}


@pytest.fixture
def cassette(cassette_mode: RecordMode) -> UseCassette:
    """``with cassette("name") as tape:`` replays (or records) ``cassettes/name.yaml``."""
    return lambda name: use_recording(name, cassette_mode)


def langchain(endpoint: dict[str, Any], **settings: Any) -> AIMLBGEEmbeddings:
    return AIMLBGEEmbeddings(**endpoint, **settings)


def llama_index(endpoint: dict[str, Any], **settings: Any) -> AIMLBGEEmbedding:
    if "batch_size" in settings:
        settings["embed_batch_size"] = settings.pop("batch_size")
    return AIMLBGEEmbedding(**endpoint, **settings)


Model = AIMLBGEEmbeddings | AIMLBGEEmbedding
ADAPTERS = {"langchain": langchain, "llama_index": llama_index}
DOCUMENT_METHODS = {
    ("langchain", "sync"): "embed_documents",
    ("langchain", "async"): "aembed_documents",
    ("llama_index", "sync"): "get_text_embedding_batch",
    ("llama_index", "async"): "aget_text_embedding_batch",
}
QUERY_METHODS = {
    ("langchain", "sync"): "embed_query",
    ("langchain", "async"): "aembed_query",
    ("llama_index", "sync"): "get_query_embedding",
    ("llama_index", "async"): "aget_query_embedding",
}
BOTH_ADAPTERS_SYNC_AND_ASYNC = pytest.mark.parametrize(("adapter", "mode"), list(DOCUMENT_METHODS))


def call(model: Model, method: str, argument: str | list[str]) -> Any:
    """Call an adapter method by name; run it to completion if it is async."""
    result = getattr(model, method)(argument)
    return asyncio.run(result) if asyncio.iscoroutine(result) else result


def assert_unit_vectors(vectors: list[Vector]) -> None:
    """768 finite floats of norm 1, as bge-base-en-v1.5 returns (and the stand-in imitates)."""
    for vector in vectors:
        assert len(vector) == 768
        assert all(type(x) is float for x in vector)
        assert math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-3)


# --- the published documentation example -------------------------------------------------------

PUBLISHED_PATHS = [
    *[("langchain", m) for m in ("embed_documents", "aembed_documents")],
    *[("langchain", m) for m in ("embed_query", "aembed_query")],
    *[("llama_index", m) for m in ("get_text_embedding", "aget_text_embedding")],
    *[("llama_index", m) for m in ("get_text_embedding_batch", "aget_text_embedding_batch")],
    *[("llama_index", m) for m in ("get_query_embedding", "aget_query_embedding")],
]


def published_model(adapter: str) -> Model:
    """An adapter with the default base URL and the placeholder key.

    ``query_instruction=""``: the published request carried no instruction, so the query paths
    send the bare text too (with BGE's default instruction they would send a different text).
    """
    return ADAPTERS[adapter]({"api_key": PLACEHOLDER_KEY, "max_retries": 0}, query_instruction="")


@pytest.mark.parametrize(("adapter", "method"), PUBLISHED_PATHS)
def test_published_example_is_reproduced_exactly(adapter: str, method: str) -> None:
    model = published_model(adapter)
    assert model.base_url == "https://api.aimlapi.com/v1"
    batch = "documents" in method or "batch" in method
    with use_recording("published_example", "none") as tape:
        result = call(model, method, [PUBLISHED_TEXT] if batch else PUBLISHED_TEXT)
    vector = result[0] if batch else result
    assert vector == published_vector()  # float equality, all 768 values
    assert tape.play_count == 1
    usage = model.usage
    assert (usage.requests, usage.texts, usage.prompt_tokens) == (1, 1, 7)
    assert usage.credits_used == 1


def test_published_vector_is_the_documented_one() -> None:
    """The copy in cassettes/ still holds the documented values (pinned here independently)."""
    vector = published_vector()
    assert len(vector) == 768
    assert vector[:3] == [0.011658690869808197, -0.018578968942165375, 0.012323499657213688]
    assert vector[-2:] == [0.030786830931901932, -0.023545755073428154]
    assert math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-7)


def test_published_replay_opens_no_socket(socket_disabled: None) -> None:
    """Replay happens inside the HTTP transport: no socket is created, not even to loopback."""
    with use_recording("published_example", "none"):
        assert published_model("langchain").embed_documents([PUBLISHED_TEXT]) == [
            published_vector()
        ]
        assert published_model("llama_index").get_text_embedding(PUBLISHED_TEXT) == (
            published_vector()
        )


def test_a_request_missing_from_the_cassette_fails_loudly() -> None:
    model = published_model("langchain")
    with (
        use_recording("published_example", "none"),
        pytest.raises(CannotOverwriteExistingCassetteException, match="No match"),
    ):
        model.embed_documents(["Laura is a DJ!"])
    assert model.usage.requests == 0


def test_a_missing_cassette_fails_loudly() -> None:
    with pytest.raises(FileNotFoundError, match="make record"), use_recording("nothing", "none"):
        pass


# --- contract: both adapters, sync and async -----------------------------------------------------

DOCUMENTS = [
    "Laura is a DJ.",
    "Paris is the capital of France.",
    "Bananas are rich in potassium.",
]
QUESTION = "Who plays records at the party?"


@BOTH_ADAPTERS_SYNC_AND_ASYNC
def test_documents_come_back_in_input_order(
    adapter: str,
    mode: str,
    endpoint: dict[str, Any],
    cassette: UseCassette,
    cassette_mode: RecordMode,
) -> None:
    model = ADAPTERS[adapter](endpoint)
    with cassette("adapters") as tape:
        vectors = call(model, DOCUMENT_METHODS[adapter, mode], DOCUMENTS)
    recorded = recorded_vectors(CASSETTE_DIR / "adapters.yaml")
    assert vectors == [recorded[text] for text in DOCUMENTS]
    assert_unit_vectors(vectors)
    usage = model.usage
    assert (usage.requests, usage.texts) == (1, 3)
    charged = recorded_usage(CASSETTE_DIR / "adapters.yaml")[tuple(DOCUMENTS)]
    assert (usage.prompt_tokens, usage.credits_used) == charged
    if cassette_mode == "none":
        assert tape.play_count == 1  # every answer came from the cassette


@BOTH_ADAPTERS_SYNC_AND_ASYNC
def test_queries_carry_the_bge_instruction(
    adapter: str, mode: str, endpoint: dict[str, Any], cassette: UseCassette
) -> None:
    model = ADAPTERS[adapter](endpoint)
    with cassette("adapters"):
        vector = call(model, QUERY_METHODS[adapter, mode], QUESTION)
    recorded = recorded_vectors(CASSETTE_DIR / "adapters.yaml")
    assert vector == recorded[BGE_QUERY_INSTRUCTION + QUESTION]
    assert QUESTION not in recorded  # the bare question was never sent
    assert_unit_vectors([vector])


# --- contract: several requests in one cassette --------------------------------------------------

MANY = [
    "The first passage is about rivers.",
    "The second passage is about mountains.",
    "The third passage is about deserts.",
    "The fourth passage is about forests.",
    "The fifth passage is about oceans.",
]


@BOTH_ADAPTERS_SYNC_AND_ASYNC
def test_multi_batch_call_replays_by_body_not_order(
    adapter: str,
    mode: str,
    endpoint: dict[str, Any],
    cassette: UseCassette,
    cassette_mode: RecordMode,
) -> None:
    """batch_size=2 over 5 texts: 3 requests, sent concurrently, matched by body on replay."""
    model = ADAPTERS[adapter](endpoint, batch_size=2)
    with cassette("multi_batch") as tape:
        vectors = call(model, DOCUMENT_METHODS[adapter, mode], MANY)
    path = CASSETTE_DIR / "multi_batch.yaml"
    assert sorted(recorded_inputs(path)) == sorted([MANY[0:2], MANY[2:4], MANY[4:5]])
    recorded = recorded_vectors(path)
    assert vectors == [recorded[text] for text in MANY]
    assert_unit_vectors(vectors)
    usage = model.usage
    assert (usage.requests, usage.texts) == (3, 5)
    charged = recorded_usage(path).values()
    assert usage.prompt_tokens == sum(tokens for tokens, _ in charged)
    assert usage.credits_used == sum(credits for _, credits in charged)
    if cassette_mode == "none":
        assert tape.play_count == 3  # every answer came from the cassette


# --- LangChain's standard integration suite ------------------------------------------------------


class TestStandardIntegrationSuiteFromCassette(EmbeddingsIntegrationTests):
    """langchain-tests' ``EmbeddingsIntegrationTests``, every request answered by a cassette."""

    @property
    def embeddings_class(self) -> type[AIMLBGEEmbeddings]:
        return AIMLBGEEmbeddings

    @pytest.fixture(autouse=True)
    def _cassette(self, cassette: UseCassette) -> Iterator[None]:
        with cassette("langchain_standard_suite"):
            yield

    @pytest.fixture
    def model(self, endpoint: dict[str, Any]) -> Embeddings:
        return self.embeddings_class(**self.embedding_model_params, **endpoint)


# --- retrieval over a small corpus ---------------------------------------------------------------

CORPUS = [
    "Laura is a DJ who plays techno in Berlin clubs every weekend.",
    "The Eiffel Tower is a wrought-iron tower on the Champ de Mars in Paris.",
    "Photosynthesis lets plant leaves turn sunlight, water and carbon dioxide into sugar.",
    "Mount Everest is the highest mountain on Earth above sea level.",
    "Espresso is coffee brewed by forcing hot water through finely ground beans.",
]
QUESTIONS = {
    "Who plays techno in Berlin clubs?": CORPUS[0],
    "Which tower stands in Paris?": CORPUS[1],
    "How do plant leaves make sugar from sunlight?": CORPUS[2],
}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_langchain_retriever_finds_the_right_passage(
    mode: str, endpoint: dict[str, Any], cassette: UseCassette
) -> None:
    embeddings = langchain(endpoint)

    async def run_async() -> list[str]:
        store = await InMemoryVectorStore.afrom_texts(CORPUS, embeddings)
        retriever = store.as_retriever(search_kwargs={"k": 1})
        return [(await retriever.ainvoke(q))[0].page_content for q in QUESTIONS]

    with cassette("retrieval"):
        if mode == "sync":
            retriever = InMemoryVectorStore.from_texts(CORPUS, embeddings).as_retriever(
                search_kwargs={"k": 1}
            )
            found = [retriever.invoke(q)[0].page_content for q in QUESTIONS]
        else:
            found = asyncio.run(run_async())
    assert found == list(QUESTIONS.values())


def test_llama_index_vector_store_index_query(
    endpoint: dict[str, Any], cassette: UseCassette
) -> None:
    embed_model = llama_index(endpoint)
    with cassette("retrieval"):
        index = VectorStoreIndex([TextNode(text=t) for t in CORPUS], embed_model=embed_model)
        engine = RetrieverQueryEngine(  # "no_text": retrieval only, no LLM call
            retriever=index.as_retriever(similarity_top_k=1),
            response_synthesizer=NoText(llm=MockLLM()),
        )
        queried = [engine.query(q).source_nodes[0].node.get_content() for q in QUESTIONS]
        retriever = index.as_retriever(similarity_top_k=1)
        retrieved = [asyncio.run(retriever.aretrieve(q))[0].node.get_content() for q in QUESTIONS]
    assert queried == retrieved == list(QUESTIONS.values())
    assert embed_model.usage.texts == len(CORPUS) + 2 * len(QUESTIONS)
