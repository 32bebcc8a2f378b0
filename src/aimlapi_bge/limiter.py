"""An in-flight limit that backs off under rate limiting (AIMD), for threads and for asyncio.

The limit starts at ``max_concurrency``. A 429 from the server (retried ones included,
reported by the HTTP client's response hook) multiplies it by ``DECREASE``; the answers still
due to requests sent under the old limit are then ignored (one decrease per window, as TCP
does once per round trip), so one burst of 429s counts once and a storm that persists lowers
it again. Each success adds ``1/limit`` (about one slot per round of requests), ``CAUTION``
times less near the level that last drew a 429. A job under a sustained rate limit therefore
settles near what the server allows instead of burning its retries; the embedder also resends
(a bounded number of times) a batch whose retries ran out while it had overcommitted or while
the rest of the call was getting through.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress

__all__ = ["AdaptiveLimit"]

#: The limit is multiplied by this on a 429 (0.7 rather than TCP's 0.5: limits here are small
#: integers, and halving 3 gives 1).
DECREASE = 0.7
#: Near the level that last drew a 429, the limit grows this many times more slowly: probing
#: costs a 429, which idles a slot for the server's whole ``Retry-After``.
CAUTION = 8


class AdaptiveLimit:
    """Thread-safe AIMD limit shared by the sync (thread) and async (task) paths."""

    def __init__(self, max_limit: int) -> None:
        self.max_limit = max_limit
        self._limit = float(max_limit)
        self._stale_answers = 0  # answers to requests sent before the last decrease
        self._ceiling = float("inf")  # the limit that last drew a 429
        self._in_flight = 0
        self.peak_in_flight = 0
        self._condition = threading.Condition()
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def limit(self) -> int:
        """The current number of requests allowed in flight."""
        return max(1, int(self._limit))

    def on_rate_limited(self) -> None:
        """A 429 arrived: multiply the limit by ``DECREASE``, unless it answers a request sent
        before the last decrease (those say nothing about the new limit)."""
        with self._condition:
            if self._stale_answers > 0:
                self._stale_answers -= 1
                return
            self._ceiling = self._limit
            self._limit = max(1.0, self._limit * DECREASE)
            self._stale_answers = max(0, self._in_flight - 1)

    def on_success(self) -> None:
        """A request succeeded: grow the limit by 1/limit, up to the maximum."""
        with self._condition:
            if self._stale_answers > 0:
                self._stale_answers -= 1
            if self._limit < self.max_limit:
                step = 1 / self._limit
                if self._limit + 1 >= self._ceiling:
                    step /= CAUTION
                self._limit = min(float(self.max_limit), self._limit + step)
                self._wake()

    def _try_enter(self) -> int:
        """Take a slot if one is free: the number now in flight, or 0."""
        if self._in_flight < self.limit:
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            return self._in_flight
        return 0

    def _leave(self) -> None:
        with self._condition:
            self._in_flight -= 1
            self._wake()

    def _wake(self) -> None:
        self._condition.notify_all()
        waiters, self._async_waiters = self._async_waiters, []
        for loop, future in waiters:
            if not future.done():
                loop.call_soon_threadsafe(_resolve, future)

    @contextmanager
    def slot(self) -> Iterator[int]:
        """Hold one in-flight slot (blocking the thread until one is free).

        Yields how many requests were in flight once this one entered (itself included).
        """
        with self._condition:
            while not (crowd := self._try_enter()):
                self._condition.wait(timeout=1.0)
        try:
            yield crowd
        finally:
            self._leave()

    @asynccontextmanager
    async def aslot(self) -> AsyncIterator[int]:
        """Hold one in-flight slot (suspending the task until one is free); yields as
        :meth:`slot` does."""
        loop = asyncio.get_running_loop()
        while True:
            with self._condition:
                if crowd := self._try_enter():
                    break
                future: asyncio.Future[None] = loop.create_future()
                self._async_waiters.append((loop, future))
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(future, timeout=1.0)
        try:
            yield crowd
        finally:
            self._leave()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
