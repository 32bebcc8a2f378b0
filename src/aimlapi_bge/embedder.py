"""The framework-free embedder both adapters wrap: batching, concurrency, recovery, accounting.

One call of :meth:`Embedder.embed` / :meth:`Embedder.aembed`:

1. checks every input (a non-string raises ``TypeError`` naming its position, before any
   request), maps empty and whitespace-only texts to ``" "`` (see below), and keeps one copy of
   each distinct text;
2. cuts the distinct texts into batches of ``batch_size`` and runs them with at most
   ``max_concurrency`` requests in flight: worker threads on the sync path, tasks on the
   async path (an adaptive limit lowers the bound while the server answers 429);
3. places every vector by the response's ``index``, checks count, dimension and finiteness;
4. recovers where it can: a batch the server calls too large is split in half (and the
   smaller size is kept for the rest of the instance's life); a batch the server rejects as
   invalid input is bisected so only the offending texts fail; with ``fallback="local"`` a
   refused model or an unreachable server switches the instance to the in-process model;
5. when something still fails, raises the error with the computed vectors attached
   (``error.embeddings``), the number embedded and the failed input positions.

Interrupts: on the sync path the calling thread waits in short slices, so Ctrl-C raises
``KeyboardInterrupt`` at once; workers then take no new batch and start no new attempt (not
even an SDK retry), and the call does not wait for requests already in flight (worker threads
are daemons and finish on their own).

Process model: after ``os.fork`` (``multiprocessing``'s "fork" start method) every live
instance drops, in the child, its HTTP clients, locks and in-flight state and builds new ones
on first use (usage in the child starts from zero). Instances pickle and deep-copy by their
configuration (see :meth:`Embedder.__getstate__`). Instances still open at interpreter exit
are closed then.

Empty texts: the AI/ML API rejects ``""``. BERT's tokenizer turns ``""`` and any
whitespace-only text into the same ``[CLS] [SEP]`` sequence as ``" "``, so such texts are sent
as ``" "``: every input gets the vector the model gives an empty text, aligned with its
position, identical on every backend.
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import importlib.util
import logging
import os
import threading
import warnings
import weakref
from collections import deque
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, Protocol

from aimlapi_bge.config import EmbedderConfig
from aimlapi_bge.decoding import BatchResult, known_dimension
from aimlapi_bge.errors import (
    AIMLAPIError,
    BatchTooLargeError,
    InputTooLongError,
    InvalidInputError,
    ModelNotAvailableError,
    RateLimitError,
    ResponseValidationError,
    ServiceError,
)
from aimlapi_bge.extras import install_hint
from aimlapi_bge.limiter import AdaptiveLimit
from aimlapi_bge.transport import cancellation
from aimlapi_bge.usage import Usage, UsageMeter

__all__ = ["Embedder", "EmbeddingBackend", "FallbackWarning"]

logger = logging.getLogger("aimlapi_bge")

# Bisection requests spent isolating rejected texts, per call, before giving up on the rest.
MAX_ISOLATED_FAILURES = 16
# Times one batch is sent again after the SDK's retries ran out on 429 while the rest of the
# call was getting through (the server rations, it does not refuse).
MAX_RATE_LIMIT_RESENDS = 3
# How often the calling thread wakes while workers run (the latency of Ctrl-C).
_WAIT_SLICE = 0.1

_LIVE: weakref.WeakSet[Embedder] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for embedder in list(_LIVE):
        embedder._after_fork()


def _close_all_at_exit() -> None:
    for embedder in list(_LIVE):
        try:
            embedder.close()
        except Exception:  # at exit, a failed close must not hide other output
            logger.debug("close at exit failed", exc_info=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all_at_exit)


class FallbackWarning(UserWarning):
    """Emitted once when an instance switches from the API to the local backend."""


class EmbeddingBackend(Protocol):
    """What the embedder needs from a backend: embed one batch, sync or async."""

    name: str

    def embed_batch(self, texts: list[str]) -> BatchResult: ...

    async def aembed_batch(self, texts: list[str]) -> BatchResult: ...

    def close(self) -> None: ...


def _check_texts(texts: Sequence[str], prefix: str = "") -> list[str]:
    """The texts to send: type-checked (naming the position), ``prefix`` added, blank -> " "."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(
            f"Expected a list of strings, got a single {type(texts).__name__}; wrap it in a list"
            " (or use embed_query)."
        )
    checked: list[str] = []
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(
                f"Text at position {position} is a {type(text).__name__}, not a str; nothing"
                " was sent."
            )
        text = prefix + text
        checked.append(text if text.strip() else " ")
    return checked


