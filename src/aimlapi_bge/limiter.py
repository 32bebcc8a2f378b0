"""An in-flight limit that backs off under rate limiting (AIMD), for threads and for asyncio.

The limit starts at ``max_concurrency``. Each 429 the server sends (retried ones included,
reported by the HTTP client's response hook) halves it, at most once per ``cooldown``
seconds so one burst counts once; each success adds ``1/limit``, so it climbs back by about
one slot per round of requests. A job under a sustained rate limit therefore settles near
what the server allows instead of burning its retries.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress

__all__ = ["AdaptiveLimit"]


class AdaptiveLimit:
    """Thread-safe AIMD limit shared by the sync (thread) and async (task) paths."""

    def __init__(self, max_limit: int, *, cooldown: float = 1.0) -> None:
        self.max_limit = max_limit
        self._limit = float(max_limit)
        self._cooldown = cooldown
        self._last_decrease = -float("inf")
        self._in_flight = 0
        self.peak_in_flight = 0
        self._condition = threading.Condition()
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def limit(self) -> int:
        """The current number of requests allowed in flight."""
        return max(1, int(self._limit))

    def on_rate_limited(self) -> None:
        """A 429 arrived: halve the limit (once per cooldown)."""
        with self._condition:
            now = time.monotonic()
            if now - self._last_decrease >= self._cooldown:
                self._limit = max(1.0, self._limit / 2)
                self._last_decrease = now

    def on_success(self) -> None:
        """A request succeeded: grow the limit by 1/limit, up to the maximum."""
        with self._condition:
            if self._limit < self.max_limit:
                self._limit = min(float(self.max_limit), self._limit + 1 / self._limit)
                self._wake()

    def _try_enter(self) -> bool:
        if self._in_flight < self.limit:
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            return True
        return False

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
    def slot(self) -> Iterator[None]:
        """Hold one in-flight slot (blocking the thread until one is free)."""
        with self._condition:
            while not self._try_enter():
                self._condition.wait(timeout=1.0)
        try:
            yield
        finally:
            self._leave()

    @asynccontextmanager
    async def aslot(self) -> AsyncIterator[None]:
        """Hold one in-flight slot (suspending the task until one is free)."""
        loop = asyncio.get_running_loop()
        while True:
            with self._condition:
                if self._try_enter():
                    break
                future: asyncio.Future[None] = loop.create_future()
                self._async_waiters.append((loop, future))
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(future, timeout=1.0)
        try:
            yield
        finally:
            self._leave()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
