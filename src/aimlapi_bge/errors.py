"""Exceptions raised by aimlapi-bge, and the mapping from the openai SDK's errors.

Every error says what to do next. The original openai exception is kept as ``__cause__``;
``status_code`` and the server's ``request_id`` are carried when the server gave them.
Messages never contain the API key (the SDK's own messages do not either: they quote the
response body, which the server writes).

Which status and body lead to which class is the table :data:`STATUS_ERRORS`. The hierarchy
and what each class means for a user are in docs/errors.md (a unit test keeps the two in step).

When an embed call fails, the error also carries ``embeddings`` (the vectors that were
computed, ``None`` where missing), ``embedded_count`` and ``failed_positions`` (input
positions), so nothing that succeeded is lost.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aimlapi_bge.env import ENV_API_KEY, ENV_BASE_URL
from aimlapi_bge.models import retired_on

__all__ = [
    "STATUS_ERRORS",
    "AIMLAPIError",
    "AuthenticationError",
    "BatchTooLargeError",
    "ConfigurationError",
    "EndpointNotFoundError",
    "ErrorRule",
    "InputTooLongError",
    "InsufficientCreditsError",
    "InvalidInputError",
    "LocalModelUnavailableError",
    "ModelNotAvailableError",
    "RateLimitError",
    "RedirectError",
    "ResponseValidationError",
    "ServiceError",
    "error_from_openai",
    "format_positions",
    "header_value_error",
    "unsendable_headers",
]


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
                f" failed positions: {format_positions(self.failed_positions)};"
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


class EndpointNotFoundError(ConfigurationError):
    """``base_url`` leads to no embeddings endpoint (404 on the route, or 405).

    A configuration problem, not an outage: ``fallback='local'`` does not switch on it.
    """


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
                f"{text} Offending text(s) at position(s) {format_positions(self.positions)}"
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


class RedirectError(AIMLAPIError):
    """The server answered with a redirect (3xx); aimlapi-bge never follows one.

    Following it could turn the POST into a GET or resend the texts, the key and
    ``default_headers`` to another origin. ``location`` is where the server pointed: set
    ``base_url`` to the final address instead.
    """

    def __init__(self, message: str, *, location: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.location = location


class ResponseValidationError(AIMLAPIError):
    """The server answered 2xx with a body that cannot be trusted."""


def format_positions(positions: Sequence[int], limit: int = 12) -> str:
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
    elif isinstance(error, str) and not message:  # NestJS puts the status text in "error"
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


# --- the mapping ---------------------------------------------------------------------------

#: A text beyond the model's context window.
_TOO_LONG = re.compile(
    r"too long|token|context length|context window|maximum length|max_length|sequence length",
    re.IGNORECASE,
)
#: A request with too many texts or bytes.
_BATCH_TOO_LARGE = re.compile(
    r"batch size|batch_size|too many (inputs|items|texts)|payload|request entity too large|"
    r"body (is )?too large|array (is )?too long|must have at most|at most \d+ (items|inputs)",
    re.IGNORECASE,
)
#: The limit a batch-too-large message states, when it names one.
_BATCH_LIMIT = re.compile(
    r"(?:maximum allowed batch size|max(?:imum)? batch size|at most|maximum of|no more than)"
    r"\s*(?:is|of)?\s*:?\s*(\d+)",
    re.IGNORECASE,
)
#: A 404 about the model: OpenAI's ``model_not_found`` code, vLLM's "The model `x` does not
#: exist", the AI/ML API's "Model x is deprecated ..." / "Model x not found".
_MODEL_404 = re.compile(
    r"model_not_found|no such model|\b(unknown|invalid|unsupported) model\b|"
    r"\bmodels?\b.{0,120}?\b(not found|does ?n[o']t exist|not exist|unknown|not (available|"
    r"supported|served|loaded|deployed)|no longer|deprecated|retired|decommissioned)",
    re.IGNORECASE | re.DOTALL,
)
#: A 404 about the URL: Express/NestJS "Cannot POST /embeddings", FastAPI's (Infinity, vLLM)
#: and NestJS's bare "Not Found", OpenAI's "Invalid URL (POST /v1/embedding)", Go's "404 page
#: not found", an HTML error page, and an empty body (text-embeddings-inference's router).
_ROUTE_404 = re.compile(
    r"\A\s*\Z|\A\s*(404\s*:?\s*)?not found\.?\s*\Z|cannot (post|get|put) /|invalid url|"
    r"404 page not found|<!doctype html|<html|<title>|no route|route not found|"
    r"(unknown|no such) (route|endpoint|path|url)|(endpoint|path|route|url) not found",
    re.IGNORECASE,
)
#: What HTTP forbids in a header value (RFC 9110 5.5): control characters (a trailing newline
#: from a file or a shell is the usual one) and leading or trailing whitespace.
_ILLEGAL_HEADER_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]|\A[ \t]|[ \t]\Z")
#: h11's (and so httpx's) complaint, which quotes the value.
_HEADER_VALUE_MESSAGE = re.compile(r"illegal header value", re.IGNORECASE)

_BACKEND_LOCAL = "backend='local' (CLI: --backend local)"
_MAX_RETRIES = "max_retries (CLI: --max-retries)"
_SET_KEY = f"Set a valid key in {ENV_API_KEY} or pass api_key= (the CLI reads {ENV_API_KEY})."
_BASE_URL_SHAPE = (
    "base_url (CLI: --base-url, or {base_url_env}) should be the API root ending in /v1, e.g."
    " https://api.aimlapi.com/v1, without /embeddings."
)
_LIST_MODELS = (
    "List the models it serves with GET {models_url}, e.g."
    ' curl -H "Authorization: Bearer ${key_env}" {models_url}'
)


@dataclass(frozen=True)
class _Reply:
    """What a refused request tells us, as the table rows read it."""

    status: int
    message: str
    text: str  # what the rows search: the server's message (or raw text) and its error code
    model: str
    base_url: str
    batch_size: int
    key_sent: bool

    @property
    def names_model(self) -> bool:
        """The server's words name the requested model (its full id or its last segment)."""
        haystack = self.text.casefold()
        model = self.model.strip().casefold()
        short = model.rsplit("/", 1)[-1]
        return bool(model) and (model in haystack or (len(short) > 3 and short in haystack))

    @property
    def retired(self) -> bool:
        """The requested model is one the AI/ML API retired."""
        return retired_on(self.model) is not None

    @property
    def retired_model(self) -> bool:
        """A retired model, and the server's words name it."""
        return self.retired and self.names_model

    def fields(self) -> dict[str, object]:
        root = self.base_url.rstrip("/")
        retired = retired_on(self.model)
        return {
            "status": self.status,
            "message": self.message,
            "model": self.model,
            "base_url": self.base_url,
            "endpoint": f"{root}/embeddings",
            "models_url": f"{root}/models",
            "batch_size": self.batch_size,
            "key_env": ENV_API_KEY,
            "base_url_env": ENV_BASE_URL,
            "retired_on": retired.isoformat() if retired else "",
            "base_url_hint": _base_url_hint(self.base_url),
        }


