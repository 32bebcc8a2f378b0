"""The frameworks' own embedding caches work with the adapters (docs/rag-stacks.md, "Caches").

LangChain's ``CacheBackedEmbeddings`` (documents and, with ``query_embedding_cache``, queries) and
LlamaIndex's ``embeddings_cache`` (a KV store on the embedding model): the second call, even from
a fresh adapter over the persisted cache (a second run), sends no request and returns equal
vectors.
"""

from __future__ import annotations

from pathlib import Path

from aimlapi_bge import DEFAULT_MODEL
from support.helpers import expected
from support.standin import StandInServer

TEXTS = [
    "Mount Vesuvius erupted in 79 AD.",
    "Honeybees dance to tell where flowers are.",
    "Honeybees dance to tell where flowers are.",  # a duplicate within one call
    "Tides follow the Moon.",
]
QUERY = "What buried Pompeii?"


def test_langchain_cache_backed_embeddings_send_nothing_the_second_time(
    standin: StandInServer, tmp_path: Path
) -> None:
    from langchain_classic.embeddings import CacheBackedEmbeddings
    from langchain_classic.storage import LocalFileStore

    from langchain_aimlapi_bge import AIMLBGEEmbeddings

    def cached() -> CacheBackedEmbeddings:
        """What each run of a user's program builds: a new adapter over the same cache dir."""
        return CacheBackedEmbeddings.from_bytes_store(
            AIMLBGEEmbeddings(base_url=standin.url, api_key=standin.api_key),
            LocalFileStore(tmp_path / "embeddings-cache"),
            namespace=DEFAULT_MODEL,
            query_embedding_cache=True,
            key_encoder="sha256",
        )

    first = cached()
    documents = first.embed_documents(TEXTS)
    query = first.embed_query(QUERY)
    assert standin.embedding_requests  # the first run asked the API
    assert documents == expected(TEXTS)
    assert query != expected([QUERY])[0]  # the query went with bge's instruction prefix

    standin.reset()
    second = cached()
    assert second.embed_documents(TEXTS) == documents
    assert second.embed_query(QUERY) == query
    assert standin.embedding_requests == []

    # A new text costs one request holding only that text.
    assert second.embed_documents([*TEXTS, "Espresso needs pressure."])[:4] == documents
    assert standin.inputs_seen == ["Espresso needs pressure."]


def test_llama_index_embeddings_cache_sends_nothing_the_second_time(
    standin: StandInServer, tmp_path: Path
) -> None:
    from llama_index.core.storage.kvstore import SimpleKVStore

    from llama_index_aimlapi_bge import AIMLBGEEmbedding

    cache_file = tmp_path / "embeddings-cache.json"
    first = AIMLBGEEmbedding(
        base_url=standin.url, api_key=standin.api_key, embeddings_cache=SimpleKVStore()
    )
    vectors = first.get_text_embedding_batch(TEXTS)
    query = first.get_query_embedding(QUERY)
    assert vectors == expected(TEXTS)
    assert standin.embedding_requests
    assert first.embeddings_cache is not None
    first.embeddings_cache.persist(str(cache_file))

    standin.reset()
    second = AIMLBGEEmbedding(
        base_url=standin.url,
        api_key=standin.api_key,
        embeddings_cache=SimpleKVStore.from_persist_path(str(cache_file)),
    )
    assert second.get_text_embedding_batch(TEXTS) == vectors
    assert [second.get_text_embedding(text) for text in TEXTS] == vectors
    assert second.get_query_embedding(QUERY) == query
    assert standin.embedding_requests == []

    second.get_text_embedding_batch([*TEXTS, "Espresso needs pressure."])
    assert standin.inputs_seen == ["Espresso needs pressure."]
