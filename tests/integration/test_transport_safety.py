"""What goes over the wire, against servers that misbehave on purpose (support.hostile).

Redirects are refused (never followed, never turned into a GET, nothing sent to the other
origin); answers that cannot be right (wrong dimension, oversized or compressed-bomb bodies,
pathological JSON) are ResponseValidationError with the other batches' vectors attached; the
timeout bounds a whole attempt, so a drip-feeding server is cut off; a loopback http base URL
never goes through a proxy from the environment.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Callable
from typing import Any

import pytest

from aimlapi_bge import (
    AIMLAPIError,
    Embedder,
    RedirectError,
    ResponseValidationError,
    ServiceError,
)
from support.helpers import SECRET, expected
from support.hostile import Exchange, HostileServer, Received, embeddings_body, hostile_embedder

HEADER_SECRET = "hdr-S3CRET-b81f"


def embedder_for(server: HostileServer, **settings: Any) -> Embedder:
    embedder: Embedder = hostile_embedder(server, **{"timeout": 5.0, **settings})
    return embedder


def run_embed(embedder: Embedder, texts: list[str], mode: str) -> list[list[float]]:
    if mode == "sync":
        return embedder.embed(texts)
    return asyncio.run(embedder.aembed(texts))


MODES = ["sync", "async"]


# --- redirects ----------------------------------------------------------------------------


@pytest.mark.allow_hosts(["127.0.0.1", "127.0.0.2"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cross_origin", [False, True], ids=["same-origin", "cross-origin"])
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_refused_and_nothing_follows_it(
    status: int, cross_origin: bool, mode: str
) -> None:
    with HostileServer(host="127.0.0.2") as other:
        target_server: HostileServer | None = other if cross_origin else None

        def respond(request: Received, exchange: Exchange) -> None:
            if request.path.startswith("/v1/"):
                base = (target_server or server).origin
                exchange.send(status, b"", {"Location": base + "/moved/embeddings"})
            else:
                exchange.answer(request)

        with HostileServer(respond) as server:
            target = (other if cross_origin else server).origin + "/moved/embeddings"
            embedder = embedder_for(server, default_headers={"X-Team-Token": HEADER_SECRET})
            with pytest.raises(RedirectError) as caught:
                run_embed(embedder, ["alpha", "beta"], mode)

    error = caught.value
    assert isinstance(error, AIMLAPIError)
    assert error.status_code == status
    assert error.location == target
    assert target in str(error)
    assert SECRET not in str(error) and HEADER_SECRET not in str(error)
    # The first server got the one POST; nobody got a follow-up (no GET, no resent body).
    assert [(r.method, r.path) for r in server.requests] == [("POST", "/v1/embeddings")]
    assert other.requests == []
    assert other.connections == 0


# --- answers that cannot be right ----------------------------------------------------------


def second_batch_answers(
    bad: Callable[[Received, Exchange], None],
) -> Callable[[Received, Exchange], None]:
    """Answer "good" correctly and anything else with ``bad``."""

    def respond(request: Received, exchange: Exchange) -> None:
        if request.texts == ["good"]:
            exchange.answer(request)
        else:
            bad(request, exchange)

    return respond


def assert_partial(error: AIMLAPIError) -> None:
    assert error.embeddings is not None
    assert error.embeddings[0] == expected(["good"])[0]
    assert error.embeddings[1] is None
    assert error.failed_positions == [1]


def body_with_vector(values: str) -> Callable[[Received, Exchange], None]:
    def bad(request: Received, exchange: Exchange) -> None:
        exchange.send(200, b'{"data": [{"index": 0, "embedding": [' + values.encode() + b"]}]}")

    return bad


def raw_body(body: bytes) -> Callable[[Received, Exchange], None]:
    def bad(request: Received, exchange: Exchange) -> None:
        exchange.send(200, body)

    return bad


def wrong_dimension(request: Received, exchange: Exchange) -> None:
    exchange.send(200, embeddings_body(request.texts, dimension=767))


def one_value(value: str) -> str:
    return ", ".join(["0.01"] * 767 + [value])


PATHOLOGICAL = {
    "wrong-dimension": wrong_dimension,
    "deep-nesting": raw_body(b"[" * 100_000 + b"]" * 100_000),
    "deep-nesting-in-usage": raw_body(b'{"data": [], "usage": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
    "huge-integer": body_with_vector(one_value("1" + "0" * 400)),
    "booleans": body_with_vector(one_value("true")),
    "nan": body_with_vector(one_value("NaN")),
    "infinity": body_with_vector(one_value("-Infinity")),
    "string-number": body_with_vector(one_value('"0.5"')),
    "null": body_with_vector(one_value("null")),
    "not-json": raw_body(b"<html>gateway</html>"),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", sorted(PATHOLOGICAL))
def test_an_answer_that_cannot_be_right_is_a_validation_error_with_the_rest_kept(
    case: str, mode: str
) -> None:
    with HostileServer(second_batch_answers(PATHOLOGICAL[case])) as server:
        embedder = embedder_for(server, batch_size=1, max_concurrency=1)
        with pytest.raises(ResponseValidationError) as caught:
            run_embed(embedder, ["good", "bad"], mode)
    assert_partial(caught.value)


@pytest.mark.parametrize("mode", MODES)
def test_a_known_model_answered_in_another_dimension_is_refused_at_once(mode: str) -> None:
    """bge-base-en-v1.5 gives 768 values; a 384-value first answer is someone else's model."""

    def respond(request: Received, exchange: Exchange) -> None:
        exchange.send(200, embeddings_body(request.texts, dimension=384))

    with (
        HostileServer(respond) as server,
        pytest.raises(ResponseValidationError, match="768-dimensional") as caught,
    ):
        run_embed(embedder_for(server), ["first"], mode)
    assert caught.value.embeddings == [None]