@dataclass(frozen=True)
class ErrorRule:
    """One row of :data:`STATUS_ERRORS`: which answers it matches, and what it raises.

    A row matches when the status is in ``statuses``, ``pattern`` (if any) is found in the
    server's words (its message, or raw text, and its error code), and ``when`` (if any) holds. ``remedy``
    is formatted with the fields of the failed call (``{message}``, ``{model}``,
    ``{base_url}``, ``{endpoint}``, ``{models_url}``, ``{batch_size}``, ``{retired_on}``, ...).
    """

    statuses: frozenset[int] | None  # None: any status
    pattern: re.Pattern[str] | None
    error: type[AIMLAPIError]
    remedy: str
    when: Callable[[_Reply], bool] | None = None

    def matches(self, reply: _Reply) -> bool:
        return (
            (self.statuses is None or reply.status in self.statuses)
            and (self.pattern is None or bool(self.pattern.search(reply.text)))
            and (self.when is None or self.when(reply))
        )


def _rule(
    statuses: Iterable[int] | None,
    pattern: re.Pattern[str] | None,
    error: type[AIMLAPIError],
    remedy: str,
    when: Callable[[_Reply], bool] | None = None,
) -> ErrorRule:
    return ErrorRule(
        None if statuses is None else frozenset(statuses), pattern, error, remedy, when
    )


_RETIRED = (
    "The server at {base_url} does not serve the model '{model}' ({message}). The AI/ML API"
    " lists {model} as deprecated (no longer callable) since {retired_on}. To keep the same"
    f" vectors: {_BACKEND_LOCAL} computes them in-process (extra [local]), fallback='local'"
    " switches automatically (Python only), or point base_url (CLI: --base-url) at a"
    " self-hosted OpenAI-compatible server (text-embeddings-inference, Infinity, vLLM) serving"
    " the model."
)
_NOT_SERVED = (
    "The server at {base_url} does not serve the model '{model}' ({message}). Check the"
    f" model name (CLI: --model). {_LIST_MODELS}"
)
_NO_ROUTE = (
    "POST {endpoint} answered {status}: there is no embeddings endpoint at that URL"
    " ({message}). {base_url_hint}" + _BASE_URL_SHAPE
)
_BATCH_REMEDY = "The server refused a batch of {batch_size} texts as too large ({message})."
_AMBIGUOUS_404 = (
    "POST {endpoint} answered 404 ({message}). Either the URL is wrong: "
    + _BASE_URL_SHAPE
    + " Or the server does not serve the model '{model}': "
    + _LIST_MODELS
)

