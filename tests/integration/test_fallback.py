"""``fallback="local"``: a refused model or an unreachable API switches to the local model.

The stand-in plays the API; the tiny model built by the tests plays bge-base-en-v1.5 in-process.
"""

from __future__ import annotations

import asyncio
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from aimlapi_bge import (
    AuthenticationError,
    Embedder,
    FallbackWarning,
    InvalidInputError,
    ModelNotAvailableError,
    resolve_config,
)
from langchain_aimlapi_bge import AIMLBGEEmbeddings
from support.isolation import import_error_with
from support.standin import StandInServer, standin_vector
from support.tiny_model import HIDDEN, reference_vectors

TEXTS = ["Laura is a DJ.", "the cat sat on the mat", "Laura is a DJ.", "paris in france"]


def with_fallback(base_url: str, model_dir: Path, **settings: object) -> Embedder:
    settings.setdefault("api_key", "standin-key")
    return Embedder(
        resolve_config(
            base_url=base_url, fallback="local", local_model_path=str(model_dir), **settings
        )
    )


@pytest.fixture
def fallback_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Every FallbackWarning raised in the test, duplicates included."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def fallbacks(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, FallbackWarning)]


def assert_local(vectors: list[list[float]], model_dir: Path, texts: list[str]) -> None:
    np.testing.assert_allclose(np.array(vectors), reference_vectors(model_dir, texts), atol=1e-5)


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_refused_model_switches_once_and_later_calls_stay_local(
    tiny_model_dir: Path, fallback_warnings: list[warnings.WarningMessage]
) -> None:
    with StandInServer(models=("text-embedding-3-small",)) as server:  # bge no longer served
        embedder = with_fallback(server.url, tiny_model_dir)
        assert_local(embedder.embed(TEXTS), tiny_model_dir, TEXTS)
        assert embedder.backend == "local"
        assert server.request_count == 1
        (message,) = fallbacks(fallback_warnings)
        assert "deprecated" in message and "fallback='local'" in message
        more = ["who is laura?", "the dog runs"]
        assert_local(embedder.embed(more), tiny_model_dir, more)
        asyncio.run(embedder.aembed(more))
        embedder.embed_query("laura")
        assert server.request_count == 1  # never asked again
        assert len(fallbacks(fallback_warnings)) == 1
        assert embedder.usage.credits_used == 0.0
        assert embedder.usage.requests == 4


def test_concurrent_refusals_warn_once_and_keep_every_position(
    tiny_model_dir: Path, fallback_warnings: list[warnings.WarningMessage]
) -> None:
    texts = [f"record {i} plays music" for i in range(12)]
    with StandInServer(models=(), latency=0.05) as server:
        embedder = with_fallback(server.url, tiny_model_dir, batch_size=1, max_concurrency=4)
        assert_local(embedder.embed(texts), tiny_model_dir, texts)
        assert 1 <= server.request_count <= 4  # only the requests already in flight
    assert len(fallbacks(fallback_warnings)) == 1


def test_unreachable_server_switches_after_its_retries(
    tiny_model_dir: Path, fallback_warnings: list[warnings.WarningMessage]
) -> None:
    url = closed_port_url()
    embedder = with_fallback(url, tiny_model_dir, max_retries=0)
    assert_local(embedder.embed(TEXTS), tiny_model_dir, TEXTS)
    (message,) = fallbacks(fallback_warnings)
    assert url in message and "Connection refused" in message


def test_persistent_5xx_switches_only_when_the_retries_are_spent(
    tiny_model_dir: Path, fallback_warnings: list[warnings.WarningMessage]
) -> None:
    with StandInServer(retry_after=0.01) as server:
        server.inject(503, 503)
        embedder = with_fallback(server.url, tiny_model_dir, max_retries=1)
        assert_local(embedder.embed(TEXTS), tiny_model_dir, TEXTS)
        assert server.request_count == 2  # the first try and one retry
    (message,) = fallbacks(fallback_warnings)
    assert "503" in message