@pytest.mark.parametrize("mode", MODES)
def test_an_unknown_model_keeps_the_dimension_of_its_first_answer(mode: str) -> None:
    def respond(request: Received, exchange: Exchange) -> None:
        dimension = 8 if request.texts == ["good"] else 9
        exchange.send(200, embeddings_body(request.texts, dimension=dimension))

    with HostileServer(respond) as server:
        embedder = embedder_for(server, batch_size=1, max_concurrency=1, model="acme/embed")
        with pytest.raises(ResponseValidationError, match="9-dimensional"):
            run_embed(embedder, ["good", "bad"], mode)


@pytest.mark.parametrize("mode", MODES)
def test_a_body_larger_than_any_valid_answer_is_cut_off(mode: str) -> None:
    """The server promises 500 MB and keeps writing; the client stops near its bound."""

    def endless(request: Received, exchange: Exchange) -> None:
        exchange.head(200, {"Content-Type": "application/json", "Content-Length": "500000000"})
        exchange.raw(b'{"data": [')
        chunk = b" " * 65536
        for _ in range(500_000_000 // len(chunk)):
            exchange.raw(chunk)

    with HostileServer(second_batch_answers(endless)) as server:
        embedder = embedder_for(server, batch_size=1, max_concurrency=1)
        with pytest.raises(ResponseValidationError, match="exceeds") as caught:
            run_embed(embedder, ["good", "bad"], mode)
        assert server.client_closed.wait(30)
    assert_partial(caught.value)
    # The client hung up long before 500 MB (socket buffers hold a few MB at most).
    assert server.bytes_written < 64_000_000


@pytest.mark.parametrize("mode", MODES)
def test_a_decompression_bomb_is_bounded_by_its_decoded_size(mode: str) -> None:
    bomb = gzip.compress(b'{"data": [' + b" " * 200_000_000, compresslevel=1)

    def explode(request: Received, exchange: Exchange) -> None:
        exchange.send(200, bomb, {"Content-Encoding": "gzip"})

    with HostileServer(second_batch_answers(explode)) as server:
        embedder = embedder_for(server, batch_size=1, max_concurrency=1)
        with pytest.raises(ResponseValidationError, match="exceeds") as caught:
            run_embed(embedder, ["good", "bad"], mode)
    assert_partial(caught.value)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("mode", MODES)
def test_a_compressed_answer_is_decoded(encoding: str, mode: str) -> None:
    import zlib

    def respond(request: Received, exchange: Exchange) -> None:
        body = embeddings_body(request.texts)
        packed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
        exchange.send(200, packed, {"Content-Encoding": encoding})

    with HostileServer(respond) as server:
        vectors = run_embed(embedder_for(server), ["one", "two"], mode)
    assert vectors == expected(["one", "two"])
    assert server.requests[0].headers["accept-encoding"] == "gzip, deflate"


@pytest.mark.parametrize("mode", MODES)
def test_an_encoding_not_asked_for_is_refused(mode: str) -> None:
    def respond(request: Received, exchange: Exchange) -> None:
        exchange.send(200, b"\x28\xb5\x2f\xfd", {"Content-Encoding": "zstd"})

    with HostileServer(respond) as server, pytest.raises(ResponseValidationError, match="zstd"):
        run_embed(embedder_for(server), ["one"], mode)


# --- the timeout bounds a whole attempt ---------------------------------------------------


def drip_body(request: Received, exchange: Exchange) -> None:
    exchange.head(200, {"Content-Type": "application/json", "Content-Length": "100000000"})
    exchange.drip_forever(b" ", every=0.02)


def drip_headers(request: Received, exchange: Exchange) -> None:
    exchange.raw(b"HTTP/1.1 200 OK\r\n")
    while not exchange.server.stopping.is_set():
        exchange.drip(b"X-Slow: yes\r\n", every=0.02)


def embed_in_thread(embedder: Embedder, mode: str) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append(run_embed(embedder, ["slow"], mode))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("respond", [drip_body, drip_headers], ids=["body", "headers"])
def test_a_drip_feeding_server_is_cut_off_after_the_timeout(
    respond: Callable[[Received, Exchange], None], mode: str
) -> None:
    """Each byte arrives well within the 0.5 s timeout, so a per-read timeout never fires;
    the whole-attempt deadline does. (A generous guard tells "ended" from "hung".)"""
    with HostileServer(respond) as server:
        embedder = embedder_for(server, timeout=0.5, max_retries=0)
        thread, outcome = embed_in_thread(embedder, mode)
        thread.join(30)
        assert not thread.is_alive(), "the call never ended: the timeout is per read"
        assert server.client_closed.wait(30)
    assert len(outcome) == 1 and isinstance(outcome[0], ServiceError), outcome
    assert "timed out" in str(outcome[0])
    assert len(server.requests) == 1


@pytest.mark.parametrize("mode", MODES)
def test_after_a_timed_out_attempt_the_sdk_retries(mode: str) -> None:
    def respond(request: Received, exchange: Exchange) -> None:
        if len(server.requests) == 1:
            drip_body(request, exchange)
        else:
            exchange.answer(request)

    with HostileServer(respond) as server:
        embedder = embedder_for(server, timeout=0.5, max_retries=1)
        assert run_embed(embedder, ["slow"], mode) == expected(["slow"])
    assert len(server.requests) == 2


# --- proxies ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_loopback_http_base_url_never_goes_through_a_proxy(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with HostileServer() as proxy, HostileServer() as server:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(name, proxy.origin)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        vectors = run_embed(embedder_for(server), ["via", "direct"], mode)
    assert vectors == expected(["via", "direct"])
    assert proxy.requests == [] and proxy.connections == 0
    assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"


@pytest.mark.allow_hosts(["127.0.0.1", "127.0.0.2"])
@pytest.mark.parametrize("mode", MODES)
def test_a_user_supplied_client_that_follows_redirects_does_not_follow_ours(mode: str) -> None:
    """openai.DefaultHttpxClient follows redirects by default; our requests still do not."""
    import openai

    with HostileServer(host="127.0.0.2") as other:

        def respond(request: Received, exchange: Exchange) -> None:
            exchange.send(307, b"", {"Location": other.url + "/embeddings"})

        with HostileServer(respond) as server:
            sync_client = openai.DefaultHttpxClient()
            async_client = openai.DefaultAsyncHttpxClient()
            assert sync_client.follow_redirects and async_client.follow_redirects
            embedder = embedder_for(server, http_client=sync_client, http_async_client=async_client)

            async def embed_then_close() -> None:
                try:
                    await embedder.aembed(["alpha"])
                finally:
                    await async_client.aclose()  # on the loop that used it

            with pytest.raises(RedirectError):
                if mode == "sync":
                    embedder.embed(["alpha"])
                else:
                    asyncio.run(embed_then_close())
            sync_client.close()
    assert len(server.requests) == 1
    assert other.requests == [] and other.connections == 0
