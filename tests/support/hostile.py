"""A misbehaving HTTP server on loopback, for transport tests.

:class:`HostileServer` listens on ``127.0.0.1`` (or ``127.0.0.2``, the "other origin"), runs
each connection in a daemon thread, records every request it reads (method, path, headers,
body) and hands it to a ``respond(request, exchange)`` callable that decides what goes back
on the wire: a proper answer, a redirect, a body that never ends, bytes dripped one at a
time, nothing at all. Tests synchronise with it through ``threading.Event`` / ``Barrier``
objects of their own and :meth:`HostileServer.wait_for`, never through sleeps.

Standard library only (plus ``standin_vector`` for correct answers)::

    def respond(request, exchange):
        exchange.send(301, b"", {"Location": other.url + "/embeddings"})

    with HostileServer(respond) as server:
        ...
        assert server.requests[0].method == "POST"
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from support.standin import standin_vector

__all__ = ["Exchange", "HostileServer", "Received", "embeddings_body"]


@dataclass
class Received:
    """One request as the server read it."""

    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def texts(self) -> list[str]:
        return list(self.json()["input"])


def embeddings_body(texts: list[str], dimension: int = 768, **overrides: Any) -> bytes:
    """A correct ``/embeddings`` answer (the stand-in's vectors), as JSON bytes."""
    body = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": standin_vector(t, dimension).tolist()}
            for i, t in enumerate(texts)
        ],
        "model": "BAAI/bge-base-en-v1.5",
        "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)},
        **overrides,
    }
    return json.dumps(body).encode()


class PeerClosed(Exception):
    """The client closed the connection while the server was writing."""


class Exchange:
    """The server's side of one request: what to write back."""

    def __init__(self, server: HostileServer, conn: socket.socket) -> None:
        self.server = server
        self.conn = conn

    def raw(self, data: bytes) -> None:
        """Write bytes as they are; :class:`PeerClosed` if the client has gone."""
        try:
            self.conn.sendall(data)
        except OSError as exc:
            raise PeerClosed from exc
        with self.server._lock:
            self.server.bytes_written += len(data)

    def head(self, status: int, headers: Mapping[str, str] | None = None) -> None:
        lines = [f"HTTP/1.1 {status} Whatever"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.raw(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def send(
        self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> None:
        """A complete answer with ``Content-Length``."""
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        all_headers["Content-Length"] = str(len(body))
        self.head(status, all_headers)
        self.raw(body)

    def answer(self, request: Received, dimension: int = 768) -> None:
        """The correct embeddings for the request's texts."""
        self.send(200, embeddings_body(request.texts, dimension))

    def drip(self, data: bytes, every: float = 0.02) -> None:
        """Write ``data`` one byte at a time, ``every`` seconds apart (until the client goes)."""
        for byte in data:
            self.raw(bytes([byte]))
            time.sleep(every)

    def drip_forever(self, byte: bytes = b" ", every: float = 0.02) -> None:
        """Write one byte every ``every`` seconds until the client closes the connection or
        the server stops; then record that the client closed it."""
        while not self.server.stopping.is_set():
            self.raw(byte)
            time.sleep(every)


Respond = Callable[[Received, Exchange], None]


def _default(request: Received, exchange: Exchange) -> None:
    exchange.answer(request)


class HostileServer:
    """A threaded HTTP/1.1 server whose answers a test scripts (see module docstring).

    Attributes:
        requests: every request read, in arrival order.
        client_closed: set when a client closed a connection the server was writing to, or
            ended a keep-alive connection.
        bytes_written: total bytes written by :meth:`Exchange.raw`.
    """

    def __init__(self, respond: Respond = _default, host: str = "127.0.0.1") -> None:
        self.respond = respond
        self.host = host
        self.requests: list[Received] = []
        self.client_closed = threading.Event()
        self.stopping = threading.Event()
        self.connections = 0
        self.bytes_written = 0
        self._lock = threading.Condition()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> HostileServer:
        listener = socket.create_server((self.host, 0), backlog=64)
        listener.settimeout(0.05)
        self._listener = listener
        thread = threading.Thread(target=self._accept_loop, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._listener is not None
        return int(self._listener.getsockname()[1])

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """A base URL for a client: ``http://HOST:PORT/v1``."""
        return self.origin + "/v1"

    def wait_for(self, count: int, timeout: float = 30.0) -> bool:
        """Block until at least ``count`` requests have arrived (False on timeout)."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self.requests) >= count, timeout)

    # --- serving --------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            listener = self._listener
            if listener is None:
                return
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            while not self.stopping.is_set():
                request = self._read_request(reader)
                if request is None:
                    self.client_closed.set()
                    return
                with self._lock:
                    self.requests.append(request)
                    self._lock.notify_all()
                try:
                    self.respond(request, Exchange(self, conn))
                except PeerClosed:
                    self.client_closed.set()
                    return
        except OSError:
            self.client_closed.set()
        finally:
            reader.close()
            conn.close()

    @staticmethod
    def _read_request(reader: Any) -> Received | None:
        line = reader.readline()
        if not line:
            return None
        method, path, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while (header := reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = header.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = reader.read(length) if length else b""
        return Received(method, path, headers, body)


def hostile_embedder(server: HostileServer, **settings: Any) -> Any:
    """An ``Embedder`` pointed at ``server`` with ``support.helpers.SECRET``, no SDK retries."""
    from aimlapi_bge import Embedder, resolve_config
    from support.helpers import SECRET

    args: dict[str, Any] = {
        "base_url": server.url,
        "api_key": SECRET,
        "max_retries": 0,
        **settings,
    }
    return Embedder(resolve_config(**args))
