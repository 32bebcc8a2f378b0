"""The HTTP backend: one ``/embeddings`` request per batch through the openai SDK.

The SDK does the transport work (connection pooling, timeouts, retries with exponential
backoff honouring ``Retry-After``, typed errors). We use its documented low-level
``client.post(path, body=..., cast_to=httpx.Response)`` so the request body is exactly
``{"model", "input"}`` (the SDK's ``embeddings.create`` would add ``encoding_format``) and
the raw body reaches our fast decoder.

Clients are created once and reused. The async client is kept per event loop, because an
``httpx`` async connection pool belongs to the loop that opened it: a second
``asyncio.run`` (or a notebook cell) gets a fresh client instead of "Event loop is closed".
Each such client is closed on its own loop when the loop shuts down (``asyncio.run`` and
``asyncio.Runner`` finalise async generators, and one is parked per loop for this), and
forgotten when the next loop asks for a client, so repeated ``asyncio.run`` calls neither pile
up connections nor keep dead loops alive. A user-supplied ``http_async_client`` serves the
first loop that uses it, and only that one; its owner closes it.

Every client the SDK gets is wrapped by :mod:`aimlapi_bge.transport` (no redirects, a bound on
the decoded body derived from the batch, one deadline per attempt). After a fork, the child
drops the parent's clients (without closing the sockets it shares with the parent) and builds
its own on first use.

A text that cannot be encoded as UTF-8 (a lone surrogate such as ``"\\ud800"``) is reported as
:class:`~aimlapi_bge.errors.InvalidInputError` without a request.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2 as httpx
import openai

from aimlapi_bge.config import EmbedderConfig
from aimlapi_bge.decoding import BatchResult, decode_embeddings_response, known_dimension
from aimlapi_bge.errors import AIMLAPIError, InvalidInputError, error_from_openai
from aimlapi_bge.http_clients import (
    BoundedAsyncClient,
    BoundedClient,
    own_async_client,
    own_client,
)
from aimlapi_bge.transport import RedirectError, body_limit, response_limit

__all__ = ["APIBackend"]

logger = logging.getLogger("aimlapi_bge")

_NO_AUTH: Any = {"headers": {"Authorization": openai.Omit()}}
#: Clients a forked child inherited: kept referenced so that collecting them never closes (or
#: sends a TLS close_notify on) a socket the parent still uses.
_INHERITED: list[Any] = []


async def _close_at_loop_shutdown(client: openai.AsyncOpenAI) -> AsyncIterator[None]:
    """Parked at its ``yield`` for the loop's lifetime; the loop's shutdown closes ``client``."""
    try:
        yield
    finally:
        await client.close()


async def _finish(client: openai.AsyncOpenAI, closer: AsyncIterator[None] | None) -> None:
    """Close an async client, through its parked closer when it has one (so that nothing is
    left for the loop's shutdown or the garbage collector)."""
    if closer is not None:
        await closer.aclose()  # type: ignore[attr-defined]
    else:
        await client.close()


class APIBackend:
    """Sends batches to an OpenAI-compatible ``/embeddings`` endpoint."""

    name = "api"

    def __init__(self, config: EmbedderConfig, on_rate_limited: Callable[[], None]) -> None:
        self._config = config
        self._on_rate_limited = on_rate_limited
        self._lock = threading.Lock()
        self._sync_client: openai.OpenAI | None = None
        # Strong keys: a client's pooled sockets reference their loop, so weak keys never expire.
        # The value keeps the parked closer alive (the loop itself only holds it weakly).
        self._async_clients: dict[
            asyncio.AbstractEventLoop, tuple[openai.AsyncOpenAI, AsyncIterator[None] | None]
        ] = {}
        self._user_async_client_taken = False
        self._warned_new_loop = False
        self._options: Any = {} if config.api_key else _NO_AUTH
        self._dimension = known_dimension(config.model)

    def after_fork(self) -> None:
        """In a forked child: forget the parent's clients and locks; new ones come on demand."""
        _INHERITED.append((self._sync_client, self._async_clients))
        self._lock = threading.Lock()
        self._sync_client = None
        self._async_clients = {}

    def _client_args(self) -> dict[str, Any]:
        config = self._config
        key = config.api_key.get_secret_value() if config.api_key else ""
        return {
            "api_key": key,
            "base_url": config.base_url,
            "max_retries": config.max_retries,
            "timeout": config.timeout,
            "default_headers": dict(config.default_headers or {}),
            "_enforce_credentials": bool(key),
        }

    def _sync_hook(self, response: httpx.Response) -> None:
        if response.status_code == 429:
            self._on_rate_limited()

    async def _async_hook(self, response: httpx.Response) -> None:
        if response.status_code == 429:
            self._on_rate_limited()

    @staticmethod
    def _add_hook(http_client: Any, hook: Callable[..., Any]) -> None:
        hooks = http_client.event_hooks["response"]
        if hook not in hooks:  # a user's client may be wrapped again after close()
            hooks.append(hook)

    @property
    def client(self) -> openai.OpenAI:
        """The shared sync client (thread-safe, pooled)."""
        with self._lock:
            if self._sync_client is None:
                user_client = self._config.http_client
                inner = user_client or own_client(self._config.base_url)
                self._add_hook(inner, self._sync_hook)
                http_client = BoundedClient(
                    inner, timeout=self._config.timeout, owned=user_client is None
                )
                self._sync_client = openai.OpenAI(**self._client_args(), http_client=http_client)
            return self._sync_client

    async def async_client(self) -> openai.AsyncOpenAI:
        """The async client of the running event loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._async_clients.get(loop)
            if entry is not None:
                return entry[0]
            for stale in [other for other in self._async_clients if other.is_closed()]:
                del self._async_clients[stale]
            http_client = self._config.http_async_client
            owned = http_client is None or self._user_async_client_taken
            if http_client is not None and owned and not self._warned_new_loop:
                self._warned_new_loop = True
                logger.warning(
                    "http_async_client is bound to the event loop it was first used on; a new"
                    " event loop gets a default async client instead."
                )
            if owned:
                http_client = own_async_client(self._config.base_url)
            else:
                self._user_async_client_taken = True
            self._add_hook(http_client, self._async_hook)
            bounded = BoundedAsyncClient(http_client, timeout=self._config.timeout, owned=owned)
            client = openai.AsyncOpenAI(**self._client_args(), http_client=bounded)
            closer = _close_at_loop_shutdown(client) if owned else None
            self._async_clients[loop] = (client, closer)
        if closer is not None:
            await closer.__anext__()  # parks it; registers it with this loop's shutdown
        return client

    def _error(self, exc: Exception, batch_size: int) -> AIMLAPIError:
        config = self._config
        if isinstance(exc, openai.APIStatusError) and 300 <= exc.status_code < 400:
            location = exc.response.headers.get("location")
            return RedirectError(
                f"The server at {config.base_url} answered {exc.status_code} redirecting to"
                f" {location!r}. Redirects are never followed (the texts, key and headers would"
                " be sent again, possibly elsewhere or as a GET): set base_url to the final"
                " address.",
                location=location,
                status_code=exc.status_code,
                request_id=exc.request_id,
            )
        return error_from_openai(
            exc,
            model=config.model,
            base_url=config.base_url,
            batch_size=batch_size,
            key_note=config.key_note,
            key_sent=config.api_key is not None,
        )

    @staticmethod
    def _unencodable(exc: UnicodeEncodeError) -> InvalidInputError:
        return InvalidInputError(
            f"A text cannot be sent: it is not valid Unicode ({exc.reason}, e.g. a lone"
            " surrogate left by a bad decode). Clean it, e.g. with"
            " text.encode('utf-8', 'replace').decode('utf-8')."
        )

    def embed_batch(self, texts: list[str]) -> BatchResult:
        """Embed one batch; raises :class:`~aimlapi_bge.errors.AIMLAPIError` subclasses."""
        body: dict[str, object] = {"model": self._config.model, "input": texts}
        try:
            with response_limit(body_limit(len(texts), self._dimension)):
                response = self.client.post(
                    "/embeddings", body=body, cast_to=httpx.Response, options=self._options
                )
        except openai.OpenAIError as exc:
            raise self._error(exc, len(texts)) from exc
        except UnicodeEncodeError as exc:
            raise self._unencodable(exc) from exc
        return self._decode(response, len(texts))

    async def aembed_batch(self, texts: list[str]) -> BatchResult:
        """Embed one batch without blocking the event loop."""
        body: dict[str, object] = {"model": self._config.model, "input": texts}
        try:
            client = await self.async_client()
            with response_limit(body_limit(len(texts), self._dimension)):
                response = await client.post(
                    "/embeddings", body=body, cast_to=httpx.Response, options=self._options
                )
        except openai.OpenAIError as exc:
            raise self._error(exc, len(texts)) from exc
        except UnicodeEncodeError as exc:
            raise self._unencodable(exc) from exc
        return self._decode(response, len(texts))

    def _decode(self, response: httpx.Response, count: int) -> BatchResult:
        result = decode_embeddings_response(response.content, count, response.headers)
        if self._dimension is None and result.vectors:
            self._dimension = len(result.vectors[0])
        return result

    def close(self) -> None:
        """Close the pooled connections: the sync client's, and the async clients of every
        event loop that is not closed (a running loop other than the caller's gets the close
        scheduled on it; a closed loop's client was closed by that loop's shutdown).

        A user-supplied ``http_client``/``http_async_client`` is left open: its owner closes it.
        """
        with self._lock:
            sync_client, self._sync_client = self._sync_client, None
            async_clients, self._async_clients = self._async_clients, {}
        if sync_client is not None:
            sync_client.close()  # the wrapper closes the inner client only if it is ours
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, entry in async_clients.items():
            if loop.is_closed():
                continue
            if loop is current or loop.is_running():
                asyncio.run_coroutine_threadsafe(_finish(*entry), loop)
            elif current is None:
                loop.run_until_complete(_finish(*entry))
            else:  # an idle loop cannot be run from inside another: its shutdown closes it
                self._async_clients.setdefault(loop, entry)

    async def aclose(self) -> None:
        """:meth:`close`, awaiting the current loop's async client."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._async_clients.pop(loop, None)
        if entry is not None:
            await _finish(*entry)
        self.close()
