"""One instance, many callers: threads, successive event loops, nothing left behind."""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from aimlapi_bge import Embedder
from langchain_aimlapi_bge import AIMLBGEEmbeddings
from support.helpers import expected, make
from support.standin import StandInServer, count_tokens


def _texts(caller: int, call: int) -> list[str]:
    return [f"caller {caller} call {call} text {i}" for i in range(7)]


def test_one_instance_shared_by_eight_threads() -> None:
    with StandInServer(latency=0.01) as server:
        embedder = make(server, batch_size=3, max_concurrency=4)
        barrier = threading.Barrier(8)

        def caller(number: int) -> list[bool]:
            barrier.wait()
            return [
                embedder.embed(_texts(number, call)) == expected(_texts(number, call))
                for call in range(4)
            ]

        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(caller, range(8)))
        assert all(all(results) for results in outcomes)
        usage = embedder.usage
        assert usage.requests == len(server.embedding_requests) == 8 * 4 * 3
        assert usage.texts == 8 * 4 * 7
        all_texts = [t for n in range(8) for c in range(4) for t in _texts(n, c)]
        assert usage.prompt_tokens == sum(count_tokens(t) for t in all_texts)
        assert sorted(server.inputs_seen) == sorted(all_texts)
        # Eight callers share one in-flight bound: they never exceed it together.
        assert server.peak_in_flight <= 4


def test_threads_each_running_their_own_event_loop() -> None:
    with StandInServer(latency=0.01) as server:
        embeddings = AIMLBGEEmbeddings(base_url=server.url, api_key=server.api_key, batch_size=2)

        def caller(number: int) -> bool:
            texts = _texts(number, 0)
            vectors = asyncio.run(embeddings.aembed_documents(texts))
            return vectors == expected(texts) and embeddings.embed_documents(texts) == vectors

        with ThreadPoolExecutor(4) as pool:
            assert all(pool.map(caller, range(4)))
        # Each call's 7 distinct texts make 4 requests; sync and async on 4 threads.
        assert embeddings.usage.requests == 4 * 2 * 4 == len(server.embedding_requests)


def test_async_methods_work_across_successive_event_loops(standin: StandInServer) -> None:
    embedder = make(standin)
    for round_number in range(3):
        texts = [f"round {round_number}", "shared"]
        assert asyncio.run(embedder.aembed(texts)) == expected(texts)
        assert asyncio.run(embedder.aembed_query("q")) == embedder.embed_query("q")


def test_a_users_async_client_serves_only_the_first_loop(
    standin: StandInServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = openai.DefaultAsyncHttpxClient(headers={"x-probe": "user-client"})
    embedder = make(standin, http_async_client=client)

    async def embed(text: str) -> list[list[float]]:
        return await embedder.aembed([text])

    assert asyncio.run(embed("first loop")) == expected(["first loop"])
    gc.collect()  # the first loop is gone: its client must still not be used again
    assert asyncio.run(embed("second loop")) == expected(["second loop"])
    assert asyncio.run(embed("third loop")) == expected(["third loop"])
    probes = [r.headers.get("x-probe") for r in standin.embedding_requests]
    assert probes == ["user-client", None, None]
    warnings_logged = [r for r in caplog.records if "http_async_client" in r.getMessage()]
    assert len(warnings_logged) == 1


async def test_a_users_async_client_is_used_for_every_call_on_its_loop(
    standin: StandInServer,
) -> None:
    client = openai.DefaultAsyncHttpxClient(headers={"x-probe": "user-client"})
    embedder = make(standin, http_async_client=client, batch_size=1)
    await asyncio.gather(*(embedder.aembed([f"text {i}", f"more {i}"]) for i in range(3)))
    assert [r.headers.get("x-probe") for r in standin.embedding_requests] == ["user-client"] * 6
    assert not client.is_closed  # the owner closes it
    await client.aclose()


def test_successive_event_loops_leave_no_loops_or_sockets_behind(
    standin: StandInServer,
) -> None:
    embedder = make(standin)
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def embed(number: int) -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        await embedder.aembed([f"text {number}"])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()  # earlier tests' garbage is not this test's business
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for number in range(5):
            asyncio.run(embed(number))
        gc.collect()
    assert [ref() is None for ref in loops[:-1]] == [True] * 4  # no dead loop is kept
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert len(standin.embedding_requests) == 5


def test_close_keeps_the_instance_usable_and_a_users_client_open(
    standin: StandInServer,
) -> None:
    client = openai.DefaultHttpxClient(headers={"x-probe": "user-client"})
    embedder: Embedder = make(standin, http_client=client)
    embedder.embed(["before"])
    embedder.close()
    assert not client.is_closed
    standin.inject(429)
    assert embedder.embed(["after"]) == expected(["after"])
    assert [r.headers.get("x-probe") for r in standin.embedding_requests] == ["user-client"] * 3
    assert embedder.usage.rate_limited == 1  # one 429 counted once, not once per re-wrap
    own = make(standin)
    own.embed(["x"])
    own.close()
    assert own.embed(["y"]) == expected(["y"])  # reconnects on demand