#: Status answers after the SDK's retries, first matching row wins.
STATUS_ERRORS: tuple[ErrorRule, ...] = (
    _rule(
        [401],
        None,
        AuthenticationError,
        "The server refused the API key ({message}). " + _SET_KEY,
        when=lambda r: r.key_sent,
    ),
    _rule(
        [401],
        None,
        AuthenticationError,
        "The server requires an API key and none was sent ({message}). " + _SET_KEY,
    ),
    _rule(
        [403],
        None,
        InsufficientCreditsError,
        "The account has no credits left or may not use this model ({message}). Top up at"
        f" https://aimlapi.com/app/billing, or use {_BACKEND_LOCAL}.",
    ),
    # 404: the model, the URL, or (when the server's words tell neither) both possibilities.
    _rule([404], _MODEL_404, ModelNotAvailableError, _RETIRED, when=lambda r: r.retired),
    _rule([404], _MODEL_404, ModelNotAvailableError, _NOT_SERVED),
    _rule([404, 405], _ROUTE_404, EndpointNotFoundError, _NO_ROUTE),
    _rule([405], None, EndpointNotFoundError, _NO_ROUTE),
    _rule([404], None, ModelNotAvailableError, _RETIRED, when=lambda r: r.retired_model),
    _rule([404], None, ModelNotAvailableError, _NOT_SERVED, when=lambda r: r.names_model),
    _rule([404], None, ModelNotAvailableError, _AMBIGUOUS_404),
    _rule(
        [429],
        None,
        RateLimitError,
        "Still rate limited after every retry ({message}). Lower max_concurrency (CLI:"
        f" --max-concurrency), raise {_MAX_RETRIES}, or try again later.",
    ),
    _rule(  # the openai SDK retries all of these
        [408, 409, *range(500, 600)],
        None,
        ServiceError,
        f"The server failed with {{status}} after every retry ({{message}}). Try again later,"
        f" or raise {_MAX_RETRIES}.",
    ),
    # Too many texts or bytes (handled internally by splitting), or one text too long.
    _rule([400, 413, 422], _BATCH_TOO_LARGE, BatchTooLargeError, _BATCH_REMEDY),
    _rule(
        [400, 413, 422],
        _TOO_LONG,
        InputTooLongError,
        "A text is longer than the model's context window ({message}). Split long texts into"
        " chunks of at most 512 tokens (about 350 English words).",
    ),
    _rule([413], None, BatchTooLargeError, _BATCH_REMEDY),
    # A 400 that names the model as unknown (Infinity: "Invalid model: ..."): not the texts.
    _rule([400], _MODEL_404, ModelNotAvailableError, _RETIRED, when=lambda r: r.retired_model),
    _rule([400], _MODEL_404, ModelNotAvailableError, _NOT_SERVED, when=lambda r: r.names_model),
    _rule(
        None,
        None,
        InvalidInputError,
        "The server rejected the input ({status}: {message}).",
    ),
)


def _base_url_hint(base_url: str) -> str:
    """What is visibly wrong with ``base_url`` itself, if anything ('' otherwise)."""
    path = urlsplit(base_url).path.rstrip("/")
    if path.endswith("/embeddings"):
        return f"base_url {base_url!r} already ends in /embeddings (the path is added to it). "
    if not path.endswith("/v1"):
        return f"base_url {base_url!r} does not end in /v1. "
    return ""


def _error_code(body: object) -> str:
    """OpenAI's ``error.code`` (e.g. ``model_not_found``), when the body has one."""
    if isinstance(body, dict):
        inner = body.get("error")
        code = inner.get("code") if isinstance(inner, dict) else body.get("code")
        if isinstance(code, str):
            return code
    return ""


def _summary(text: str) -> str:
    """A server message fit to quote: an HTML page becomes its title."""
    if not re.search(r"<html|<!doctype", text, re.IGNORECASE):
        return text
    title = re.search(r"<title[^>]*>([^<]*)</title>", text, re.IGNORECASE)
    name = " ".join(title.group(1).split()) if title else ""
    return "an HTML page" + (f" ({name})" if name else "")


def _status_reply(
    exc: Any, *, model: str, base_url: str, batch_size: int, key_sent: bool
) -> tuple[_Reply, str | None]:
    """Read a status error's body (raw bytes first: the SDK keeps only part of some shapes)."""
    try:
        raw: bytes = exc.response.content
    except Exception:  # a streamed or closed response
        raw = b""
    body: object = raw
    if raw.strip():
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
    elif exc.body not in (None, ""):
        body = exc.body
    message, request_id = server_error_details(body, fallback="")
    text = f"{message} {_error_code(body)}".strip()
    shown = _summary(message) if message else f"an empty {exc.status_code} answer"
    reply = _Reply(exc.status_code, shown, text, model, base_url, batch_size, key_sent)
    return reply, request_id


