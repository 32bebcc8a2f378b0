"""Exceptions raised by aimlapi-bge, and the mapping from the openai SDK's errors.

Every error says what to do next. The original openai exception is kept as ``__cause__``;
``status_code`` and the server's ``request_id`` are carried when the server gave them.
Messages never contain the API key (the SDK's own messages do not either: they quote the
response body, which the server writes).

Hierarchy::

    AIMLAPIError
    ├── ConfigurationError        (also a ValueError: bad settings, unsafe key destination)
    │   └── LocalModelUnavailableError  local backend: model files neither cached nor downloadable
    ├── AuthenticationError       401, or a missing key
    ├── InsufficientCreditsError  403
    ├── ModelNotAvailableError    404
    ├── InvalidInputError         400 / 422 (also a ValueError)
    │   └── InputTooLongError     a text beyond the model's context window
    ├── BatchTooLargeError        413, or a 400/422 about batch or payload size (handled internally)
    ├── RateLimitError            429 after all retries
    ├── ServiceError              5xx, 408, 409, timeouts, dropped connections after all retries
    └── ResponseValidationError   a 2xx answer that cannot be trusted (wrong count, index, dimension)

When a call spanning several batches fails, the error also carries ``embeddings`` (the
vectors that were computed, ``None`` where missing), ``embedded_count`` and
``failed_positions`` (input positions), so nothing that succeeded is lost.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

__all__ = [
    "AIMLAPIError",
    "AuthenticationError",
    "BatchTooLargeError",
    "ConfigurationError",
    "InputTooLongError",
    "InsufficientCreditsError",
    "InvalidInputError",
    "LocalModelUnavailableError",
    "ModelNotAvailableError",
    "RateLimitError",
    "ResponseValidationError",
    "ServiceError",
    "describe_positions",
    "error_from_openai",
]

KEY_ENV_VAR = "AIMLAPI_API_KEY"
_TOO_LONG = re.compile(
    r"too long|token|context length|context window|maximum length|max_length|sequence length",
    re.IGNORECASE,
)
_BATCH_LIMIT = re.compile(
    r"(?:maximum allowed batch size|max(?:imum)? batch size|at most|maximum of|no more than)"
    r"\s*(?:is|of)?\s*:?\s*(\d+)",
    re.IGNORECASE,
)
_BATCH_TOO_LARGE = re.compile(
    r"batch size|batch_size|too many (inputs|items|texts)|payload|request entity too large|"
    r"body (is )?too large|array (is )?too long|must have at most|at most \d+ (items|inputs)",
    re.IGNORECASE,
)


class AIMLAPIError(Exception):
    """Base class of every error raised by aimlapi-bge."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        request_id: str | None = None,
        server_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.request_id = request_id
        self.server_message = server_message
        self.embeddings: list[list[float] | None] | None = None
        self.embedded_count: int | None = None
        self.failed_positions: list[int] = []

    def __str__(self) -> str:
        text = self.message
        if self.request_id:
            text += f" (request id {self.request_id})"
        if self.embeddings is not None:
            text += (
                f" [{self.embedded_count} of {len(self.embeddings)} texts were embedded;"
                f" failed positions: {describe_positions(self.failed_positions)};"
                " the computed vectors are in this error's .embeddings]"
            )
        return text

    def attach_partial(
        self, embeddings: list[list[float] | None], failed_positions: Sequence[int]
    ) -> None:
        """Record what the failed call did compute, so the caller loses nothing."""
        self.embeddings = embeddings
        self.failed_positions = sorted(failed_positions)
        self.embedded_count = sum(1 for vector in embeddings if vector is not None)


class ConfigurationError(AIMLAPIError, ValueError):
    """The settings cannot work (or would send the key somewhere unsafe)."""


class LocalModelUnavailableError(ConfigurationError):
    """The local backend's model files are neither cached nor downloadable, or do not load."""


class AuthenticationError(AIMLAPIError):
    """The key is missing or the server refused it (401)."""


class InsufficientCreditsError(AIMLAPIError):
    """The account has run out of credits (403)."""


class ModelNotAvailableError(AIMLAPIError):
    """The server does not serve the requested model (404)."""


