"""``AIMLBGEEmbeddings`` behaviour, checked from what the stand-in server received."""

from __future__ import annotations

import asyncio
import threading

import httpx2 as httpx
import openai
import pytest

from aimlapi_bge import BGE_QUERY_INSTRUCTION, AuthenticationError, ConfigurationError, Embedder
from langchain_aimlapi_bge import AIMLBGEEmbeddings
from support.helpers import expected, make_langchain
from support.standin import StandInServer, count_tokens, standin_vector

TEXTS = ["Laura is a DJ.", "Paris is in France.", "Cats sleep a lot.", "Rust has no GC.", "Tea"]


def make(server: StandInServer, **settings: object) -> AIMLBGEEmbeddings:
    embeddings: AIMLBGEEmbeddings = make_langchain(server, **settings)
    return embeddings


def test_embed_documents_returns_the_servers_vectors_in_input_order(
    standin: StandInServer,
) -> None:
    vectors = make(standin, batch_size=2).embed_documents(TEXTS)
    assert vectors == expected(TEXTS)
    assert sorted(len(r.body["input"]) for r in standin.embedding_requests) == [1, 2, 2]
    assert sorted(standin.inputs_seen) == sorted(TEXTS)  # documents carry no instruction


def test_embed_query_sends_the_instruction_and_returns_its_vector(standin: StandInServer) -> None:
    vector = make(standin).embed_query("Who is Laura?")
    assert standin.inputs_seen == [BGE_QUERY_INSTRUCTION + "Who is Laura?"]
    assert vector == standin_vector(BGE_QUERY_INSTRUCTION + "Who is Laura?").tolist()


def test_empty_query_instruction_sends_the_bare_query(standin: StandInServer) -> None:
    embeddings = make(standin, query_instruction="")
    assert embeddings.embed_query("Who is Laura?") == standin_vector("Who is Laura?").tolist()
    assert standin.inputs_seen == ["Who is Laura?"]


def test_embed_documents_of_nothing_sends_nothing(standin: StandInServer) -> None:
    assert make(standin).embed_documents([]) == []
    assert standin.embedding_requests == []


async def test_async_methods_return_the_servers_vectors(standin: StandInServer) -> None:
    embeddings = make(standin, batch_size=2)
    assert await embeddings.aembed_documents(TEXTS) == expected(TEXTS)
    query_vector = await embeddings.aembed_query("Who is Laura?")
    assert query_vector == standin_vector(BGE_QUERY_INSTRUCTION + "Who is Laura?").tolist()
    assert standin.inputs_seen[-1] == BGE_QUERY_INSTRUCTION + "Who is Laura?"
    assert len(standin.embedding_requests) == 4


async def test_async_path_is_truly_async_and_concurrent() -> None:
    """All requests leave through the async client from the loop's thread, several at once.

    An adapter that ran the sync path in an executor would send through the sync client
    (whose hook records it) from a worker thread.
    """
    senders: list[tuple[str, int]] = []

    def sync_hook(request: httpx.Request) -> None:
        senders.append(("sync", threading.get_ident()))

    async def async_hook(request: httpx.Request) -> None:
        senders.append(("async", threading.get_ident()))

    with StandInServer(gate=4) as server:
        embeddings = make(
            server,
            batch_size=1,
            max_concurrency=4,
            http_client=openai.DefaultHttpxClient(event_hooks={"request": [sync_hook]}),
            http_async_client=openai.DefaultAsyncHttpxClient(event_hooks={"request": [async_hook]}),
        )
        texts = [f"passage {i}" for i in range(8)]
        assert await embeddings.aembed_documents(texts) == expected(texts)
        assert server.peak_in_flight == 4
    assert senders == [("async", threading.get_ident())] * 8


def test_unknown_arguments_are_rejected_before_any_request(standin: StandInServer) -> None:
    with pytest.raises(ConfigurationError, match="'modle'; did you mean 'model'"):
        make(standin, modle="BAAI/bge-base-en-v1.5")
    assert standin.request_count == 0


def test_missing_key_names_the_environment_variable() -> None:
    with pytest.raises(AuthenticationError, match="AIMLAPI_API_KEY"):
        AIMLBGEEmbeddings()


