"""Transport rules: no redirects, bounded bodies, whole-attempt deadlines, no sends after Ctrl-C.

Every client the SDK gets is a thin ``BoundedClient`` / ``BoundedAsyncClient`` (defined in
:mod:`aimlapi_bge.http_clients`) around
a real ``httpx2`` client (ours, or the one the user supplied). For each attempt the SDK makes
(its retries included) the wrapper:

* sends with ``follow_redirects=False``: a 3xx reaches the SDK as a status error, which the
  backend turns into :class:`RedirectError` naming the ``Location``;
* reads the whole body itself, decompressing ``gzip``/``deflate`` with a bound on the
  *decoded* size (other encodings are refused; we only accept these two), and raises
  :class:`~aimlapi_bge.errors.ResponseValidationError` past the bound, closing the connection;
* enforces one deadline (``timeout`` seconds from the start of the attempt) over connect, send
  and the full body. On our own clients every socket operation is clamped to the time left;
  on a user-supplied client the deadline is checked between body chunks (its own per-operation
  timeouts still apply). Running out raises ``httpx2.ReadTimeout``, which the SDK retries like
  any timeout;
* refuses to start an attempt for a call that has been cancelled (Ctrl-C), so in-flight SDK
  retries do not send new requests.

Our own clients ignore proxy environment variables for plain-``http`` loopback base URLs, so
a local server's traffic (and key) never goes through ``HTTP_PROXY``.

This module holds what the core needs without ``httpx2`` (the error, the per-call limits and
the cancellation flag), so that ``import aimlapi_bge`` does not load the HTTP stack.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from aimlapi_bge.errors import AIMLAPIError, RedirectError

__all__ = ["RedirectError", "body_limit", "cancellation", "response_limit"]


class _Cancelled(AIMLAPIError):
    """Raised instead of starting an attempt for a call that was interrupted."""


#: Per attempt: the monotonic time by which it must be over.
_deadline: ContextVar[float | None] = ContextVar("aimlapi_bge_deadline", default=None)
#: Per call of the backend: the most decoded body bytes accepted.
_body_limit: ContextVar[int | None] = ContextVar("aimlapi_bge_body_limit", default=None)
#: Per embed call: set when the call was interrupted.
_cancel: ContextVar[threading.Event | None] = ContextVar("aimlapi_bge_cancel", default=None)

#: JSON bytes one float may take, pretty-printed (``-1.2345678901234567e-05,`` + indent).
_BYTES_PER_VALUE = 48
_BYTES_PER_ITEM = 1024
_SLACK = 1 << 20
#: Assumed before a model's dimension is known.
_UNKNOWN_DIMENSION = 4096


def body_limit(texts: int, dimension: int | None) -> int:
    """The largest body an answer for ``texts`` texts of ``dimension`` values can need."""
    values = dimension or _UNKNOWN_DIMENSION
    return texts * (values * _BYTES_PER_VALUE + _BYTES_PER_ITEM) + _SLACK


@contextmanager
def response_limit(limit: int) -> Iterator[None]:
    """Bound the decoded size of every answer read inside the block."""
    token = _body_limit.set(limit)
    try:
        yield
    finally:
        _body_limit.reset(token)


@contextmanager
def cancellation(event: threading.Event) -> Iterator[None]:
    """No new attempt starts inside the block once ``event`` is set."""
    token = _cancel.set(event)
    try:
        yield
    finally:
        _cancel.reset(token)


def _check_cancelled() -> None:
    event = _cancel.get()
    if event is not None and event.is_set():
        raise _Cancelled("The call was interrupted; no further request is sent.")


def _time_left() -> float | None:
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()
