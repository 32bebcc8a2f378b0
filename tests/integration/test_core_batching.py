"""Core behaviour checked from what the stand-in server received."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from aimlapi_bge import BGE_QUERY_INSTRUCTION, AuthenticationError, resolve_config
from support.helpers import expected, make
from support.standin import StandInServer, count_tokens


def test_batches_never_exceed_batch_size(standin: StandInServer) -> None:
    texts = [f"passage number {i}" for i in range(10)]
    vectors = make(standin, batch_size=3).embed(texts)
    sizes = sorted(len(r.body["input"]) for r in standin.embedding_requests)
    assert sizes == [1, 3, 3, 3]
    assert vectors == expected(texts)


def test_vectors_are_placed_by_index_not_response_order(standin: StandInServer) -> None:
    assert standin.settings.shuffle  # the stand-in answers in reverse order
    texts = ["alpha", "beta", "gamma", "delta"]
    vectors = make(standin).embed(texts)
    assert vectors == expected(texts)
    assert all(abs(np.linalg.norm(v) - 1) < 1e-9 for v in vectors)


def test_only_model_and_input_are_sent_as_plain_strings(standin: StandInServer) -> None:
    make(standin).embed(["Laura is a DJ."])
    (request,) = standin.embedding_requests
    assert request.body == {"model": "BAAI/bge-base-en-v1.5", "input": ["Laura is a DJ."]}
    assert request.headers["authorization"] == f"Bearer {standin.api_key}"


def test_identical_texts_are_embedded_once(standin: StandInServer) -> None:
    texts = ["same", "other", "same", "same", "other", "third"]
    vectors = make(standin).embed(texts)
    assert sorted(standin.inputs_seen) == ["other", "same", "third"]
    assert vectors == expected(texts)
    vectors[0].append(1.0)  # duplicates are independent lists
    assert len(vectors[2]) == 768


def test_sync_path_runs_batches_concurrently_within_the_bound() -> None:
    with StandInServer(gate=3) as server:
        embedder = make(server, batch_size=2, max_concurrency=3)
        embedder.embed([f"text {i}" for i in range(24)])
        assert server.peak_in_flight == 3
        assert len(server.embedding_requests) == 12


def test_async_path_runs_batches_concurrently_within_the_bound() -> None:
    with StandInServer(gate=4) as server:
        embedder = make(server, batch_size=2, max_concurrency=4)
        asyncio.run(embedder.aembed([f"text {i}" for i in range(40)]))
        assert server.peak_in_flight == 4
        assert len(server.embedding_requests) == 20


def test_usage_totals_match_what_the_server_charged(standin: StandInServer) -> None:
    texts = [f"a short passage about topic {i}" for i in range(7)]
    embedder = make(standin, batch_size=3)
    embedder.embed(texts)
    embedder.embed_query("what topic?")
    usage = embedder.usage
    assert usage.requests == 4
    assert usage.texts == 8
    query = BGE_QUERY_INSTRUCTION + "what topic?"
    assert usage.prompt_tokens == sum(count_tokens(t) for t in [*texts, query])
    batches = [r.body["input"] for r in standin.embedding_requests]
    assert usage.credits_used == sum(standin.credits_for(b) for b in batches)


def test_usage_is_exact_under_concurrent_callers(standin: StandInServer) -> None:
    embedder = make(standin, batch_size=1, max_concurrency=4)

    async def many() -> None:
        await asyncio.gather(*(embedder.aembed([f"t{i}-{j}" for j in range(5)]) for i in range(6)))

    asyncio.run(many())
    assert embedder.usage.requests == 30 == len(standin.embedding_requests)


def test_query_instruction_goes_on_queries_only(standin: StandInServer) -> None:
    embedder = make(standin)
    embedder.embed(["a passage"])
    embedder.embed_query("a question")
    assert standin.inputs_seen == ["a passage", BGE_QUERY_INSTRUCTION + "a question"]


@pytest.mark.parametrize(
    ("model", "instruction", "sent"),
    [
        ("BAAI/bge-small-en-v1.5", None, BGE_QUERY_INSTRUCTION + "q"),
        ("text-embedding-3-small", None, "q"),
        ("BAAI/bge-m3", None, "q"),
        ("BAAI/bge-base-en-v1.5", "", "q"),
        ("text-embedding-3-small", "query: ", "query: q"),
    ],
)
def test_query_instruction_defaults_by_model(
    model: str, instruction: str | None, sent: str
) -> None:
    dimension = 384 if "small" in model else 768
    with StandInServer(models=(model,), dimension=dimension) as server:
        make(server, model=model, query_instruction=instruction).embed_query("q")
        assert server.inputs_seen == [sent]


def test_dimension_comes_from_the_server() -> None:
    with StandInServer(dimension=384, models=("acme/embed",)) as server:
        assert len(make(server, model="acme/embed").embed_query("q")) == 384


def test_async_methods_survive_successive_event_loops(standin: StandInServer) -> None:
    embedder = make(standin)
    first = asyncio.run(embedder.aembed(["one"]))
    second = asyncio.run(embedder.aembed(["one", "two"]))
    assert first[0] == second[0]


def test_config_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIML_API_KEY", "sdk-key")
    assert resolve_config().api_key.get_secret_value() == "sdk-key"  # type: ignore[union-attr]
    monkeypatch.setenv("AIMLAPI_API_KEY", "main-key")
    assert resolve_config().api_key.get_secret_value() == "main-key"  # type: ignore[union-attr]
    assert resolve_config(api_key="arg").api_key.get_secret_value() == "arg"  # type: ignore[union-attr]
    assert resolve_config().base_url == "https://api.aimlapi.com/v1"
    monkeypatch.setenv("AIMLAPI_BASE_URL", "https://eu.aimlapi.com/v1/")
    assert resolve_config().base_url == "https://eu.aimlapi.com/v1"
    assert resolve_config(base_url="http://127.0.0.1:9/v1").base_url == "http://127.0.0.1:9/v1"


def test_missing_key_names_the_variable() -> None:
    with pytest.raises(AuthenticationError, match="AIMLAPI_API_KEY"):
        resolve_config()
