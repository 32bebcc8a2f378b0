"""``AIMLBGEEmbedding`` behaviour, checked from what the stand-in server received."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload, LlamaDebugHandler
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.embedding import (
    EmbeddingEndEvent,
    EmbeddingStartEvent,
)
from llama_index.core.rate_limiter import BaseRateLimiter
from llama_index.core.storage.kvstore import SimpleKVStore

from aimlapi_bge import BGE_QUERY_INSTRUCTION, Embedder
from llama_index_aimlapi_bge import AIMLBGEEmbedding
from support.helpers import expected, make_llama_index
from support.standin import StandInServer

TEXTS = ["Laura is a DJ.", "Paris is in France.", "Cats sleep a lot.", "Rust has no GC.", "Tea"]
QUERY = "Who is Laura?"


def make(server: StandInServer, **settings: Any) -> AIMLBGEEmbedding:
    embedding: AIMLBGEEmbedding = make_llama_index(server, **settings)
    return embedding


def batch_sizes(server: StandInServer) -> list[int]:
    return sorted(len(r.body["input"]) for r in server.embedding_requests)


def test_private_sync_methods_go_through_the_core(standin: StandInServer) -> None:
    model = make(standin, embed_batch_size=2)
    assert model._get_text_embeddings(TEXTS) == expected(TEXTS)
    assert batch_sizes(standin) == [1, 2, 2]
    assert model._get_text_embedding("Tea") == expected(["Tea"])[0]
    assert model._get_query_embedding(QUERY) == expected([BGE_QUERY_INSTRUCTION + QUERY])[0]
    assert standin.inputs_seen[-2:] == ["Tea", BGE_QUERY_INSTRUCTION + QUERY]


async def test_private_async_methods_go_through_the_core(standin: StandInServer) -> None:
    model = make(standin, embed_batch_size=2)
    assert await model._aget_text_embeddings(TEXTS) == expected(TEXTS)
    assert batch_sizes(standin) == [1, 2, 2]
    assert await model._aget_text_embedding("Tea") == expected(["Tea"])[0]
    query_vector = await model._aget_query_embedding(QUERY)
    assert query_vector == expected([BGE_QUERY_INSTRUCTION + QUERY])[0]
    assert standin.inputs_seen[-2:] == ["Tea", BGE_QUERY_INSTRUCTION + QUERY]


def test_query_instruction_only_on_queries(standin: StandInServer) -> None:
    model = make(standin)
    model.get_query_embedding(QUERY)
    model.get_text_embedding("Laura is a DJ.")
    model.get_text_embedding_batch(["Paris is in France."])
    model.get_agg_embedding_from_queries([QUERY, "Where is Paris?"])
    assert standin.inputs_seen == [
        BGE_QUERY_INSTRUCTION + QUERY,
        "Laura is a DJ.",
        "Paris is in France.",
        BGE_QUERY_INSTRUCTION + QUERY,
        BGE_QUERY_INSTRUCTION + "Where is Paris?",
    ]


def test_empty_query_instruction_sends_the_bare_query(standin: StandInServer) -> None:
    assert make(standin, query_instruction="").get_query_embedding(QUERY) == expected([QUERY])[0]
    assert standin.inputs_seen == [QUERY]


def test_batch_method_sends_full_batches_concurrently() -> None:
    texts = [f"passage {i}" for i in range(24)]
    with StandInServer(gate=3) as server:
        model = make(server, embed_batch_size=4, max_concurrency=3)
        assert model.get_text_embedding_batch(texts) == expected(texts)
        assert batch_sizes(server) == [4] * 6
        assert server.peak_in_flight == 3


async def test_async_batch_method_sends_full_batches_within_the_bound() -> None:
    texts = [f"passage {i}" for i in range(24)]
    with StandInServer(gate=3) as server:
        model = make(server, embed_batch_size=4, max_concurrency=3)
        assert await model.aget_text_embedding_batch(texts) == expected(texts)
        assert batch_sizes(server) == [4] * 6
        assert server.peak_in_flight == 3


def test_settings_reach_the_core(standin: StandInServer) -> None:
    model = make(standin, embed_batch_size=7, max_concurrency=3, max_retries=1, timeout=5)
    assert isinstance(model.embedder, Embedder)
    config = model.embedder.config
    assert (config.batch_size, config.max_concurrency, config.max_retries) == (7, 3, 1)
    assert (config.timeout, config.base_url, config.model) == (5, standin.url, model.model_name)
    assert model.model_name == "BAAI/bge-base-en-v1.5"


def test_default_headers_reach_the_server(standin: StandInServer) -> None:
    make(standin, default_headers={"x-team": "rag"}).get_text_embedding("hello")
    assert standin.embedding_requests[0].headers["x-team"] == "rag"


def test_usage_counts_requests_and_texts(standin: StandInServer) -> None:
    model = make(standin, embed_batch_size=2)
    model.get_text_embedding_batch(TEXTS)
    assert (model.usage.requests, model.usage.texts) == (3, 5)
    assert model.reset_usage().requests == 3
    assert model.usage.requests == 0


def test_class_name() -> None:
    assert AIMLBGEEmbedding.class_name() == "AIMLBGEEmbedding"


def test_serialised_forms_hold_no_key(standin: StandInServer) -> None:
    model = AIMLBGEEmbedding(
        base_url=standin.url, api_key="sk-very-secret", default_headers={"x-auth": "sk-header"}
    )
    data = model.to_dict()
    assert data["class_name"] == "AIMLBGEEmbedding"
    assert "api_key" not in data
    for text in (json.dumps(data), model.to_json(), repr(model), str(model)):
        assert "sk-very-secret" not in text
        assert "sk-header" not in text


def test_from_dict_round_trip_re_resolves_the_key_from_the_environment(
    standin: StandInServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = make(standin, embed_batch_size=3, max_concurrency=2, query_instruction="Q: ")
    monkeypatch.setenv("AIMLAPI_API_KEY", "standin-key")
    for restored in (
        AIMLBGEEmbedding.from_dict(original.to_dict()),
        AIMLBGEEmbedding.from_json(original.to_json()),
    ):
        assert restored.to_dict() == original.to_dict()
        assert restored.api_key is not None
        assert restored.api_key.get_secret_value() == "standin-key"
        assert restored.get_query_embedding("hi") == expected(["Q: hi"])[0]
    assert all(r.headers["authorization"] == "Bearer standin-key" for r in standin.requests)


def test_pickle_round_trip_rebuilds_a_working_instance(standin: StandInServer) -> None:
    # IngestionPipeline(num_workers=N) pickles its transformations, embed model included.
    model = make(standin, embed_batch_size=2)
    restored = pickle.loads(pickle.dumps(model))
    assert restored.get_text_embedding_batch(TEXTS) == expected(TEXTS)
    assert batch_sizes(standin) == [1, 2, 2]


def test_callback_manager_records_an_embedding_event_for_batch_calls(
    standin: StandInServer,
) -> None:
    handler = LlamaDebugHandler()
    model = make(standin, embed_batch_size=2, callback_manager=CallbackManager([handler]))
    vectors = model.get_text_embedding_batch(TEXTS)
    ((start, end),) = handler.get_event_pairs(CBEventType.EMBEDDING)
    assert start.payload is not None and end.payload is not None
    assert start.payload[EventPayload.SERIALIZED]["model_name"] == "BAAI/bge-base-en-v1.5"
    assert end.payload[EventPayload.CHUNKS] == TEXTS
    assert end.payload[EventPayload.EMBEDDINGS] == vectors


async def test_callback_manager_records_an_embedding_event_for_async_batch_calls(
    standin: StandInServer,
) -> None:
    handler = LlamaDebugHandler()
    model = make(standin, embed_batch_size=2, callback_manager=CallbackManager([handler]))
    vectors = await model.aget_text_embedding_batch(TEXTS)
    ((_start, end),) = handler.get_event_pairs(CBEventType.EMBEDDING)
    assert end.payload is not None
    assert end.payload[EventPayload.CHUNKS] == TEXTS
    assert end.payload[EventPayload.EMBEDDINGS] == vectors


class _Recorder(BaseEventHandler):
    events: list[BaseEvent]

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)


@pytest.fixture
def instrumentation() -> Iterator[list[BaseEvent]]:
    """Events seen by a handler on LlamaIndex's root dispatcher during one test."""
    recorder = _Recorder(events=[])
    root = get_dispatcher()
    root.add_event_handler(recorder)
    try:
        yield recorder.events
    finally:
        root.event_handlers.remove(recorder)