def _check_query(text: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"The query is a {type(text).__name__}, not a str.")
    return text


class _Job:
    """The state of one call: distinct texts, results, work queue, failures."""

    def __init__(self, texts: Sequence[str], show_progress: bool) -> None:
        slot_of: dict[str, int] = {}
        self.unique: list[str] = []
        self.inverse: list[int] = []
        for text in texts:
            slot = slot_of.setdefault(text, len(self.unique))
            if slot == len(self.unique):
                self.unique.append(text)
            self.inverse.append(slot)
        self.results: list[list[float] | None] = [None] * len(self.unique)
        self.cursor = 0
        self.pending: deque[tuple[int, int]] = deque()
        self.failures: list[tuple[int, int, AIMLAPIError]] = []
        self.fatal: AIMLAPIError | None = None
        self.isolations_left = MAX_ISOLATED_FAILURES
        self.batches_done = 0
        self.rate_limit_resends: dict[tuple[int, int], int] = {}
        self.lock = threading.Lock()
        self.cancelled = threading.Event()
        self.crash: BaseException | None = None
        self.progress: Any = None
        if show_progress:  # tqdm is imported and built only when a bar is wanted
            from tqdm.auto import tqdm

            self.progress = tqdm(
                total=len(self.unique), unit="text", desc="Embedding", mininterval=0
            )  # redrawn at every batch: batches take milliseconds at least

    def next_item(self, batch_size: int) -> tuple[int, int] | None:
        with self.lock:
            if self.fatal is not None:
                return None
            if self.pending:
                return self.pending.popleft()
            if self.cursor >= len(self.unique):
                return None
            start = self.cursor
            self.cursor = min(len(self.unique), start + batch_size)
            return start, self.cursor

    def may_resend_after_rate_limit(self, item: tuple[int, int], overcommitted: bool) -> bool:
        """True (and counted) when a batch refused with 429 should be sent again: we had
        overcommitted, or other batches of this call are getting through."""
        with self.lock:
            resends = self.rate_limit_resends.get(item, 0)
            if resends >= MAX_RATE_LIMIT_RESENDS or not (overcommitted or self.batches_done):
                return False
            self.rate_limit_resends[item] = resends + 1
            return True

    def requeue(self, *items: tuple[int, int]) -> None:
        with self.lock:
            self.pending.extendleft(reversed(items))

    def fail(self, start: int, end: int, error: AIMLAPIError, *, fatal: bool) -> None:
        with self.lock:
            self.failures.append((start, end, error))
            if fatal and self.fatal is None:
                self.fatal = error

    def cancel(self) -> None:
        """Stop: no worker takes another batch or starts another attempt."""
        self.cancelled.set()
        self.fail(0, 0, AIMLAPIError("cancelled"), fatal=True)

    def batch_count(self, batch_size: int) -> int:
        return -(-len(self.unique) // batch_size)

    def advance(self, count: int) -> None:
        with self.lock:
            self.batches_done += 1
        if self.progress is not None:
            self.progress.update(count)

    def positions(self, spans: Iterable[tuple[int, int]]) -> list[int]:
        """The input positions whose distinct text lies in one of ``spans``, in one pass."""
        marked = bytearray(len(self.unique))
        for start, end in spans:
            marked[start:end] = b"\x01" * (end - start)
        return [position for position, slot in enumerate(self.inverse) if marked[slot]]

    def _expand(self) -> list[list[float] | None]:
        """One vector per input position; duplicates get their own list, not a shared one."""
        if len(self.unique) == len(self.inverse):  # no duplicates: slot i is position i
            return self.results
        seen = bytearray(len(self.unique))
        output: list[list[float] | None] = []
        for slot in self.inverse:
            vector = self.results[slot]
            if vector is not None and seen[slot]:
                vector = list(vector)
            seen[slot] = 1
            output.append(vector)
        return output

    def finish(self) -> list[list[float]]:
        if self.progress is not None:
            self.progress.close()
        output = self._expand()
        if not self.failures:
            return output  # type: ignore[return-value]  # no failure: every slot is filled
        error = self.fatal or self.failures[0][2]
        if isinstance(error, InvalidInputError):
            error.positions = self.positions(
                (start, end)
                for start, end, failure in self.failures
                if isinstance(failure, InvalidInputError)
            )
        failed = [position for position, vector in enumerate(output) if vector is None]
        error.attach_partial(output, failed)
        raise error


class Embedder:
    """Embeds texts with bge-base-en-v1.5 (or any configured model) over HTTP or in-process.

    Setup:
        ``pip install aimlapi-bge`` and ``export AIMLAPI_API_KEY=...``.

    Key init args:
        config: an :class:`~aimlapi_bge.config.EmbedderConfig`, usually from
        :func:`~aimlapi_bge.config.resolve_config`.

    Instantiate:
        .. code-block:: python

            from aimlapi_bge import Embedder, resolve_config

            embedder = Embedder(resolve_config(batch_size=64))

    Embed:
        .. code-block:: python

            vectors = embedder.embed(["first passage", "second passage"])
            query_vector = embedder.embed_query("what is in the first passage?")

    Async:
        .. code-block:: python

            vectors = await embedder.aembed(["first passage", "second passage"])

    Close:
        .. code-block:: python

            with Embedder(resolve_config()) as embedder:  # or ``async with``
                vectors = embedder.embed(texts)

    One instance is safe to share between threads, between successive event loops and with
    forked child processes; it pickles and deep-copies by its configuration.
    """

    def __init__(self, config: EmbedderConfig) -> None:
        self.config = config
        self._usage = UsageMeter()
        self._limit = AdaptiveLimit(config.max_concurrency)
        self._lock = threading.Lock()
        self._batch_size = config.batch_size
        # A server must answer a known model with its known dimension; for other models, and
        # when a local model file stands in for the model, the first answer sets it.
        self._dimension: int | None = (
            known_dimension(config.model)
            if config.backend == "api" and config.local_model_path is None
            else None
        )
        if config.fallback == "local" and importlib.util.find_spec("fastembed") is None:
            raise ImportError(
                f"fallback='local' needs the local backend: {install_hint('local')}"
            )
        self._backend: EmbeddingBackend = self._make_backend(config.backend)
        _LIVE.add(self)

    def _after_fork(self) -> None:
        """In a forked child: fresh locks, limiter and usage; the backend drops its clients."""
        self._lock = threading.Lock()
        self._usage = UsageMeter()
        self._limit = AdaptiveLimit(self.config.max_concurrency)
        after_fork = getattr(self._backend, "after_fork", None)
        if after_fork is not None:
            after_fork()

    def __getstate__(self) -> dict[str, Any]:
        """Pickle (and ``copy.deepcopy``) by configuration: the copy has the same settings, the
        batch size and dimension learnt so far, and no clients, fresh locks and zero usage.

        A user-supplied ``http_client`` / ``http_async_client`` cannot cross a process
        boundary: the copy goes without it (default clients, rebuilt lazily), with a warning.
        """
        config = self.config
        if config.http_client is not None or config.http_async_client is not None:
            warnings.warn(
                "The copy of this Embedder does not keep the user-supplied http_client /"
                " http_async_client (HTTP clients cannot be pickled); it uses default clients.",
                UserWarning,
                stacklevel=2,
            )
            config = dataclasses.replace(config, http_client=None, http_async_client=None)
        return {
            "config": config,
            "batch_size": self._batch_size,
            "dimension": self._dimension,
            "backend": self._backend.name,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        config: EmbedderConfig = state["config"]
        if state["backend"] != config.backend:  # this instance had fallen back
            config = dataclasses.replace(config, backend=state["backend"])
        Embedder.__init__(self, config)
        self.config = state["config"]
        self._batch_size = state["batch_size"]
        self._dimension = state["dimension"]

    def __enter__(self) -> Embedder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Embedder:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return (
            f"Embedder(model={self.config.model!r}, base_url={self.config.base_url!r},"
            f" backend={self._backend.name!r}, batch_size={self._batch_size})"
        )

    # --- backends -------------------------------------------------------------------------

    def _make_backend(self, name: str) -> EmbeddingBackend:
        if name == "local":
            from aimlapi_bge.local import LocalBackend

            backend: EmbeddingBackend = LocalBackend(self.config)
            return backend
        from aimlapi_bge.api import APIBackend

        return APIBackend(self.config, on_rate_limited=self._on_rate_limited)

    def _on_rate_limited(self) -> None:
        self._usage.add(rate_limited=1)
        self._limit.on_rate_limited()

    @property
    def backend(self) -> str:
        """``"api"`` or ``"local"`` (after a fallback, ``"local"``)."""
        return self._backend.name

    @property
    def batch_size(self) -> int:
        """The batch size in use: the configured one, or smaller after a server refused it."""
        return self._batch_size

    @property
    def in_flight_limit(self) -> AdaptiveLimit:
        """The adaptive in-flight limit (``peak_in_flight`` shows the most ever used)."""
        return self._limit

    @property
    def usage(self) -> Usage:
        """Requests, tokens and credits consumed so far."""
        return self._usage.snapshot()

    def reset_usage(self) -> Usage:
        """Return the usage so far and start counting from zero."""
        return self._usage.reset()

    def close(self) -> None:
        """Release pooled connections, sync and async (the instance stays usable and
        reconnects on demand). A user-supplied HTTP client is left to its owner."""
        self._backend.close()

    async def aclose(self) -> None:
        """:meth:`close`, awaiting the current event loop's connections."""
        aclose = getattr(self._backend, "aclose", None)
        if aclose is not None:
            await aclose()
        else:
            self._backend.close()

    # --- public API -----------------------------------------------------------------------

    def embed(
        self, texts: Sequence[str], *, as_queries: bool = False, show_progress: bool = False
    ) -> list[list[float]]:
        """Embed documents (or, with ``as_queries``, search queries: each prefixed with the
        query instruction), concurrently in batches, in input order."""
        job = _Job(self._texts_to_send(texts, as_queries), show_progress)
        workers = min(self.config.max_concurrency, job.batch_count(self._batch_size))
        if self._embed_whole_call(job):  # a backend that takes whole calls (local)
            pass
        elif workers <= 1:
            try:
                self._work(job)
            except BaseException:
                job.cancel()
                raise
        else:
            self._run_threads(job, workers)
        return job.finish()

    def _run_threads(self, job: _Job, workers: int) -> None:
        """Run ``workers`` daemon threads; wait so that Ctrl-C interrupts at once."""
        done = threading.Event()
        running = [workers]

        def run() -> None:
            try:
                self._work(job)
            except BaseException as exc:  # surfaces in the calling thread
                with job.lock:
                    job.crash = job.crash or exc
                job.cancel()
            finally:
                with job.lock:
                    running[0] -= 1
                    if running[0] == 0:
                        done.set()

        try:
            for number in range(workers):
                threading.Thread(target=run, name=f"aimlapi-bge-{number}", daemon=True).start()
            while not done.wait(_WAIT_SLICE):
                pass
        except BaseException:
            job.cancel()  # workers take no new batch; in-flight ones are not waited for
            raise
        if job.crash is not None:
            raise job.crash

    async def aembed(
        self, texts: Sequence[str], *, as_queries: bool = False, show_progress: bool = False
    ) -> list[list[float]]:
        """Embed without blocking the event loop; same semantics as :meth:`embed`."""
        job = _Job(self._texts_to_send(texts, as_queries), show_progress)
        workers = min(self.config.max_concurrency, job.batch_count(self._batch_size))
        if hasattr(self._backend, "embed_all"):  # a backend that takes whole calls (local)
            await asyncio.to_thread(self._embed_whole_call, job)
        elif workers <= 1:
            await self._awork(job)
        else:
            try:
                await asyncio.gather(*(self._awork(job) for _ in range(workers)))
            except BaseException:  # as on the sync path: the other workers stop taking batches
                job.cancel()
                raise
        return job.finish()

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query, prefixed with the query instruction."""
        return self.embed([_check_query(text)], as_queries=True)[0]

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`."""
        return (await self.aembed([_check_query(text)], as_queries=True))[0]

    def _texts_to_send(self, texts: Sequence[str], as_queries: bool) -> list[str]:
        return _check_texts(texts, self.config.query_instruction if as_queries else "")

    # --- whole-call hook (issue 14) --------------------------------------------------------
    # A backend with ``embed_all`` (the local one) gets every distinct text of the call at
    # once: it sorts them by token count across the whole call and runs one model batch at a
    # time, which is faster than worker threads each holding a padded batch. Its results come
    # back per ``batch_size`` slice and are recorded like batches (usage, dimension check).

    def _embed_whole_call(self, job: _Job) -> bool:
        """Hand the whole call to the backend if it takes one; False if it does not."""
        backend = self._backend
        embed_all = getattr(backend, "embed_all", None)
        if embed_all is None or not job.unique:
            return False
        bar, job.progress = job.progress, None  # the backend advances the bar as it goes
        try:
            try:
                results = embed_all(job.unique, self._batch_size, bar.update if bar else None)
            except AIMLAPIError as exc:
                self._on_failure(job, (0, len(job.unique)), exc, backend)
                return True
            for start, end, result in results:
                self._on_success(job, (start, end), result)
        finally:
            job.progress = bar
        return True

    # --- workers --------------------------------------------------------------------------

    def _work(self, job: _Job) -> None:
        with cancellation(job.cancelled):
            self._work_batches(job)

    def _work_batches(self, job: _Job) -> None:
        while (item := job.next_item(self._batch_size)) is not None:
            backend = self._backend
            start, end = item
            crowd = 0
            try:
                with self._limit.slot() as crowd:
                    result = backend.embed_batch(job.unique[start:end])
            except AIMLAPIError as exc:
                self._on_failure(job, item, exc, backend, crowd=crowd)
            else:
                self._on_success(job, item, result)

    async def _awork(self, job: _Job) -> None:
        with cancellation(job.cancelled):
            await self._awork_batches(job)

    async def _awork_batches(self, job: _Job) -> None:
        while (item := job.next_item(self._batch_size)) is not None:
            backend = self._backend
            start, end = item
            crowd = 0
            try:
                async with self._limit.aslot() as crowd:
                    result = await backend.aembed_batch(job.unique[start:end])
            except AIMLAPIError as exc:
                self._on_failure(job, item, exc, backend, crowd=crowd)
            else:
                self._on_success(job, item, result)

    def _on_success(self, job: _Job, item: tuple[int, int], result: BatchResult) -> None:
        start, end = item
        self._limit.on_success()
        dimension = len(result.vectors[0]) if result.vectors else 0
        with self._lock:
            if self._dimension is None:
                self._dimension = dimension
        if dimension != self._dimension:
            known = known_dimension(self.config.model)
            error = ResponseValidationError(
                f"The server returned {dimension}-dimensional vectors, but {self.config.model}"
                f" gives {known}-dimensional ones: vectors from different models cannot be mixed."
                if known is not None
                else f"The server returned {dimension}-dimensional vectors, but earlier ones had"
                f" {self._dimension}: vectors from different models cannot be mixed."
            )
            job.fail(start, end, error, fatal=True)
            return
        job.results[start:end] = result.vectors
        self._usage.add(
            requests=1,
            texts=end - start,
            prompt_tokens=result.prompt_tokens,
            credits_used=result.credits_used,
        )
        job.advance(end - start)

    def _on_failure(
        self,
        job: _Job,
        item: tuple[int, int],
        error: AIMLAPIError,
        backend: EmbeddingBackend,
        *,
        crowd: int = 0,
    ) -> None:
        """Recover from a failed batch (split, bisect, retry, fall back) or record the failure.

        ``crowd`` is how many requests were in flight when the batch was sent.
        """
        start, end = item
        size = end - start
        if isinstance(error, RateLimitError) and job.may_resend_after_rate_limit(
            item, overcommitted=crowd > self._limit.limit
        ):
            # Refused while more requests were in flight than the limit now allows (our own
            # overcommit, backed off from since), or while other batches get through: the
            # server rations rather than refuses. Send it again under the lowered limit.
            job.requeue(item)
            return
        if isinstance(error, BatchTooLargeError):
            if size == 1:
                error = InputTooLongError(
                    f"The server refused a single text as too large ({error.server_message}).",
                    status_code=error.status_code,
                    request_id=error.request_id,
                    server_message=error.server_message,
                )
                job.fail(start, end, error, fatal=False)
                return
            new_size = max(1, min(error.max_batch or size // 2, size - 1))
            with self._lock:
                if new_size < self._batch_size:
                    logger.info("Server refused %d texts per request; using %d", size, new_size)
                    self._batch_size = new_size
            job.requeue(*((i, min(end, i + new_size)) for i in range(start, end, new_size)))
            return
        if isinstance(error, InvalidInputError):
            with job.lock:
                isolate = size > 1 and job.isolations_left > 0
                job.isolations_left -= 1
            if isolate:
                half = size // 2
                job.requeue((start, start + half), (start + half, end))
            else:
                job.fail(start, end, error, fatal=job.isolations_left < 0)
            return
        if (
            self.config.fallback == "local"
            and backend.name == "api"
            and isinstance(error, (ModelNotAvailableError, ServiceError))
        ):
            self._switch_to_local(backend, error)
            job.requeue(item)
            return
        job.fail(start, end, error, fatal=True)

    def _switch_to_local(self, failed: EmbeddingBackend, error: AIMLAPIError) -> None:
        with self._lock:
            if self._backend is not failed:
                return
            self._backend = self._make_backend("local")
        warnings.warn(
            f"{error.message} Switching this instance to the local backend (fallback='local').",
            FallbackWarning,
            stacklevel=2,
        )