class InvalidInputError(AIMLAPIError, ValueError):
    """The server rejected the input texts (400/422); ``positions`` names them."""

    def __init__(self, message: str, *, positions: Sequence[int] = (), **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.positions = list(positions)

    def __str__(self) -> str:
        text = super().__str__()
        if self.positions:
            text = (
                f"{text} Offending text(s) at position(s) {describe_positions(self.positions)}"
                " of the list you passed."
            )
        return text


class InputTooLongError(InvalidInputError):
    """A text is longer than the model's context window (512 tokens for bge-base-en-v1.5)."""


class BatchTooLargeError(AIMLAPIError):
    """The server refused a request because it held too many texts or bytes.

    ``max_batch`` is the limit the server stated, when its message names one.
    """

    def __init__(self, message: str, *, max_batch: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.max_batch = max_batch


class RateLimitError(AIMLAPIError):
    """The server kept answering 429 after every retry."""


class ServiceError(AIMLAPIError):
    """The server failed (5xx), timed out or dropped the connection after every retry."""


class ResponseValidationError(AIMLAPIError):
    """The server answered 2xx with a body that cannot be trusted."""


def describe_positions(positions: Sequence[int], limit: int = 12) -> str:
    """Render sorted input positions compactly: ``[0-127, 300, 512-639]``."""
    if not positions:
        return "none"
    ranges: list[str] = []
    start = previous = positions[0]
    for position in [*positions[1:], None]:
        if position is not None and position == previous + 1:
            previous = position
            continue
        ranges.append(str(start) if start == previous else f"{start}-{previous}")
        if position is not None:
            start = previous = position
    shown = ", ".join(ranges[:limit])
    if len(ranges) > limit:
        shown += f", ... ({len(ranges) - limit} more ranges)"
    return f"[{shown}]"


def server_error_details(body: object, fallback: str) -> tuple[str, str | None]:
    """Extract (message, request id) from any error body shape this plugin meets.

    Shapes: the AI/ML API's flat ``{message, path, requestId, statusCode, timestamp}``;
    OpenAI's ``{"error": {"message": ...}}``; text-embeddings-inference's
    ``{"error": "...", "error_type": "..."}``; FastAPI/Infinity's ``{"detail": ...}``.
    """
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except ValueError:
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
            return (text.strip()[:500] or fallback), None
    if not isinstance(body, dict):
        return fallback, None
    request_id = body.get("requestId") or body.get("request_id")
    message: Any = body.get("message")
    error = body.get("error")
    if isinstance(error, dict):
        message = error.get("message") or message
    elif isinstance(error, str):
        message = error
    detail = body.get("detail")
    if message is None and detail is not None:
        if isinstance(detail, list):
            message = "; ".join(
                str(item.get("msg", item)) if isinstance(item, dict) else str(item)
                for item in detail
            )
        else:
            message = str(detail)
    if isinstance(message, list):
        message = "; ".join(str(item) for item in message)
    return (str(message) if message else fallback), (str(request_id) if request_id else None)


def is_batch_too_large(status_code: int, message: str) -> bool:
    """True when the server says the request held too many texts or bytes."""
    if status_code == 413:
        return not _TOO_LONG.search(message) or bool(_BATCH_TOO_LARGE.search(message))
    return status_code in (400, 422) and bool(_BATCH_TOO_LARGE.search(message))


def error_from_openai(
    exc: BaseException,
    *,
    model: str,
    base_url: str,
    batch_size: int,
    key_note: str | None = None,
    key_sent: bool = True,
) -> AIMLAPIError:
    """Translate an openai SDK exception into this package's hierarchy.

    ``key_note`` is appended to 401 messages (for example: why an environment key was withheld);
    ``key_sent`` tells a refused key from a missing one.
    """
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return ServiceError(
            f"The request to {base_url} timed out after every retry. Raise `timeout` or"
            " `max_retries`, or lower `batch_size`."
        )
    if isinstance(exc, openai.APIConnectionError):
        return ServiceError(
            f"The connection to {base_url} failed after every retry ({exc.__cause__ or exc}):"
            " the server was unreachable, dropped the connection or cut its answer short."
            " Check the network and `base_url`, or raise `max_retries`."
        )
    if not isinstance(exc, openai.APIStatusError):
        return AIMLAPIError(str(exc))
    status = exc.status_code
    body: object = exc.body
    if body is None:
        try:
            body = exc.response.content
        except Exception:
            body = None
    message, request_id = server_error_details(body, fallback=exc.message)
    request_id = request_id or exc.response.headers.get("x-request-id") or exc.request_id
    extra: dict[str, Any] = {
        "status_code": status,
        "request_id": request_id,
        "server_message": message,
    }
    if status == 401:
        hint = (
            f"The server refused the API key ({message}). Set a valid key in {KEY_ENV_VAR}"
            " or pass api_key=."
            if key_sent
            else f"The server requires an API key and none was sent ({message}). Set"
            f" {KEY_ENV_VAR} or pass api_key=."
        )
        return AuthenticationError(hint + (f" {key_note}" if key_note else ""), **extra)
    if status == 403:
        return InsufficientCreditsError(
            f"The account has no credits left or may not use this model ({message}). Top up at"
            " https://aimlapi.com/app/billing, or use backend='local'.",
            **extra,
        )
    if status == 404:
        return ModelNotAvailableError(
            model_not_available_message(model, base_url, message), **extra
        )
    if status == 429:
        return RateLimitError(
            f"Still rate limited after every retry ({message}). Lower `max_concurrency`, raise"
            " `max_retries`, or try again later.",
            **extra,
        )
    if status in (408, 409) or status >= 500:  # the openai SDK retries all of these
        return ServiceError(
            f"The server failed with {status} after every retry ({message}). Try again later.",
            **extra,
        )
    if is_batch_too_large(status, message):
        limit = _BATCH_LIMIT.search(message)
        return BatchTooLargeError(
            f"The server refused a batch of {batch_size} texts as too large ({message}).",
            max_batch=int(limit.group(1)) if limit else None,
            **extra,
        )
    if status in (400, 413, 422) and _TOO_LONG.search(message):
        return InputTooLongError(
            f"A text is longer than the model's context window ({message}). Split long texts"
            " into chunks of at most 512 tokens (about 350 English words).",
            **extra,
        )
    return InvalidInputError(f"The server rejected the input ({status}: {message}).", **extra)


def model_not_available_message(model: str, base_url: str, server_message: str) -> str:
    """The 404 explanation: which model, why it may be gone, and the ways out."""
    text = f"The server at {base_url} does not serve the model {model!r} ({server_message})."
    if "bge" in model.lower():
        text += (
            " The AI/ML API lists BAAI/bge-base-en-v1.5 as deprecated (no longer callable) since"
            " 2026-03-30."
        )
    text += (
        " To keep the same vectors: use backend='local' (the same model in-process, extra"
        " [local]), fallback='local' to switch automatically, or point base_url at a"
        " self-hosted OpenAI-compatible server (text-embeddings-inference, Infinity, vLLM)"
        " serving the model."
    )
    return text
