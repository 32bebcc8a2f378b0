"""Retrieval end to end in both frameworks, over the stand-in AI/ML API.

The stand-in's vectors are bags of words, so the passage sharing the most words with a
question must come first; the instruction words added to queries are in no passage.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.vectorstores import InMemoryVectorStore
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.settings import _Settings

from aimlapi_bge import BGE_QUERY_INSTRUCTION
from langchain_aimlapi_bge import AIMLBGEEmbeddings
from llama_index_aimlapi_bge import AIMLBGEEmbedding
from support.standin import StandInServer

PASSAGES = [
    "Laura plays techno records as a DJ in Berlin clubs.",
    "The Eiffel Tower stands in Paris, the capital of France.",
    "Domestic cats sleep between twelve and sixteen hours daily.",
    "Rust manages memory with ownership rules instead of garbage collection.",
    "Green tea contains caffeine and antioxidants.",
]
QUESTIONS = {
    "Which city has the Eiffel Tower?": PASSAGES[1],
    "How many hours do cats sleep?": PASSAGES[2],
    "Does Rust use garbage collection?": PASSAGES[3],
    "Where does Laura play as a DJ?": PASSAGES[0],
}


def check_what_the_server_saw(server: StandInServer, *, batch_size: int) -> None:
    """Passages went in batches and bare; every question carried the instruction."""
    sent = [r.body["input"] for r in server.embedding_requests]
    passages = [text for batch in sent for text in batch if text in PASSAGES]
    assert sorted(passages) == sorted(PASSAGES)
    assert max(len(batch) for batch in sent) == batch_size
    queries = [text for batch in sent for text in batch if text not in PASSAGES]
    assert sorted(queries) == sorted(BGE_QUERY_INSTRUCTION + q for q in QUESTIONS)


# --- LangChain ------------------------------------------------------------------------------


def test_langchain_retriever_returns_the_matching_document(standin: StandInServer) -> None:
    embeddings = AIMLBGEEmbeddings(base_url=standin.url, api_key=standin.api_key, batch_size=2)
    store = InMemoryVectorStore.from_texts(PASSAGES, embedding=embeddings)
    retriever = store.as_retriever(search_kwargs={"k": 1})
    for question, passage in QUESTIONS.items():
        (document,) = retriever.invoke(question)
        assert document.page_content == passage
    check_what_the_server_saw(standin, batch_size=2)


async def test_langchain_async_retriever_returns_the_matching_document(
    standin: StandInServer,
) -> None:
    embeddings = AIMLBGEEmbeddings(base_url=standin.url, api_key=standin.api_key, batch_size=2)
    store = await InMemoryVectorStore.afrom_texts(PASSAGES, embedding=embeddings)
    retriever = store.as_retriever(search_kwargs={"k": 1})
    for question, passage in QUESTIONS.items():
        (document,) = await retriever.ainvoke(question)
        assert document.page_content == passage
    check_what_the_server_saw(standin, batch_size=2)


# --- LlamaIndex -----------------------------------------------------------------------------


def _no_llm(self: _Settings) -> None:
    raise AssertionError("retrieval must not need an LLM")


@pytest.fixture
def llama_settings(standin: StandInServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``Settings.embed_model`` set to our model for one test, restored afterwards.

    Any use of ``Settings.llm`` fails the test.
    """
    saved = Settings._embed_model
    monkeypatch.setattr(_Settings, "llm", property(_no_llm))
    Settings.embed_model = AIMLBGEEmbedding(
        base_url=standin.url, api_key=standin.api_key, embed_batch_size=2
    )
    try:
        yield
    finally:
        Settings._embed_model = saved


@pytest.mark.usefixtures("llama_settings")
def test_llama_index_retriever_returns_the_matching_node(standin: StandInServer) -> None:
    index = VectorStoreIndex.from_documents([Document(text=p) for p in PASSAGES])
    retriever = index.as_retriever(similarity_top_k=1)
    for question, passage in QUESTIONS.items():
        (hit,) = retriever.retrieve(question)
        assert hit.node.get_content() == passage
    check_what_the_server_saw(standin, batch_size=2)


@pytest.mark.usefixtures("llama_settings")
async def test_llama_index_async_retriever_returns_the_matching_node(
    standin: StandInServer,
) -> None:
    pipeline = IngestionPipeline(transformations=[SentenceSplitter(), Settings.embed_model])
    nodes = await pipeline.arun(documents=[Document(text=p) for p in PASSAGES])
    assert all(node.embedding is not None for node in nodes)
    index = VectorStoreIndex(nodes)
    retriever = index.as_retriever(similarity_top_k=1)
    for question, passage in QUESTIONS.items():
        (hit,) = await retriever.aretrieve(question)
        assert hit.node.get_content() == passage
    check_what_the_server_saw(standin, batch_size=2)