async def test_instrumentation_events_fire_for_batch_calls(
    standin: StandInServer, instrumentation: list[BaseEvent]
) -> None:
    model = make(standin, embed_batch_size=2)
    sync_vectors = model.get_text_embedding_batch(TEXTS)
    async_vectors = await model.aget_text_embedding_batch(TEXTS[:2])
    starts = [e for e in instrumentation if isinstance(e, EmbeddingStartEvent)]
    ends = [e for e in instrumentation if isinstance(e, EmbeddingEndEvent)]
    assert len(starts) == 2
    assert "api_key" not in starts[0].model_dict
    assert [(e.chunks, e.embeddings) for e in ends] == [
        (TEXTS, sync_vectors),
        (TEXTS[:2], async_vectors),
    ]


async def test_embeddings_cache_is_honoured(standin: StandInServer) -> None:
    model = make(standin, embed_batch_size=2, embeddings_cache=SimpleKVStore())
    first = model.get_text_embedding_batch(TEXTS)
    assert first == expected(TEXTS)
    assert batch_sizes(standin) == [1, 2, 2]
    assert model.get_text_embedding_batch(TEXTS) == first
    assert await model.aget_text_embedding_batch(TEXTS) == first
    assert len(standin.embedding_requests) == 3  # the repeats came from the cache


