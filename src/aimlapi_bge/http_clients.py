"""The ``httpx2`` clients described in :mod:`aimlapi_bge.transport`."""

from __future__ import annotations

import time
import zlib
from typing import Any
from urllib.parse import urlsplit

import httpcore2
import httpx2 as httpx

from aimlapi_bge.errors import ResponseValidationError
from aimlapi_bge.transport import _body_limit, _check_cancelled, _deadline, _time_left

__all__ = ["BoundedAsyncClient", "BoundedClient", "own_async_client", "own_client"]


def _clamp(timeout: float | None, error: type[Exception]) -> float | None:
    left = _time_left()
    if left is None:
        return timeout
    if left <= 0:
        raise error("the attempt ran out of time (timeout covers the whole attempt)")
    return left if timeout is None else min(timeout, left)


def _check_deadline(request: httpx.Request) -> None:
    left = _time_left()
    if left is not None and left <= 0:
        raise httpx.ReadTimeout(
            "the answer took longer than the timeout (which covers the whole attempt)",
            request=request,
        )


# --- socket-level deadline, for the clients we build ---------------------------------------


class _Stream(httpcore2.NetworkStream):
    def __init__(self, stream: httpcore2.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _clamp(timeout, httpcore2.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _clamp(timeout, httpcore2.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore2.NetworkStream:
        timeout = _clamp(timeout, httpcore2.ConnectTimeout)
        return _Stream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _Backend(httpcore2.NetworkBackend):
    def __init__(self, backend: httpcore2.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore2.NetworkStream:
        timeout = _clamp(timeout, httpcore2.ConnectTimeout)
        return _Stream(
            self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore2.NetworkStream:
        timeout = _clamp(timeout, httpcore2.ConnectTimeout)
        return _Stream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _AsyncStream(httpcore2.AsyncNetworkStream):
    def __init__(self, stream: httpcore2.AsyncNetworkStream) -> None:
        self._stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, _clamp(timeout, httpcore2.ReadTimeout))

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, _clamp(timeout, httpcore2.WriteTimeout))

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore2.AsyncNetworkStream:
        timeout = _clamp(timeout, httpcore2.ConnectTimeout)
        return _AsyncStream(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _AsyncBackend(httpcore2.AsyncNetworkBackend):
    def __init__(self, backend: httpcore2.AsyncNetworkBackend) -> None:
        self._backend = backend

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore2.AsyncNetworkStream:
        timeout = _clamp(timeout, httpcore2.ConnectTimeout)
        stream = await self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return _AsyncStream(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore2.AsyncNetworkStream:
        timeout = _clamp(timeout, httpcore2.ConnectTimeout)
        return _AsyncStream(await self._backend.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


def _install_deadlines(transport: Any, wrapper: Any) -> None:
    """Wrap the network backend of an httpx2 transport's connection pool (if it has one)."""
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if backend is not None:
        pool._network_backend = wrapper(backend)  # type: ignore[union-attr]


def _trust_env(base_url: str) -> bool:
    from aimlapi_bge.config import is_loopback

    return not (urlsplit(base_url).scheme == "http" and is_loopback(base_url))


def own_client(base_url: str) -> httpx.Client:
    """The sync client we use when the user supplied none."""
    import openai

    trust_env = _trust_env(base_url)
    transport = httpx.HTTPTransport(trust_env=trust_env, limits=_limits())
    _install_deadlines(transport, _Backend)
    client: httpx.Client = openai.DefaultHttpxClient(
        transport=transport, trust_env=trust_env, follow_redirects=False
    )
    return client


def own_async_client(base_url: str) -> httpx.AsyncClient:
    """The async client we use (per event loop) when the user supplied none."""
    import openai

    trust_env = _trust_env(base_url)
    transport = httpx.AsyncHTTPTransport(trust_env=trust_env, limits=_limits())
    _install_deadlines(transport, _AsyncBackend)
    client: httpx.AsyncClient = openai.DefaultAsyncHttpxClient(
        transport=transport, trust_env=trust_env, follow_redirects=False
    )
    return client


def _limits() -> httpx.Limits:
    from openai._constants import DEFAULT_CONNECTION_LIMITS

    limits: httpx.Limits = DEFAULT_CONNECTION_LIMITS
    return limits


# --- bounded, decoded body ------------------------------------------------------------------


class _Body:
    """Collects a body's decoded bytes, refusing more than ``limit``."""

    def __init__(self, encoding: str, limit: int) -> None:
        self._limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        encoding = encoding.strip().lower()
        self._inflater: Any = None
        if encoding in ("gzip", "x-gzip"):
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif encoding == "deflate":
            self._inflater = zlib.decompressobj()
        elif encoding not in ("", "identity"):
            raise ResponseValidationError(
                f"The server answered with Content-Encoding {encoding!r}, which was not asked"
                " for (only gzip and deflate are accepted)."
            )
        self._first = True

    def _take(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            raise ResponseValidationError(
                f"The server's answer exceeds {self._limit} bytes, more than any valid answer"
                " for this batch can need; reading stopped."
            )
        if data:
            self._parts.append(data)

    def feed(self, raw: bytes) -> None:
        if self._inflater is None:
            self._take(raw)
            return
        data = raw
        while data:
            try:
                out = self._inflater.decompress(data, self._limit - self._size + 1)
            except zlib.error as exc:
                if self._first and self._inflater is not None and data is raw:
                    self._first = False  # "deflate" sent raw, without the zlib header
                    self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise ResponseValidationError(
                    f"The server's compressed answer is corrupt ({exc})."
                ) from exc
            self._first = False
            self._take(out)
            data = self._inflater.unconsumed_tail

    def finish(self) -> bytes:
        if self._inflater is not None:
            self._take(self._inflater.flush())
        return b"".join(self._parts)


def _body_for(response: httpx.Response) -> _Body:
    limit = _body_limit.get()
    return _Body(response.headers.get("content-encoding", ""), limit or (1 << 62))


def _replace_body(response: httpx.Response, content: bytes) -> httpx.Response:
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=content,
        request=response.request,
        extensions=response.extensions,
    )


class _NoTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """The wrappers' own base client never sends anything itself."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raise RuntimeError("BoundedClient sends through its inner client")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise RuntimeError("BoundedAsyncClient sends through its inner client")


class BoundedClient(httpx.Client):
    """Sends through ``inner`` with the rules of :mod:`aimlapi_bge.transport`; always returns a
    fully read response. Closes ``inner`` only if ``owned``."""

    def __init__(self, inner: httpx.Client, *, timeout: float, owned: bool) -> None:
        super().__init__(transport=_NoTransport(), follow_redirects=False, trust_env=False)
        self.inner = inner
        self._attempt_timeout = timeout
        self._owned = owned

    def build_request(self, *args: Any, **kwargs: Any) -> httpx.Request:
        return self.inner.build_request(*args, **kwargs)

    def send(
        self, request: httpx.Request, *, stream: bool = False, **kwargs: Any
    ) -> httpx.Response:
        _check_cancelled()
        kwargs["follow_redirects"] = False
        request.headers["Accept-Encoding"] = "gzip, deflate"
        token = _deadline.set(time.monotonic() + self._attempt_timeout)
        try:
            response = self.inner.send(request, stream=True, **kwargs)
            try:
                body = _body_for(response)
                for chunk in response.iter_raw():
                    body.feed(chunk)
                    _check_deadline(request)
                return _replace_body(response, body.finish())
            finally:
                response.close()
        finally:
            _deadline.reset(token)

    def close(self) -> None:
        if self._owned:
            self.inner.close()
        super().close()


class BoundedAsyncClient(httpx.AsyncClient):
    """The async :class:`BoundedClient`."""

    def __init__(self, inner: httpx.AsyncClient, *, timeout: float, owned: bool) -> None:
        super().__init__(transport=_NoTransport(), follow_redirects=False, trust_env=False)
        self.inner = inner
        self._attempt_timeout = timeout
        self._owned = owned

    def build_request(self, *args: Any, **kwargs: Any) -> httpx.Request:
        return self.inner.build_request(*args, **kwargs)

    async def send(
        self, request: httpx.Request, *, stream: bool = False, **kwargs: Any
    ) -> httpx.Response:
        _check_cancelled()
        kwargs["follow_redirects"] = False
        request.headers["Accept-Encoding"] = "gzip, deflate"
        token = _deadline.set(time.monotonic() + self._attempt_timeout)
        try:
            response = await self.inner.send(request, stream=True, **kwargs)
            try:
                body = _body_for(response)
                async for chunk in response.aiter_raw():
                    body.feed(chunk)
                    _check_deadline(request)
                return _replace_body(response, body.finish())
            finally:
                await response.aclose()
        finally:
            _deadline.reset(token)

    async def aclose(self) -> None:
        if self._owned:
            await self.inner.aclose()
        await super().aclose()
