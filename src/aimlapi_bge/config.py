"""Settings: their checks, :class:`EmbedderConfig`, and :func:`resolve_config`.

Every setting is declared once, with its help text, in :mod:`aimlapi_bge.settings`; the rules
for where an API key may be sent are explained in ``docs/configuration.md``. Defaults, and why:
``batch_size=128`` (bge reads at most 512 tokens, so a batch stays a few hundred kB; servers
that cap lower are handled by adaptive splitting); ``max_concurrency=8`` (hides a 100-300 ms
round trip without tripping per-key limits; sustained 429s lower it automatically);
``max_retries=4`` (the openai SDK's backoff then spans about 8 s); ``timeout=60`` seconds per
attempt (a batch takes well under a second on a healthy server).
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import operator
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import SecretStr

from aimlapi_bge.env import (
    ENV_API_KEY,
    ENV_API_KEY_SDK,
    ENV_BACKEND,
    ENV_BASE_URL,
    ENV_CACHE_DIR,
)
from aimlapi_bge.errors import AuthenticationError, ConfigurationError

__all__ = [
    "BGE_QUERY_INSTRUCTION",
    "DEFAULT_BASE_URL",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_MODEL",
    "DEFAULT_TIMEOUT",
    "MASK",
    "Backend",
    "EmbedderConfig",
    "SecretHeaders",
    "check_setting",
    "default_query_instruction",
    "normalise_setting",
    "resolve_config",
]

DEFAULT_MODEL = "BAAI/bge-base-en-v1.5"
DEFAULT_BASE_URL = "https://api.aimlapi.com/v1"
DEFAULT_BATCH_SIZE = 128
DEFAULT_MAX_CONCURRENCY = 8
DEFAULT_MAX_RETRIES = 4
DEFAULT_TIMEOUT = 60.0
BGE_QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "
MASK = "**********"
"""What a secret value is shown as (pydantic's ``SecretStr`` mask)."""

Backend = Literal["api", "local"]
_ENGLISH_BGE = re.compile(r"(^|/)bge-(small|base|large)-en(-|$)", re.IGNORECASE)
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def default_query_instruction(model: str) -> str:
    """BAAI's retrieval instruction for English BGE models; no prefix for any other model."""
    return BGE_QUERY_INSTRUCTION if _ENGLISH_BGE.search(model) else ""


# --- checks of single values ------------------------------------------------------------------
# Each returns the value normalised, or raises ValueError whose message is the problem without
# the setting's name (callers add the name as the user spelt it: batch_size, embed_batch_size,
# --batch-size).


def _bad_character(text: str, *, spaces_allowed: bool) -> str | None:
    """Where ``text`` has a character that cannot go into an HTTP header, described."""
    for position, char in enumerate(text, 1):
        if char in "\r\n":
            kind = "a line break"
        elif char in " \t":
            if spaces_allowed:
                continue
            kind = "a space" if char == " " else "a tab"
        elif char.isspace() or ord(char) < 32 or ord(char) == 127:
            kind = "a control character"
        elif not char.isascii():
            kind = "a non-ASCII character"
        else:
            continue
        return f"{kind} at character {position} of {len(text)}"
    return None


def _integer(minimum: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(f"must be an integer, got {value!r}")
        try:
            number = operator.index(value)
        except TypeError:
            raise ValueError(f"must be an integer, got {value!r}") from None
        if number < minimum:
            raise ValueError(f"must be at least {minimum}, got {number}")
        return number

    return check


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be a number of seconds, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"must be a finite number of seconds above 0, got {value!r}")
    return seconds


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string, got {value!r}")
    return value


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else check(value)


def _instruction(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string ('' for none), got {type(value).__name__}")
    return value


def _choice(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return str(value)

    return check


def _path(value: Any) -> str:
    try:
        path = os.fspath(value)
    except TypeError:
        raise ValueError(f"must be a path, got {type(value).__name__}") from None
    if not isinstance(path, str) or not path.strip():
        raise ValueError(f"must be a non-empty path, got {value!r}")
    return path


def _url(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a URL string, got {type(value).__name__}")
    url = value.strip()
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018  # raises ValueError for a port out of range
    except ValueError:
        valid = False
    if not valid:
        raise ValueError(f"must be an absolute http(s) URL such as {DEFAULT_BASE_URL!r}, got {url!r}")
    problem = _bad_character(url, spaces_allowed=False)  # urlsplit drops CR, LF and tab
    if problem:
        raise ValueError(f"has {problem}: a URL has none")
    if parts.username is not None or parts.password is not None:
        # The URL is not echoed: what precedes '@' may be a password.
        raise ValueError(
            "must not carry a user name or password (user:pass@...): pass the key as api_key="
            " (or a header in default_headers)"
        )
    return url.rstrip("/")


class SecretHeaders(dict[str, str]):
    """HTTP headers whose values are secrets: a ``dict`` whose repr shows the names only."""

    def __repr__(self) -> str:
        return repr(dict.fromkeys(self, MASK))

    __str__ = __repr__


def _headers(value: Any) -> SecretHeaders:
    if not isinstance(value, Mapping):
        raise ValueError(f"must be a mapping of header names to values, got {type(value).__name__}")
    headers = SecretHeaders()
    for name, header_value in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"has an invalid header name {name!r}")
        if not isinstance(header_value, str):
            raise ValueError(f"has header {name!r} with a {type(header_value).__name__} value")
        stripped = header_value.strip()
        problem = _bad_character(stripped, spaces_allowed=True)
        if problem:  # the value is a secret: never shown
            raise ValueError(f"has header {name!r} with {problem} in its value (not shown)")
        if stripped == MASK:
            raise ValueError(
                f"has header {name!r} with the mask {MASK!r} for a value (from a serialised"
                " copy? header values are never serialised): pass the real value"
            )
        headers[name] = stripped
    return headers


def _http_client(kind: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        import httpx2  # only when a client is given, so it is already imported

        expected = httpx2.Client if kind == "sync" else httpx2.AsyncClient
        if not isinstance(value, expected):
            raise ValueError(
                f"must be an httpx2.{expected.__name__} (openai.Default"
                f"{'' if kind == 'sync' else 'Async'}HttpxClient), got {type(value).__name__}"
            )
        return value

    return check


def _no_key_check(value: Any) -> Any:
    return value  # keys are checked by _key, which names where the key came from


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "model": _text,
    "api_key": _no_key_check,
    "base_url": _optional(_url),
    "batch_size": _integer(1),
    "max_concurrency": _integer(1),
    "max_retries": _integer(0),
    "timeout": _seconds,
    "query_instruction": _optional(_instruction),
    "default_headers": _optional(_headers),
    "backend": _optional(_choice("api", "local")),
    "fallback": _optional(_choice("local")),
    "cache_dir": _optional(_path),
    "local_model_path": _optional(_path),
    "local_precision": _choice("fp32", "int8"),
    "http_client": _optional(_http_client("sync")),
    "http_async_client": _optional(_http_client("async")),
}


def normalise_setting(name: str, value: Any) -> Any:
    """``value`` checked and normalised for setting ``name``.

    Raises:
        ValueError: the problem, worded to follow the setting's name (``"must be at least 1,
            got 0"``); :func:`check_setting` raises it as a :class:`ConfigurationError`.
    """
    check = _CHECKS.get(name)
    return value if check is None else check(value)


def check_setting(name: str, value: Any, *, label: str | None = None) -> Any:
    """``value`` checked and normalised for setting ``name``; ``label`` names it in errors.

    Raises:
        ConfigurationError: the value is invalid (the message starts with ``label``).
    """
    if name == "api_key":
        return _key(value, f"{label or name}=")
    try:
        return normalise_setting(name, value)
    except ValueError as error:
        raise ConfigurationError(f"{label or name} {error}") from None


def _key(value: Any, source: str) -> SecretStr | None:
    """A key stripped of surrounding whitespace (None when blank); ``source`` names its origin."""
    if value is None:
        return None
    if isinstance(value, SecretStr):
        text = value.get_secret_value()
    elif isinstance(value, str):
        text = value
    else:
        raise ConfigurationError(
            f"The API key given as {source} must be a str or SecretStr, got {type(value).__name__}."
        )
    text = text.strip()
    if not text:
        return None
    problem = _bad_character(text, spaces_allowed=False)
    if problem:
        origin = f"given as {source}" if source.endswith("=") else f"in {source}"
        raise ConfigurationError(
            f"The API key {origin} has {problem} (the key is not shown). A key has no"
            " whitespace, control or non-ASCII characters inside it: was a second line or"
            " value pasted with it?"
        )
    return SecretStr(text)


# --- the resolved configuration ---------------------------------------------------------------


@dataclass(frozen=True)
class EmbedderConfig:
    """Every setting of an :class:`~aimlapi_bge.Embedder`, already resolved and checked."""

    model: str = DEFAULT_MODEL
    api_key: SecretStr | None = field(default=None, repr=False)
    base_url: str = DEFAULT_BASE_URL
    batch_size: int = DEFAULT_BATCH_SIZE
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    max_retries: int = DEFAULT_MAX_RETRIES
    timeout: float = DEFAULT_TIMEOUT
    query_instruction: str = BGE_QUERY_INSTRUCTION
    default_headers: Mapping[str, str] | None = field(default=None, repr=False)
    backend: Backend = "api"
    fallback: Literal["local"] | None = None
    cache_dir: str | None = None
    local_model_path: str | None = None
    local_precision: Literal["fp32", "int8"] = "fp32"
    http_client: Any = field(default=None, repr=False, compare=False)
    http_async_client: Any = field(default=None, repr=False, compare=False)
    key_note: str | None = field(default=None, metadata={"derived": True})
    """Why a key found in the environment was not used (appended to 401 messages)."""

    def __post_init__(self) -> None:
        for item in fields(self):
            if not item.metadata.get("derived"):
                value = check_setting(item.name, getattr(self, item.name))
                object.__setattr__(self, item.name, value)
        for name in ("base_url", "query_instruction", "backend"):
            if getattr(self, name) is None:
                raise ConfigurationError(
                    f"EmbedderConfig.{name} must be resolved (resolve_config fills it), got None"
                )


# --- resolution -------------------------------------------------------------------------------


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def is_loopback(url: str) -> bool:
    """True for URLs on this machine (localhost, 127.0.0.0/8, ::1)."""
    host = _host(url)
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_aimlapi(url: str) -> bool:
    """True for https URLs on aimlapi.com or one of its subdomains."""
    host = _host(url)
    return urlsplit(url).scheme == "https" and (
        host == "aimlapi.com" or host.endswith(".aimlapi.com")
    )


def _same_endpoint(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def _from_env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return value if value is not None and value.strip() else None


_RESOLVED = ("model", "api_key", "base_url", "backend", "cache_dir", "query_instruction")
_PASSED_ON = tuple(
    item.name
    for item in fields(EmbedderConfig)
    if item.name not in _RESOLVED and not item.metadata.get("derived")
)


def resolve_config(
    *,
    api_key: str | SecretStr | None = None,
    base_url: str | None = None,
    backend: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    query_instruction: str | None = None,
    model: str = DEFAULT_MODEL,
    environ: Mapping[str, str] | None = None,
    **settings: Any,
) -> EmbedderConfig:
    """Resolve arguments against the environment and check where the key may go.

    ``settings`` are the other :class:`EmbedderConfig` fields (``batch_size``, ``timeout``...).

    Raises:
        AuthenticationError: the API backend points at the AI/ML API and no key was found.
        ConfigurationError: a setting is invalid or unknown, or a key would travel over plain
            http to a non-loopback host.
    """
    unknown = sorted(set(settings) - set(_PASSED_ON))
    if unknown:
        known = [*_RESOLVED, *_PASSED_ON]
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; settings: {', '.join(known)}"
        raise ConfigurationError(f"Unknown setting {unknown[0]!r}{hint}")
    settings = {name: check_setting(name, value) for name, value in settings.items()}
    model = check_setting("model", model)
    if backend is not None:
        backend = check_setting("backend", backend)
    env = os.environ if environ is None else environ
    env_base_url = _from_env(env, ENV_BASE_URL)
    if base_url is not None:
        resolved_url = check_setting("base_url", base_url)
    else:
        resolved_url = check_setting("base_url", env_base_url or DEFAULT_BASE_URL, label=ENV_BASE_URL)
    if env_base_url is not None:
        try:  # only compared with base_url below: an unusable one trusts nothing
            env_base_url = normalise_setting("base_url", env_base_url)
        except ValueError:
            env_base_url = None
    if backend is None:
        backend = check_setting("backend", _from_env(env, ENV_BACKEND), label=ENV_BACKEND)
    if cache_dir is None:
        cache_dir = check_setting("cache_dir", _from_env(env, ENV_CACHE_DIR), label=ENV_CACHE_DIR)
    key = _key(api_key, "api_key=")
    key_note = None
    if key is None:
        env_var = ENV_API_KEY if _from_env(env, ENV_API_KEY) else ENV_API_KEY_SDK
        env_key_text = _from_env(env, env_var)
        trusted = (
            is_aimlapi(resolved_url)
            or is_loopback(resolved_url)
            or (env_base_url is not None and _same_endpoint(resolved_url, env_base_url))
        )
        if env_key_text is not None and trusted:
            key = _key(env_key_text, env_var)
        elif env_key_text is not None:
            key_note = (
                f"The key in {env_var} was not sent: a key from the environment only goes to"
                f" *.aimlapi.com, loopback or {ENV_BASE_URL}; pass api_key= for {resolved_url}."
            )
    if (
        key is not None
        and urlsplit(resolved_url).scheme != "https"
        and not is_loopback(resolved_url)
    ):
        raise ConfigurationError(
            f"Refusing to send an API key over plain http to {resolved_url}: use https, or no key."
        )
    if (backend or "api") == "api" and key is None and is_aimlapi(resolved_url):
        raise AuthenticationError(
            f"No API key for the AI/ML API: set {ENV_API_KEY} (or pass api_key=). Get a key at"
            " https://aimlapi.com/app/keys, or use backend='local' to run the model in-process."
        )
    if query_instruction is None:
        query_instruction = default_query_instruction(model)
    return EmbedderConfig(
        model=model,
        api_key=key,
        base_url=resolved_url,
        backend=backend or "api",  # type: ignore[arg-type]  # checked in EmbedderConfig
        cache_dir=cache_dir,  # type: ignore[arg-type]  # normalised to str in EmbedderConfig
        query_instruction=query_instruction,
        key_note=key_note,
        **settings,
    )
