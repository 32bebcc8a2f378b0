"""Throughput behaviour, checked from what the stand-in received, never from timings.

* every path keeps at most ``max_concurrency`` requests in flight, and reaches it;
* a server's batch cap (413 / 422) is learned once and kept for the instance's life;
* under a 429 storm the in-flight limit backs off, and the job finishes with fewer 429s than
  the same client without back-off;
* memory: the vectors returned plus a small constant.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import tracemalloc
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from aimlapi_bge import BGE_QUERY_INSTRUCTION, RateLimitError
from aimlapi_bge.embedder import MAX_RATE_LIMIT_RESENDS
from langchain_aimlapi_bge import AIMLBGEEmbeddings
from llama_index_aimlapi_bge import AIMLBGEEmbedding
from support.helpers import embedding_inputs, expected, make
from support.standin import StandInServer

Vectors = list[list[float]]
TEXTS = [f"passage number {i} about rivers" for i in range(24)]


def _core(server: StandInServer, mode: str) -> Callable[[list[str]], Any]:
    embedder = make(server, batch_size=2, max_concurrency=3)
    return embedder.embed if mode == "sync" else embedder.aembed


def _langchain(server: StandInServer, mode: str) -> Callable[[list[str]], Any]:
    model = AIMLBGEEmbeddings(
        base_url=server.url, api_key=server.api_key, batch_size=2, max_concurrency=3
    )
    return model.embed_documents if mode == "sync" else model.aembed_documents


def _llama_index(server: StandInServer, mode: str) -> Callable[[list[str]], Any]:
    model = AIMLBGEEmbedding(
        base_url=server.url, api_key=server.api_key, embed_batch_size=2, max_concurrency=3
    )
    return model.get_text_embedding_batch if mode == "sync" else model.aget_text_embedding_batch


def _run(call: Callable[[list[str]], Any], texts: list[str]) -> Vectors:
    result = call(texts)
    if isinstance(result, Awaitable):
        return asyncio.run(_await(result))
    vectors: Vectors = result
    return vectors


async def _await(awaitable: Awaitable[Vectors]) -> Vectors:
    return await awaitable


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("factory", [_core, _langchain, _llama_index], ids=lambda f: f.__name__)
def test_every_path_saturates_but_never_exceeds_max_concurrency(
    factory: Callable[[StandInServer, str], Callable[[list[str]], Any]], mode: str
) -> None:
    with StandInServer(gate=3) as server:
        assert _run(factory(server, mode), TEXTS) == expected(TEXTS)
        assert server.peak_in_flight == 3  # 12 batches of 2, three at a time
        assert [len(batch) for batch in embedding_inputs(server)] == [2] * 12


async def test_concurrent_async_callers_share_one_bound() -> None:
    with StandInServer(gate=3) as server:
        langchain = AIMLBGEEmbeddings(
            base_url=server.url, api_key=server.api_key, max_concurrency=3
        )
        llama = AIMLBGEEmbedding(base_url=server.url, api_key=server.api_key, max_concurrency=3)
        queries = await asyncio.gather(*(langchain.aembed_query(t) for t in TEXTS[:9]))
        texts = await asyncio.gather(*(llama.aget_text_embedding(t) for t in TEXTS[9:18]))
        assert queries == expected([BGE_QUERY_INSTRUCTION + t for t in TEXTS[:9]])
        assert texts == expected(TEXTS[9:18])
        assert server.peak_in_flight == 3


def test_concurrent_threads_share_one_bound() -> None:
    with StandInServer(gate=3) as server:
        model = AIMLBGEEmbeddings(base_url=server.url, api_key=server.api_key, max_concurrency=3)
        with ThreadPoolExecutor(9) as pool:
            vectors = list(pool.map(lambda text: model.embed_documents([text])[0], TEXTS[:9]))
        assert vectors == expected(TEXTS[:9])
        assert server.peak_in_flight == 3


@pytest.mark.parametrize(
    "mode",
    [
        "aimlapi",  # 413 "Request entity too large: at most 32 items"
        "tei",  # 413 "batch size 128 > maximum allowed batch size 32"
        "infinity",  # 422 "List should have at most 32 items after validation"
    ],
)
def test_a_batch_cap_is_learned_once_and_kept(mode: str) -> None:
    texts = [f"text {i}" for i in range(200)]
    with StandInServer(mode=mode, max_batch=32, api_key=None) as server:
        embedder = make(server, batch_size=128, max_concurrency=4)
        assert embedder.embed(texts) == expected(texts)
        assert embedder.batch_size == 32
        sizes = [len(batch) for batch in embedding_inputs(server)]
        # Only the two first batches (128 + 72) were sent before the server's answer came.
        assert sorted(size for size in sizes if size > 32) == [72, 128]
        assert sorted(size for size in sizes if size <= 32) == [8, 32, 32, 32, 32, 32, 32]
        server.reset()
        more = [f"more {i}" for i in range(100)]
        assert asyncio.run(embedder.aembed(more)) == expected(more)
        assert sorted(len(batch) for batch in embedding_inputs(server)) == [4, 32, 32, 32]


def test_a_refusal_that_states_no_limit_halves_the_batch(standin: StandInServer) -> None:
    embedder = make(standin, batch_size=8, max_concurrency=1)
    standin.inject(413)  # "Injected fault 413": no number to learn from
    texts = [f"text {i}" for i in range(8)]
    assert embedder.embed(texts) == expected(texts)
    assert [len(batch) for batch in embedding_inputs(standin)] == [8, 4, 4]
    assert embedder.batch_size == 4
    standin.reset()
    embedder.embed([f"other {i}" for i in range(8)])
    assert [len(batch) for batch in embedding_inputs(standin)] == [4, 4]


def _storm(mode: str, *, back_off: bool, max_retries: int) -> tuple[int, int, int]:
    """Embed 40 batches against a server that takes 2 requests at once, from a client that
    would send 8; return (429s the server sent, 429s the client saw, final limit)."""
    texts = [f"storm text {i}" for i in range(80)]
    with StandInServer(latency=0.05, max_in_flight=2, retry_after=0.1) as server:
        embedder = make(server, batch_size=2, max_concurrency=8, max_retries=max_retries)
        if not back_off:  # the control: the same client, deaf to 429s
            embedder.in_flight_limit.on_rate_limited = lambda: None  # type: ignore[method-assign]
        vectors = embedder.embed(texts) if mode == "sync" else asyncio.run(embedder.aembed(texts))
        assert vectors == expected(texts)
        return (
            server.rejected_in_flight,
            embedder.usage.rate_limited,
            embedder.in_flight_limit.limit,
        )


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_429_storm_backs_off_and_finishes(mode: str) -> None:
    rejected, seen, limit = _storm(mode, back_off=True, max_retries=4)
    assert rejected == seen > 0
    assert limit < 8
    # Without back-off the same job burns its retries: with the default 4 it usually fails
    # with RateLimitError; with 30 it finishes, having drawn many more 429s.
    control_rejected, _, control_limit = _storm(mode, back_off=False, max_retries=30)
    assert control_limit == 8
    assert control_rejected > 2 * rejected


def test_a_server_that_always_refuses_still_ends_in_rate_limit_error() -> None:
    with StandInServer(max_in_flight=0, retry_after=0.01) as server:
        embedder = make(server, batch_size=1, max_concurrency=4, max_retries=1)
        with pytest.raises(RateLimitError) as caught:
            embedder.embed([f"t{i}" for i in range(8)])
        assert caught.value.embedded_count == 0
        assert embedder.in_flight_limit.limit == 1


def test_a_batch_still_refused_while_others_get_through_is_resent_a_bounded_number_of_times() -> (
    None
):
    with StandInServer(fail_on_text={"unlucky": 429}, retry_after=0.01) as server:
        embedder = make(server, batch_size=1, max_concurrency=1, max_retries=0)
        with pytest.raises(RateLimitError) as caught:
            embedder.embed(["fine", "also fine", "unlucky"])
        assert caught.value.failed_positions == [2]
        assert caught.value.embedded_count == 2
        sent = embedding_inputs(server)
        assert sent.count(["unlucky"]) == 1 + MAX_RATE_LIMIT_RESENDS


def test_memory_is_the_vectors_plus_a_small_constant() -> None:
    texts = [f"short text number {i}" for i in range(5000)]
    with StandInServer(dimension=64, record=False, models=("acme/embed-64",)) as server:
        embedder = make(server, model="acme/embed-64")
        embedder.embed(texts)  # the server computes its vectors outside the measurement
        gc.collect()
        tracemalloc.start()
        try:
            vectors = embedder.embed(texts)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    result = sum(sys.getsizeof(v) + sum(map(sys.getsizeof, v)) for v in vectors)
    assert vectors == expected(texts, 64)
    # About 1.3x here: the in-flight bodies, the server's own buffers (same process) and the
    # per-text bookkeeping. Keeping every body, or a copy of the result, would pass 1.6x.
    assert peak < 1.5 * result, (peak, result)