def test_key_from_the_environment_is_sent(
    standin: StandInServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIMLAPI_API_KEY", "standin-key")
    embeddings = AIMLBGEEmbeddings(base_url=standin.url)
    embeddings.embed_documents(["hello"])
    assert standin.embedding_requests[0].headers["authorization"] == "Bearer standin-key"
    assert "standin-key" not in repr(embeddings)
    assert "standin-key" not in embeddings.model_dump_json()


def test_sync_http_client_is_the_one_used(standin: StandInServer) -> None:
    client = openai.DefaultHttpxClient(headers={"x-probe": "sync-client"})
    embeddings = make(standin, http_client=client)
    assert embeddings.embed_documents(["hello"]) == expected(["hello"])
    assert embeddings.embed_query("hi") == standin_vector(BGE_QUERY_INSTRUCTION + "hi").tolist()
    assert [r.headers.get("x-probe") for r in standin.embedding_requests] == ["sync-client"] * 2


async def test_async_http_client_is_the_one_used(standin: StandInServer) -> None:
    client = openai.DefaultAsyncHttpxClient(headers={"x-probe": "async-client"})
    embeddings = make(standin, http_async_client=client)
    assert await embeddings.aembed_documents(["hello"]) == expected(["hello"])
    await embeddings.aembed_query("hi")
    assert [r.headers.get("x-probe") for r in standin.embedding_requests] == ["async-client"] * 2


def test_default_headers_reach_the_server_on_both_paths(standin: StandInServer) -> None:
    embeddings = make(standin, default_headers={"x-team": "rag", "x-trace": "42"})
    embeddings.embed_documents(["one"])
    asyncio.run(embeddings.aembed_query("two"))
    for request in standin.embedding_requests:
        assert request.headers["x-team"] == "rag"
        assert request.headers["x-trace"] == "42"
    assert len(standin.embedding_requests) == 2


def test_usage_adds_up_what_the_server_charged(standin: StandInServer) -> None:
    embeddings = make(standin, batch_size=2)
    embeddings.embed_documents(TEXTS)
    embeddings.embed_query("Who is Laura?")
    usage = embeddings.usage
    assert usage.requests == len(standin.embedding_requests) == 4
    assert usage.texts == len(TEXTS) + 1
    assert usage.prompt_tokens == sum(count_tokens(t) for t in standin.inputs_seen)
    batches = [r.body["input"] for r in standin.embedding_requests]
    assert usage.credits_used == sum(standin.credits_for(b) for b in batches)
    assert embeddings.reset_usage() == usage
    assert embeddings.usage.requests == 0


def test_settings_reach_the_core(standin: StandInServer) -> None:
    embeddings = make(
        standin, model="BAAI/bge-base-en-v1.5", batch_size=7, max_concurrency=3, max_retries=1
    )
    assert isinstance(embeddings.embedder, Embedder)
    config = embeddings.embedder.config
    assert (config.batch_size, config.max_concurrency, config.max_retries) == (7, 3, 1)
    assert config.base_url == standin.url
    assert embeddings.show_progress_bar is False
    assert AIMLBGEEmbeddings.model_fields["show_progress_bar"].annotation is bool


def test_docstring_follows_the_langchain_partner_layout() -> None:
    doc = AIMLBGEEmbeddings.__doc__ or ""
    sections = [
        "Setup:",
        "Key init args — embedding params:",
        "Key init args — client params:",
        "Instantiate:",
        "Embed single text:",
        "Embed multiple texts:",
        "Async:",
    ]
    positions = [doc.find(section) for section in sections]
    assert -1 not in positions, dict(zip(sections, positions, strict=True))
    assert positions == sorted(positions)


def test_changing_a_setting_after_construction_takes_effect(standin: StandInServer) -> None:
    embeddings = make(standin)
    embeddings.batch_size = 2
    embeddings.query_instruction = ""
    assert embeddings.embed_documents(TEXTS) == expected(TEXTS)
    assert sorted(len(r.body["input"]) for r in standin.embedding_requests) == [1, 2, 2]
    embeddings.embed_query("Who is Laura?")
    assert standin.inputs_seen[-1] == "Who is Laura?"


def test_an_invalid_new_setting_is_refused_and_changes_nothing(standin: StandInServer) -> None:
    embeddings = make(standin, batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        embeddings.batch_size = 0
    assert embeddings.batch_size == 2
    embeddings.embed_documents(TEXTS)
    assert sorted(len(r.body["input"]) for r in standin.embedding_requests) == [1, 2, 2]


def test_a_key_from_the_environment_does_not_follow_a_new_base_url(
    standin: StandInServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIMLAPI_API_KEY", "standin-key")
    embeddings = AIMLBGEEmbeddings(base_url=standin.url)
    assert embeddings.api_key is not None
    embeddings.base_url = "https://embeddings.example.org/v1"
    assert embeddings.api_key is None
    assert embeddings.embedder.config.api_key is None
    embeddings.base_url = standin.url
    assert embeddings.embed_documents(["hello"]) == expected(["hello"])
