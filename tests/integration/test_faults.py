"""Transient and persistent faults, and untrustworthy answers, against the stand-in.

Request counts on the server prove what was retried: the openai SDK retries 408, 409, 429,
5xx, dropped connections, timeouts and bodies cut short, ``max_retries`` times with backoff
(``Retry-After`` honoured up to two minutes). A 2xx answer that fails validation is not retried
(the request was served and charged); it raises ResponseValidationError.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx2
import openai
import pytest

from aimlapi_bge import (
    AIMLAPIError,
    Embedder,
    RateLimitError,
    ResponseValidationError,
    ServiceError,
)
from aimlapi_bge.decoding import BatchResult
from support.helpers import FAST, embedding_inputs, expected, make
from support.standin import StandInServer

TEXTS = ["first passage", "second passage", "third passage"]
TRANSPORT_FAULTS = ["drop", "truncate", "slow"]
HANG_GUARD = 15.0  # seconds; a liveness bound far above the ~1 s these calls take


def run(embedder: Embedder, texts: list[str], mode: str) -> list[list[float]]:
    if mode == "async":
        return asyncio.run(embedder.aembed(texts))
    return embedder.embed(texts)


def slow_server(**settings: Any) -> StandInServer:
    """A stand-in whose "slow" fault outlasts the client timeout used with it."""
    return StandInServer(slow_seconds=1.5, **settings)


SLOW_TIMEOUT = {"timeout": 0.5}


@pytest.mark.parametrize(
    ("fault", "mode"),
    [
        *((fault, "sync") for fault in [429, 408, 409, 500, 503, *TRANSPORT_FAULTS]),
        *((fault, "async") for fault in [429, 503, "drop", "truncate"]),
    ],
)
def test_a_transient_fault_is_retried_then_succeeds(fault: int | str, mode: str) -> None:
    with slow_server() as server:
        embedder = make(server, max_retries=2, **(SLOW_TIMEOUT if fault == "slow" else {}))
        server.inject(fault)
        assert run(embedder, TEXTS, mode) == expected(TEXTS)
        assert server.request_count == 2  # the fault, then one retry of the same batch
        assert embedding_inputs(server) == [TEXTS, TEXTS]
        assert embedder.usage.requests == 1  # only the answered request is counted


@pytest.mark.parametrize(
    ("fault", "error_type", "status"),
    [
        (429, RateLimitError, 429),
        (408, ServiceError, 408),
        (409, ServiceError, 409),
        (500, ServiceError, 500),
        (502, ServiceError, 502),
        (503, ServiceError, 503),
        (504, ServiceError, 504),
        ("drop", ServiceError, None),
        ("truncate", ServiceError, None),
        ("slow", ServiceError, None),
    ],
)
def test_a_persistent_fault_ends_after_max_retries_plus_one_attempts(
    fault: int | str, error_type: type[AIMLAPIError], status: int | None
) -> None:
    with slow_server() as server:
        embedder = make(server, **{**FAST, **(SLOW_TIMEOUT if fault == "slow" else {})})
        server.inject(*[fault] * 5)
        started = time.monotonic()
        with pytest.raises(error_type) as caught:
            embedder.embed(TEXTS)
        assert time.monotonic() - started < HANG_GUARD
        assert server.request_count == FAST["max_retries"] + 1
        error = caught.value
        assert type(error) is error_type
        assert error.status_code == status
        assert isinstance(error.__cause__, openai.OpenAIError)
        assert "after every retry" in str(error)
        assert error.embeddings == [None, None, None]
        assert error.failed_positions == [0, 1, 2]
        if status is not None:  # the stand-in's flat error body carries a requestId
            assert error.request_id
            assert error.request_id in str(error)


async def test_a_persistent_fault_ends_the_same_way_on_the_async_path() -> None:
    with StandInServer() as server:
        embedder = make(server, **FAST)
        server.inject(*["drop"] * 5)
        with pytest.raises(ServiceError):
            await embedder.aembed(TEXTS)
        assert server.request_count == 2


def test_max_retries_zero_means_a_single_attempt(standin: StandInServer) -> None:
    standin.inject(503)
    with pytest.raises(ServiceError):
        make(standin, max_retries=0).embed(TEXTS)
    assert standin.request_count == 1


def test_retry_after_is_honoured() -> None:
    with StandInServer(retry_after=1.0) as server:
        embedder = make(server)
        server.inject(429)
        started = time.monotonic()
        assert embedder.embed(TEXTS) == expected(TEXTS)
        # The SDK's own first backoff is at most 0.5 s: waiting a full second is Retry-After's.
        assert time.monotonic() - started >= 0.95
        assert server.request_count == 2
        assert embedder.usage.rate_limited == 1


def test_a_retry_after_beyond_two_minutes_fails_at_once_instead_of_hanging() -> None:
    with StandInServer(retry_after=3600) as server:
        embedder = make(server, max_retries=4)
        server.inject(429)
        started = time.monotonic()
        with pytest.raises(RateLimitError, match="rate limited"):
            embedder.embed(TEXTS)
        assert time.monotonic() - started < HANG_GUARD
        assert server.request_count == 1


def test_a_truncated_body_never_leaks_a_raw_httpx_exception(standin: StandInServer) -> None:
    """The raw-response path (``cast_to=httpx2.Response``) reads the body inside the SDK."""
    standin.inject("truncate", "truncate")
    with pytest.raises(ServiceError, match="cut its answer short") as caught:
        make(standin, **FAST).embed(TEXTS)
    connection_error = caught.value.__cause__
    assert isinstance(connection_error, openai.APIConnectionError)
    assert isinstance(connection_error.__cause__, httpx2.RemoteProtocolError)
    assert "received" in str(caught.value)  # the transport's own account of the short body


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    ("fault", "detail"),
    [
        ("bad-count", "2 embeddings for 3 texts"),
        ("bad-dim", "dimensions"),
        ("dup-index", "appears twice"),
        ("missing-index", "no integer 'index'"),
        ("nan", "NaN"),
        ("invalid-json", "not valid JSON"),
    ],
)
def test_an_untrustworthy_answer_is_an_error_never_a_wrong_result(
    standin: StandInServer, fault: str, detail: str, mode: str
) -> None:
    standin.inject(fault)
    with pytest.raises(ResponseValidationError, match=detail) as caught:
        run(make(standin), TEXTS, mode)
    assert standin.request_count == 1  # served (and charged): not sent again
    assert caught.value.embeddings == [None, None, None]
    assert caught.value.embedded_count == 0


class _ShrinkingServer(StandInServer):
    """Answers its first request with 768 dimensions and every later one with 384."""

    def answer(self, texts: list[str], body: dict[str, Any], fault: int | str | None) -> bytes:
        if self.request_count > 1:
            self.settings.dimension = 384
        return super().answer(texts, body, fault)


def test_a_dimension_change_between_batches_of_one_call_is_an_error() -> None:
    with _ShrinkingServer() as server:
        embedder = make(server, batch_size=2, max_concurrency=1)
        texts = [f"passage {i}" for i in range(6)]
        with pytest.raises(ResponseValidationError, match="384-dimensional") as caught:
            embedder.embed(texts)
        error = caught.value
        assert error.embeddings is not None
        assert error.embeddings[:2] == expected(texts[:2])
        assert error.embeddings[2:] == [None] * 4
        assert error.failed_positions == [2, 3, 4, 5]
        assert server.request_count == 2  # the call stops at the first mixed batch


def test_a_dimension_change_between_calls_is_an_error() -> None:
    with StandInServer() as server:
        embedder = make(server)
        embedder.embed(["a passage"])
        server.settings.dimension = 384
        with pytest.raises(ResponseValidationError, match="cannot be mixed"):
            embedder.embed(["another passage"])


def test_one_batch_failing_for_good_reports_what_was_embedded() -> None:
    texts = [f"passage {i}" for i in range(20)]
    with StandInServer(fail_on_text={"passage 9": 503}) as server:
        embedder = make(server, batch_size=4, max_concurrency=1, **FAST)
        with pytest.raises(ServiceError) as caught:
            embedder.embed(texts)
    error = caught.value
    # Batches 0-3 and 4-7 succeed; 8-11 fails twice; the call stops instead of
    # hammering a failing service with the rest.
    assert error.embedded_count == 8
    assert error.failed_positions == list(range(8, 20))
    assert error.embeddings is not None
    assert error.embeddings[:8] == expected(texts[:8])
    assert "8 of 20 texts were embedded" in str(error)
    assert "failed positions: [8-19]" in str(error)
    assert server.request_count == 2 + 2


async def test_one_batch_failing_for_good_reports_what_was_embedded_async() -> None:
    texts = [f"passage {i}" for i in range(12)]
    with StandInServer(fail_on_text={"passage 5": 500}) as server:
        embedder = make(server, batch_size=4, max_concurrency=1, **FAST)
        with pytest.raises(ServiceError) as caught:
            await embedder.aembed(texts)
    assert caught.value.embedded_count == 4
    assert caught.value.failed_positions == list(range(4, 12))


def test_partial_results_keep_duplicates_aligned() -> None:
    texts = ["kept", "bad one", "kept", "other", "bad one"]
    with StandInServer(fail_on_text={"bad one": 503}) as server:
        embedder = make(server, batch_size=1, max_concurrency=1, max_retries=0)
        with pytest.raises(ServiceError) as caught:
            embedder.embed(texts)
    error = caught.value
    assert error.embeddings is not None
    assert error.embeddings[0] == expected(["kept"])[0]
    assert error.embeddings[2] == expected(["kept"])[0]
    assert error.embeddings[1] is None and error.embeddings[4] is None
    assert 1 in error.failed_positions and 4 in error.failed_positions


class _ExplodingBackend:
    """Wraps a backend; raises a non-API error for one text (a bug, or a local runtime error)."""

    name = "api"

    def __init__(self, inner: Any, poison: str) -> None:
        self._inner = inner
        self._poison = poison

    def embed_batch(self, texts: list[str]) -> BatchResult:
        raise NotImplementedError

    async def aembed_batch(self, texts: list[str]) -> BatchResult:
        if self._poison in texts:
            raise RuntimeError("boom")
        result: BatchResult = await self._inner.aembed_batch(texts)
        return result

    def close(self) -> None:
        self._inner.close()


async def test_an_unexpected_error_on_the_async_path_stops_the_other_workers() -> None:
    with StandInServer(latency=0.05) as server:
        embedder = make(server, batch_size=1, max_concurrency=2)
        embedder._backend = _ExplodingBackend(embedder._backend, "text 0")
        with pytest.raises(RuntimeError, match="boom"):
            await embedder.aembed([f"text {i}" for i in range(30)])
        await asyncio.sleep(0.4)  # time enough for a runaway worker to send several more
        assert server.request_count <= 2
