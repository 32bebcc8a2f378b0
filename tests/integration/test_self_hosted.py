"""Self-hosted OpenAI-compatible engines through ``base_url``.

The stand-in imitates text-embeddings-inference (``mode="tei"``), Infinity (``mode="infinity"``)
and OpenAI-shaped servers (``mode="openai"``): their error bodies, batch caps and paths. These
servers usually run without a key, and serve whatever dimension their model has.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from aimlapi_bge import (
    AuthenticationError,
    Embedder,
    InputTooLongError,
    InvalidInputError,
    RateLimitError,
    resolve_config,
)
from langchain_aimlapi_bge import AIMLBGEEmbeddings
from llama_index_aimlapi_bge import AIMLBGEEmbedding
from support.standin import StandInServer, standin_vector

# Self-hosted engines serve whichever model they load; a server's model and dimension agree.
MODEL_OF = {
    384: "BAAI/bge-small-en-v1.5",
    768: "BAAI/bge-base-en-v1.5",
    1024: "BAAI/bge-large-en-v1.5",
    32: "acme/embed-32",
}


def serving(dimension: int) -> dict[str, object]:
    """StandInServer settings for an engine serving the model of that dimension."""
    return {"dimension": dimension, "models": (MODEL_OF[dimension],)}


def keyless(server: StandInServer, **settings: object) -> Embedder:
    settings.setdefault("model", MODEL_OF[server.settings.dimension])
    return Embedder(resolve_config(base_url=server.url, **settings))


def expected(texts: list[str], dimension: int) -> np.ndarray:
    return np.array([standin_vector(text, dimension) for text in texts])


def test_tei_without_a_key_settles_at_its_batch_cap_of_32() -> None:
    texts = [f"passage {i} about the river seine" for i in range(100)]
    with StandInServer(mode="tei", api_key=None, max_batch=32, **serving(384)) as server:
        embedder = keyless(server)
        vectors = embedder.embed(texts)
        sizes = [len(r.body["input"]) for r in server.embedding_requests]
        assert all("authorization" not in r.headers for r in server.requests)
    np.testing.assert_allclose(vectors, expected(texts, 384))
    assert embedder.batch_size == 32
    assert sizes[0] == 100  # refused with 413 "batch size 100 > maximum allowed batch size 32"
    assert sorted(sizes[1:]) == [4, 32, 32, 32]


def test_tei_error_bodies_become_typed_errors_with_the_server_message() -> None:
    with StandInServer(mode="tei", api_key=None, max_tokens=8) as server:
        embedder = keyless(server, max_retries=0)
        with pytest.raises(InputTooLongError) as too_long:
            embedder.embed(["one two three four five six seven eight nine ten"])
        server.inject(422)
        with pytest.raises(InvalidInputError) as invalid:
            embedder.embed(["short"])
    assert too_long.value.status_code == 413
    assert "must have less than 8 tokens" in str(too_long.value.server_message)
    assert invalid.value.status_code == 422
    assert invalid.value.server_message == "Injected fault 422"


def test_infinity_serves_embeddings_without_v1_and_settles_at_2048_items() -> None:
    texts = [f"t {i}" for i in range(2100)]
    infinity = {"mode": "infinity", "path_prefix": "", "api_key": None, **serving(32)}
    with StandInServer(max_batch=2048, **infinity) as server:
        embedder = keyless(server, batch_size=4096)
        vectors = embedder.embed(texts)
        paths = {r.path for r in server.embedding_requests}
        sizes = [len(r.body["input"]) for r in server.embedding_requests]
    assert paths == {"/embeddings"}
    assert embedder.batch_size == 2048
    assert sizes == [2100, 2048, 52]  # 422 "List should have at most 2048 items", then split
    np.testing.assert_allclose(vectors, expected(texts, 32))


def test_infinity_refused_key_is_an_authentication_error() -> None:
    with StandInServer(mode="infinity", api_key="right-key") as server:
        embedder = keyless(server, api_key="wrong-key")
        with pytest.raises(AuthenticationError) as info:
            embedder.embed(["x"])
    assert info.value.status_code == 401
    assert info.value.server_message == "Unauthorized"  # FastAPI's {"detail": "Unauthorized"}
    assert "Unauthorized" in str(info.value)


@pytest.mark.parametrize("mode", ["infinity", "openai"])
def test_openai_shaped_errors_for_400_and_429(mode: str) -> None:
    with StandInServer(mode=mode, api_key=None) as server:
        embedder = keyless(server, max_retries=0)
        server.inject(400)
        with pytest.raises(InvalidInputError) as invalid:
            embedder.embed(["x"])
        server.inject(429)
        with pytest.raises(RateLimitError) as limited:
            embedder.embed(["y"])
    assert (invalid.value.status_code, invalid.value.server_message) == (400, "Injected fault 400")
    assert (limited.value.status_code, limited.value.server_message) == (429, "Injected fault 429")


def test_infinity_validation_detail_list_is_read() -> None:
    with StandInServer(mode="infinity", api_key=None) as server:
        server.inject(422)
        with pytest.raises(InvalidInputError) as info:
            keyless(server).embed(["x"])
    assert info.value.status_code == 422
    assert info.value.server_message == "Injected fault 422"  # from detail[0].msg


def test_openai_mode_settles_at_a_413_item_cap() -> None:
    texts = [f"item {i}" for i in range(25)]
    with StandInServer(mode="openai", api_key=None, max_batch=10) as server:
        embedder = keyless(server)
        vectors = embedder.embed(texts)
    assert embedder.batch_size == 10
    np.testing.assert_allclose(vectors, expected(texts, 768))


@pytest.mark.parametrize("dimension", [384, 1024])
def test_the_dimension_comes_from_the_server(dimension: int) -> None:
    with StandInServer(mode="tei", api_key=None, **serving(dimension)) as server:
        embedder = keyless(server)
        vectors = embedder.embed(["a", "b"])
        query = asyncio.run(embedder.aembed_query("c"))
    assert [len(v) for v in [*vectors, query]] == [dimension] * 3


def test_adapters_need_no_key_for_a_self_hosted_server() -> None:
    with StandInServer(mode="tei", api_key=None, **serving(384)) as server:
        langchain = AIMLBGEEmbeddings(base_url=server.url, model=MODEL_OF[384])
        llama_index = AIMLBGEEmbedding(base_url=server.url, model_name=MODEL_OF[384])
        assert len(langchain.embed_query("laura")) == 384
        assert len(llama_index.get_text_embedding("laura")) == 384
        assert all("authorization" not in r.headers for r in server.requests)
    assert langchain.api_key is None and llama_index.api_key is None


def test_a_key_given_for_the_engine_is_sent_to_it() -> None:
    with StandInServer(mode="infinity", api_key="engine-key") as server:
        vectors = keyless(server, api_key="engine-key").embed(["x"])
        (request,) = server.embedding_requests
    assert request.headers["authorization"] == "Bearer engine-key"
    assert len(vectors[0]) == 768


def test_the_environment_key_is_not_sent_to_another_host() -> None:
    config = resolve_config(
        base_url="https://tei.internal.example/v1", environ={"AIMLAPI_API_KEY": "env-key"}
    )
    assert config.api_key is None  # no AuthenticationError either: the engine needs none
    assert config.key_note is not None and "AIMLAPI_API_KEY" in config.key_note
    plain_http = resolve_config(
        base_url="http://tei.internal.example:8080", environ={"AIMLAPI_API_KEY": "env-key"}
    )
    assert plain_http.api_key is None
