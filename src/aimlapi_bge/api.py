"""The HTTP backend: one ``/embeddings`` request per batch through the openai SDK.

The SDK does the transport work (connection pooling, timeouts, retries with exponential
backoff honouring ``Retry-After``, typed errors). We use its documented low-level
``client.post(path, body=..., cast_to=httpx.Response)`` so the request body is exactly
``{"model", "input"}`` (the SDK's ``embeddings.create`` would add ``encoding_format``) and
the raw body reaches our fast decoder.

Clients are created once and reused. The async client is kept per event loop, because an
``httpx`` async connection pool belongs to the loop that opened it: a second
``asyncio.run`` (or a notebook cell) gets a fresh client instead of "Event loop is closed".
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from typing import Any

import httpx2 as httpx
import openai

from aimlapi_bge.config import EmbedderConfig
from aimlapi_bge.decoding import BatchResult, decode_embeddings_response
from aimlapi_bge.errors import AIMLAPIError, error_from_openai

__all__ = ["APIBackend"]

_NO_AUTH: Any = {"headers": {"Authorization": openai.Omit()}}


class APIBackend:
    """Sends batches to an OpenAI-compatible ``/embeddings`` endpoint."""

    name = "api"

    def __init__(self, config: EmbedderConfig, on_rate_limited: Callable[[], None]) -> None:
        self._config = config
        self._on_rate_limited = on_rate_limited
        self._lock = threading.Lock()
        self._sync_client: openai.OpenAI | None = None
        self._async_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, openai.AsyncOpenAI
        ] = weakref.WeakKeyDictionary()
        self._options: Any = {} if config.api_key else _NO_AUTH

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

    @property
    def client(self) -> openai.OpenAI:
        """The shared sync client (thread-safe, pooled)."""
        with self._lock:
            if self._sync_client is None:
                http_client = self._config.http_client or openai.DefaultHttpxClient()
                http_client.event_hooks["response"].append(self._sync_hook)
                self._sync_client = openai.OpenAI(**self._client_args(), http_client=http_client)
            return self._sync_client

    def async_client(self) -> openai.AsyncOpenAI:
        """The async client of the running event loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._async_clients.get(loop)
            if client is None:
                http_client = self._config.http_async_client
                if http_client is None or self._async_clients:
                    # A user-supplied async client serves the first loop only: its pool is
                    # bound to that loop.
                    http_client = openai.DefaultAsyncHttpxClient()
                http_client.event_hooks["response"].append(self._async_hook)
                client = openai.AsyncOpenAI(**self._client_args(), http_client=http_client)
                self._async_clients[loop] = client
            return client

    def _error(self, exc: Exception, batch_size: int) -> AIMLAPIError:
        config = self._config
        return error_from_openai(
            exc,
            model=config.model,
            base_url=config.base_url,
            batch_size=batch_size,
            key_note=config.key_note,
        )

    def embed_batch(self, texts: list[str]) -> BatchResult:
        """Embed one batch; raises :class:`~aimlapi_bge.errors.AIMLAPIError` subclasses."""
        body: dict[str, object] = {"model": self._config.model, "input": texts}
        try:
            response = self.client.post(
                "/embeddings", body=body, cast_to=httpx.Response, options=self._options
            )
        except openai.OpenAIError as exc:
            raise self._error(exc, len(texts)) from exc
        return decode_embeddings_response(response.content, len(texts), response.headers)

    async def aembed_batch(self, texts: list[str]) -> BatchResult:
        """Embed one batch without blocking the event loop."""
        body: dict[str, object] = {"model": self._config.model, "input": texts}
        try:
            response = await self.async_client().post(
                "/embeddings", body=body, cast_to=httpx.Response, options=self._options
            )
        except openai.OpenAIError as exc:
            raise self._error(exc, len(texts)) from exc
        return decode_embeddings_response(response.content, len(texts), response.headers)

    def close(self) -> None:
        """Close the pooled sync connections (async ones close with their loop)."""
        with self._lock:
            if self._sync_client is not None:
                self._sync_client.close()
                self._sync_client = None