def test_a_transient_5xx_does_not_switch(
    tiny_model_dir: Path, fallback_warnings: list[warnings.WarningMessage]
) -> None:
    with StandInServer(retry_after=0.01) as server:
        server.inject(503)
        embedder = with_fallback(server.url, tiny_model_dir, max_retries=1)
        vectors = embedder.embed(["Laura is a DJ."])
        assert embedder.backend == "api"
    np.testing.assert_allclose(vectors[0], standin_vector("Laura is a DJ."))
    assert fallbacks(fallback_warnings) == []


def test_api_results_and_local_results_stay_aligned_across_the_switch(
    tiny_model_dir: Path, fallback_warnings: list[warnings.WarningMessage]
) -> None:
    with StandInServer(dimension=HIDDEN) as server:
        embedder = with_fallback(server.url, tiny_model_dir)
        first = ["Laura is a DJ.", "paris in france"]
        served = embedder.embed(first)
        np.testing.assert_allclose(served, [standin_vector(t, HIDDEN) for t in first])
        server.settings.models = ()  # the service retires the model
        assert_local(embedder.embed(TEXTS), tiny_model_dir, TEXTS)
        assert embedder.usage.texts == 2 + 3  # duplicates embedded once
    assert len(fallbacks(fallback_warnings)) == 1


def test_async_path_falls_back_too(
    tiny_model_dir: Path, fallback_warnings: list[warnings.WarningMessage]
) -> None:
    with StandInServer(models=()) as server:
        embedder = with_fallback(server.url, tiny_model_dir, batch_size=2)
        assert_local(asyncio.run(embedder.aembed(TEXTS)), tiny_model_dir, TEXTS)
    assert len(fallbacks(fallback_warnings)) == 1


def test_langchain_adapter_with_fallback(
    tiny_model_dir: Path, fallback_warnings: list[warnings.WarningMessage]
) -> None:
    with StandInServer(models=()) as server:
        embeddings = AIMLBGEEmbeddings(
            base_url=server.url,
            api_key=server.api_key,
            fallback="local",
            local_model_path=str(tiny_model_dir),
        )
        assert_local(embeddings.embed_documents(TEXTS), tiny_model_dir, TEXTS)
    assert embeddings.embedder.backend == "local"
    assert len(fallbacks(fallback_warnings)) == 1


def test_without_fallback_a_refused_model_is_an_error_naming_the_ways_out(
    tiny_model_dir: Path,
) -> None:
    with StandInServer(models=()) as server:
        embedder = Embedder(resolve_config(base_url=server.url, api_key=server.api_key))
        with pytest.raises(ModelNotAvailableError, match="backend='local'"):
            embedder.embed(TEXTS)
        assert embedder.backend == "api"


def test_a_refused_key_does_not_switch(
    tiny_model_dir: Path, fallback_warnings: list[warnings.WarningMessage]
) -> None:
    with StandInServer() as server:
        embedder = with_fallback(server.url, tiny_model_dir, api_key="wrong-key")
        with pytest.raises(AuthenticationError):
            embedder.embed(TEXTS)
        assert embedder.backend == "api"
    assert fallbacks(fallback_warnings) == []


def test_rejected_input_does_not_switch(
    tiny_model_dir: Path, fallback_warnings: list[warnings.WarningMessage]
) -> None:
    with StandInServer(max_tokens=5) as server:
        embedder = with_fallback(server.url, tiny_model_dir)
        with pytest.raises(InvalidInputError):
            embedder.embed(["a text well over five tokens long"])
        assert embedder.backend == "api"
    assert fallbacks(fallback_warnings) == []


def test_fallback_without_the_local_extra_fails_at_construction() -> None:
    message = import_error_with(
        ["fastembed"],
        """
        from aimlapi_bge import Embedder, resolve_config
        Embedder(resolve_config(base_url='http://127.0.0.1:9/v1', fallback='local'))
        """,
    )
    assert "fallback='local'" in message
    assert "pip install 'aimlapi-bge[local]'" in message
