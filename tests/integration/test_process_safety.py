"""An Embedder across processes and lifecycles: forked children, Ctrl-C, close, pickling.

Servers come from support.hostile; every wait is on a server-side event or gate, with a
generous bound only as a guard against hanging forever.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import warnings
from typing import Any

import pytest

from aimlapi_bge import Embedder, ServiceError, resolve_config
from support.helpers import SECRET, expected, routed_client
from support.hostile import Exchange, HostileServer, Received, hostile_embedder
from support.standin import StandInServer

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

_EMBEDDER: Embedder | None = None  # inherited by forked children


def embedder_for(server: HostileServer, **settings: Any) -> Embedder:
    embedder: Embedder = hostile_embedder(server, **{"timeout": 10.0, **settings})
    return embedder


def child_texts(number: int) -> list[str]:
    return [f"child {number} text {i}" for i in range(6)]


def _embed_in_child(args: tuple[int, str]) -> list[list[float]]:
    number, mode = args
    assert _EMBEDDER is not None
    texts = child_texts(number)
    if mode == "sync":
        return _EMBEDDER.embed(texts)
    return asyncio.run(_EMBEDDER.aembed(texts))


@pytest.fixture
def fork_context() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        yield multiprocessing.get_context("fork")


# --- fork ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_forked_children_embed_with_the_parents_instance(mode: str, fork_context: Any) -> None:
    global _EMBEDDER
    with HostileServer() as server:
        _EMBEDDER = embedder_for(server, batch_size=2, max_concurrency=2)
        parent_texts = ["parent one", "parent two", "parent three"]
        # The parent embeds first, so pooled keep-alive connections exist at fork time.
        if mode == "sync":
            assert _EMBEDDER.embed(parent_texts) == expected(parent_texts)
        else:
            assert asyncio.run(_EMBEDDER.aembed(parent_texts)) == expected(parent_texts)
        with fork_context.Pool(4) as pool:
            results = pool.map(_embed_in_child, [(n, mode) for n in range(4)])
        for number, vectors in enumerate(results):
            assert vectors == expected(child_texts(number))
        # The parent still works afterwards, on its own connections.
        assert _EMBEDDER.embed(["parent again"]) == expected(["parent again"])
        _EMBEDDER.close()
    _EMBEDDER = None


def _child_embeds(mode: str, queue: Any) -> None:
    try:
        queue.put(_embed_in_child((9, mode)))
    except BaseException as exc:
        queue.put(repr(exc))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_fork_while_requests_are_in_flight_leaves_the_child_working(
    mode: str, fork_context: Any
) -> None:
    """The parent's one in-flight slot is taken (max_concurrency=1) and its connection busy
    when the child is forked; the child must not inherit either."""
    global _EMBEDDER
    release = threading.Event()

    def respond(request: Received, exchange: Exchange) -> None:
        if request.texts[0].startswith("held"):
            release.wait(60)
        exchange.answer(request)

    with HostileServer(respond) as server:
        _EMBEDDER = embedder_for(server, max_concurrency=1)
        parent_outcome: list[Any] = []

        def parent_call() -> None:
            if mode == "sync":
                parent_outcome.append(_EMBEDDER.embed(["held one"]))  # type: ignore[union-attr]
            else:
                parent_outcome.append(asyncio.run(_EMBEDDER.aembed(["held one"])))  # type: ignore[union-attr]

        thread = threading.Thread(target=parent_call, daemon=True)
        thread.start()
        try:
            assert server.wait_for(1)
            queue = fork_context.Queue()
            child = fork_context.Process(target=_child_embeds, args=(mode, queue))
            child.start()
            result = queue.get(timeout=60)
            child.join(30)
        finally:
            release.set()
        thread.join(30)
    assert result == expected(child_texts(9))
    assert child.exitcode == 0
    assert parent_outcome == [expected(["held one"])]
    _EMBEDDER = None


# --- Ctrl-C -------------------------------------------------------------------------------


def test_ctrl_c_interrupts_a_sync_embed_at_once_and_nothing_new_is_sent() -> None:
    """Two requests are held by the server; SIGINT arrives; embed must raise at once (not
    after the held requests), and when the held requests then fail with 503 the SDK's
    retries must not send anything new."""
    release = threading.Event()
    lock = threading.Lock()

    def respond(request: Received, exchange: Exchange) -> None:
        with lock:
            if len(server.requests) == 2:
                os.kill(os.getpid(), signal.SIGINT)
        release.wait(60)
        exchange.send(503, b'{"message": "busy"}', {"Retry-After": "0"})

    with HostileServer(respond) as server:
        embedder = embedder_for(server, batch_size=1, max_concurrency=2, max_retries=3)
        try:
            with pytest.raises(KeyboardInterrupt):
                embedder.embed([f"text {i}" for i in range(8)])
            seen_at_interrupt = len(server.requests)
            assert not release.is_set()  # raised while both requests were still held
        finally:
            release.set()
        for thread in threading.enumerate():
            if thread.name.startswith("aimlapi-bge-"):
                thread.join(30)
                assert not thread.is_alive()
    assert seen_at_interrupt == 2
    assert len(server.requests) == 2  # no retry, no new batch after the interrupt


def test_cancelling_an_async_embed_sends_nothing_new() -> None:
    """The asyncio counterpart of Ctrl-C: the task is cancelled while two requests are held;
    when they then fail with 503, nothing is retried or sent."""
    release = threading.Event()
    held = threading.Event()

    def respond(request: Received, exchange: Exchange) -> None:
        if len(server.requests) >= 2:
            held.set()
        release.wait(60)
        exchange.send(503, b'{"message": "busy"}', {"Retry-After": "0"})

    async def main(embedder: Embedder) -> None:
        task = asyncio.create_task(embedder.aembed([f"text {i}" for i in range(8)]))
        await asyncio.to_thread(held.wait, 60)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
        await asyncio.sleep(0)

    with HostileServer(respond) as server:
        embedder = embedder_for(server, batch_size=1, max_concurrency=2, max_retries=1)
        try:
            asyncio.run(main(embedder))
        finally:
            release.set()
        # A later call's requests (1 + 1 retry, both 503) come after the held ones, with no
        # resend of the cancelled batches in between or after.
        with pytest.raises(ServiceError):
            embedder.embed(["after"])
    texts = [r.texts for r in server.requests]
    assert len(texts) == 4 and texts[2:] == [["after"]] * 2, texts


# --- close --------------------------------------------------------------------------------


def test_with_closes_the_connections() -> None:
    with HostileServer() as server:
        with embedder_for(server) as embedder:
            assert embedder.embed(["a"]) == expected(["a"])
            assert not server.client_closed.is_set()
        assert server.client_closed.wait(30)


def test_async_with_closes_the_connections_of_the_loop() -> None:
    async def main(server: HostileServer) -> None:
        async with embedder_for(server) as embedder:
            assert await embedder.aembed(["a"]) == expected(["a"])
            assert not server.client_closed.is_set()
        await asyncio.to_thread(server.client_closed.wait, 30)
        assert server.client_closed.is_set()

    with HostileServer() as server:
        asyncio.run(main(server))


def test_close_reaches_the_async_clients_of_loops_still_open() -> None:
    with HostileServer() as server:
        embedder = embedder_for(server)
        loop = asyncio.new_event_loop()
        try:
            assert loop.run_until_complete(embedder.aembed(["a"])) == expected(["a"])
            embedder.close()
            assert server.client_closed.wait(30)
        finally:
            loop.close()


def test_no_resource_warning_at_exit_without_close(tmp_path: Any) -> None:
    """A script that embeds (sync and async) and exits without closing leaves no unclosed
    socket behind."""
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, sys
            from aimlapi_bge import Embedder, ServiceError, resolve_config
            embedder = Embedder(resolve_config(base_url=sys.argv[1], api_key="k"))
            embedder.embed(["one", "two"])
            asyncio.run(embedder.aembed(["three"]))
            loop = asyncio.new_event_loop()
            loop.run_until_complete(embedder.aembed(["four"]))
            loop.run_until_complete(loop.shutdown_asyncgens())  # what asyncio.run does
            loop.close()
            print("done")
            """
        )
    )
    with HostileServer() as server:
        done = subprocess.run(
            [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", str(script), server.url],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "done"
    assert "ResourceWarning" not in done.stderr and "unclosed" not in done.stderr, done.stderr


# --- pickling and copying -----------------------------------------------------------------


@pytest.mark.parametrize(
    "duplicate", [lambda e: pickle.loads(pickle.dumps(e)), copy.deepcopy, copy.copy]
)
def test_an_embedder_pickles_and_copies_by_configuration(duplicate: Any) -> None:
    with HostileServer() as server:
        original = embedder_for(server, batch_size=3)
        assert original.embed(["warm"]) == expected(["warm"])
        twin = duplicate(original)
        assert twin is not original
        assert twin.config == original.config
        assert twin.batch_size == 3
        assert twin.usage.requests == 0
        assert twin._backend._sync_client is None  # type: ignore[attr-defined]
        assert twin._lock is not original._lock
        assert twin.embed(["copied"]) == expected(["copied"])
        assert asyncio.run(twin.aembed(["async copy"])) == expected(["async copy"])
        assert original.usage.requests == 1
        original.close()
        twin.close()


def test_a_copy_drops_a_user_supplied_http_client_with_a_warning() -> None:
    with StandInServer() as server:
        client = routed_client(server)
        original = Embedder(
            resolve_config(
                base_url=server.url, api_key=server.api_key, http_client=client, max_retries=0
            )
        )
        with pytest.warns(UserWarning, match="http_client"):
            twin = pickle.loads(pickle.dumps(original))
        assert twin.config.http_client is None
        assert original.config.http_client is client
        assert twin.embed(["x"]) == expected(["x"])
        client.close()
        twin.close()
    gc.collect()


def test_the_adapters_close_their_connections() -> None:
    from langchain_aimlapi_bge import AIMLBGEEmbeddings
    from llama_index_aimlapi_bge import AIMLBGEEmbedding

    for build in (AIMLBGEEmbeddings, AIMLBGEEmbedding):
        with HostileServer() as server:
            adapter: Any = build(base_url=server.url, api_key=SECRET)
            assert len(adapter.embed_query("q") if build is AIMLBGEEmbeddings
                       else adapter.get_query_embedding("q")) == 768  # fmt: skip
            assert not server.client_closed.is_set()
            adapter.close()
            assert server.client_closed.wait(30)