class _CountingLimiter(BaseRateLimiter):
    def __init__(self) -> None:
        self.acquired = 0

    def acquire(self, num_tokens: int = 0) -> None:
        self.acquired += 1

    async def async_acquire(self, num_tokens: int = 0) -> None:
        self.acquired += 1


async def test_rate_limiter_is_consulted_once_per_request(standin: StandInServer) -> None:
    limiter = _CountingLimiter()
    model = make(standin, embed_batch_size=2, rate_limiter=limiter)
    assert model.get_text_embedding_batch(TEXTS) == expected(TEXTS)
    assert limiter.acquired == len(standin.embedding_requests) == 3
    assert await model.aget_text_embedding_batch(TEXTS[:4]) == expected(TEXTS[:4])
    assert limiter.acquired == len(standin.embedding_requests) == 5


def test_changing_a_setting_after_construction_takes_effect() -> None:
    with StandInServer(models=("BAAI/bge-base-en-v1.5", "acme/embed-1")) as server:
        model = make(server)
        model.embed_batch_size = 2
        assert model.get_text_embedding_batch(TEXTS) == expected(TEXTS)
        assert batch_sizes(server) == [1, 2, 2]
        model.model_name = "acme/embed-1"  # not an English BGE model: no default instruction
        assert model.query_instruction == ""
        model.get_query_embedding(QUERY)
        assert server.embedding_requests[-1].body == {"model": "acme/embed-1", "input": [QUERY]}


def test_framework_assignments_keep_the_core(standin: StandInServer) -> None:
    model = make(standin)
    model.get_text_embedding("hello")
    core = model.embedder
    model.callback_manager = CallbackManager([])  # what Settings.embed_model does on access
    assert model.embedder is core
    assert model.usage.requests == 1