def unsendable_headers(headers: Iterable[tuple[str | bytes, str | bytes]]) -> list[str]:
    """Names of the headers whose values cannot go on the wire (the values are never shown).

    A value cannot be sent when it holds a control character (a trailing newline from a file or
    a shell is the usual one), leading or trailing whitespace, or, as text, anything but ASCII
    (httpx encodes header text as ASCII). Pass ``mapping.items()`` or a request's
    ``headers.raw``; :func:`header_value_error` turns the names into the error to raise.
    """
    names: list[str] = []
    for name, value in headers:
        if isinstance(value, str):
            try:
                value = value.encode("ascii")
            except UnicodeEncodeError:
                value = b"\x00"
        if _ILLEGAL_HEADER_VALUE.search(value):
            names.append(name.decode("latin-1") if isinstance(name, bytes) else name)
    return names


def _illegal_headers(exc: BaseException) -> list[str]:
    request = getattr(exc, "request", None)
    return unsendable_headers(getattr(getattr(request, "headers", None), "raw", None) or [])


def _withhold_header_values(exc: BaseException, names: Sequence[str]) -> bool:
    """Rewrite the transport's "Illegal header value b'...'" messages in the chain.

    They quote the value, which may be the API key; the chain travels with the error
    (``__cause__``) into tracebacks and logs. True when there was such a message.
    """
    found = False
    withheld = f"Illegal header value in {', '.join(names) or 'a header'} (value withheld)"
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if _HEADER_VALUE_MESSAGE.search(str(current)):
            current.args = (withheld,)
            found = True
        pending += [current.__cause__, current.__context__]
    return found


def header_value_error(names: Sequence[str]) -> ConfigurationError:
    """The error for headers that cannot be sent, naming them (``authorization``: the key)."""
    listed = ", ".join(repr(name) for name in names) or "(unknown)"
    if any(name.lower() == "authorization" for name in names):
        what = (
            "The API key cannot be sent: it holds a line break, another control character,"
            " leading or trailing whitespace, or a non-ASCII character (header"
            " 'authorization'). Strip it, e.g."
            f" api_key=key.strip(), or fix {ENV_API_KEY}."
        )
        others = [name for name in names if name.lower() != "authorization"]
        if others:
            what += " The same goes for header(s) " + ", ".join(map(repr, others)) + "."
        return ConfigurationError(what)
    return ConfigurationError(
        f"Header(s) {listed} cannot be sent: a value holds a line break, another control"
        " character, leading or trailing whitespace, or a non-ASCII character. Fix"
        " default_headers."
    )


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

    Status answers go through :data:`STATUS_ERRORS`, the first matching row wins.
    ``key_note`` is appended to 401 messages (for example: why an environment key was
    withheld); ``key_sent`` tells a refused key from a missing one.
    """
    import openai

    if isinstance(exc, openai.APIConnectionError):
        # Never sent: the transport refused the header before any byte left (the SDK calls
        # that a connection error and retried it anyway).
        names = _illegal_headers(exc)
        if _withhold_header_values(exc, names) or names:
            return header_value_error(names)
    if isinstance(exc, openai.APITimeoutError):
        return ServiceError(
            f"The request to {base_url} timed out after every retry. Raise timeout (CLI:"
            f" --timeout) or {_MAX_RETRIES}, or lower batch_size (CLI: --batch-size)."
        )
    if isinstance(exc, openai.APIConnectionError):
        return ServiceError(
            f"The connection to {base_url} failed after every retry ({exc.__cause__ or exc}):"
            " the server was unreachable, dropped the connection or cut its answer short."
            f" Check the network and base_url (CLI: --base-url), or raise {_MAX_RETRIES}."
        )
    if not isinstance(exc, openai.APIStatusError):
        return AIMLAPIError(str(exc))
    reply, request_id = _status_reply(
        exc, model=model, base_url=base_url, batch_size=batch_size, key_sent=key_sent
    )
    rule = next(rule for rule in STATUS_ERRORS if rule.matches(reply))
    message = rule.remedy.format(**reply.fields())
    if rule.error is AuthenticationError and key_note:
        message += f" {key_note}"
    extra: dict[str, Any] = {
        "status_code": reply.status,
        "request_id": request_id or exc.response.headers.get("x-request-id") or exc.request_id,
        "server_message": reply.message,
    }
    if issubclass(rule.error, BatchTooLargeError):
        limit = _BATCH_LIMIT.search(reply.text)
        extra["max_batch"] = int(limit.group(1)) if limit else None
    return rule.error(message, **extra)
