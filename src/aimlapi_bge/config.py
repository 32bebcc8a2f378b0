"""Configuration: defaults, environment variables, and where the API key may be sent.

Resolved once per instance by :func:`resolve_config`.

Defaults and why:

* ``batch_size=128``: bge's context is 512 tokens, so 128 texts are at most ~65k tokens and a
  few hundred kB per request; the AI/ML API publishes no item limit, and servers that cap
  lower (text-embeddings-inference: 32) are handled by adaptive splitting.
* ``max_concurrency=8``: enough to hide a 100-300 ms round trip on large corpora, low enough
  not to trip per-key concurrency limits; sustained 429s lower it further automatically.
* ``max_retries=4``: the openai SDK's exponential backoff (0.5 s doubling to 8 s, honouring
  ``Retry-After``) then spans about 8 s before giving up on 429/408/409/5xx/connection errors.
* ``timeout=60`` seconds per attempt: a full batch takes well under a second on a healthy
  server; a minute tells a stuck connection from a slow one.

Key safety: a key that comes from the environment is only sent to ``https://*.aimlapi.com``,
to loopback, or to the base URL the environment itself names (``AIMLAPI_BASE_URL``). For any
other ``base_url`` given in code the key must be given in code too (or no key is sent, as
self-hosted servers usually need none). No key is ever sent over plain ``http://`` except to
loopback.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import SecretStr

from aimlapi_bge.errors import AuthenticationError, ConfigurationError

__all__ = [
    "BGE_QUERY_INSTRUCTION",
    "DEFAULT_BASE_URL",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_MODEL",
    "DEFAULT_TIMEOUT",
    "Backend",
    "EmbedderConfig",
    "default_query_instruction",
    "resolve_config",
]

DEFAULT_MODEL = "BAAI/bge-base-en-v1.5"
DEFAULT_BASE_URL = "https://api.aimlapi.com/v1"
DEFAULT_BATCH_SIZE = 128
DEFAULT_MAX_CONCURRENCY = 8
DEFAULT_MAX_RETRIES = 4
DEFAULT_TIMEOUT = 60.0
BGE_QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "

ENV_API_KEY = "AIMLAPI_API_KEY"
ENV_API_KEY_SDK = "AIML_API_KEY"
ENV_BASE_URL = "AIMLAPI_BASE_URL"
ENV_BACKEND = "AIMLAPI_BGE_BACKEND"
ENV_CACHE_DIR = "AIMLAPI_BGE_CACHE_DIR"

Backend = Literal["api", "local"]
_ENGLISH_BGE = re.compile(r"(^|/)bge-(small|base|large)-en(-|$)", re.IGNORECASE)


def default_query_instruction(model: str) -> str:
    """BAAI's retrieval instruction for English BGE models; no prefix for any other model."""
    return BGE_QUERY_INSTRUCTION if _ENGLISH_BGE.search(model) else ""


@dataclass(frozen=True)
class EmbedderConfig:
    """Every setting of an :class:`~aimlapi_bge.Embedder`, already resolved."""

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
    key_note: str | None = None

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_concurrency"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_retries < 0:
            raise ConfigurationError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.timeout <= 0:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {self.timeout}")
        if self.backend not in ("api", "local"):
            raise ConfigurationError(f"backend must be 'api' or 'local', got {self.backend!r}")
        if self.fallback not in (None, "local"):
            raise ConfigurationError(f"fallback must be None or 'local', got {self.fallback!r}")
        if self.local_precision not in ("fp32", "int8"):
            raise ConfigurationError(
                f"local_precision must be 'fp32' or 'int8', got {self.local_precision!r}"
            )


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


def _check_base_url(url: str) -> str:
    """Return ``url`` if it is an absolute http(s) URL; raise ConfigurationError otherwise."""
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018  # raises ValueError for a port out of range
    except ValueError:
        valid = False
    if not valid:
        raise ConfigurationError(
            f"base_url must be an absolute http(s) URL such as {DEFAULT_BASE_URL!r}, got {url!r}."
        )
    return url


def _same_endpoint(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def _secret(value: str | SecretStr | None) -> SecretStr | None:
    if value is None:
        return None
    secret = value if isinstance(value, SecretStr) else SecretStr(value)
    return secret if secret.get_secret_value().strip() else None


def resolve_config(
    *,
    api_key: str | SecretStr | None = None,
    base_url: str | None = None,
    backend: str | None = None,
    cache_dir: str | None = None,
    query_instruction: str | None = None,
    model: str = DEFAULT_MODEL,
    environ: Mapping[str, str] | None = None,
    **settings: Any,
) -> EmbedderConfig:
    """Resolve arguments against the environment and check where the key may go.

    Raises:
        AuthenticationError: the API backend points at the AI/ML API and no key was found.
        ConfigurationError: a key would travel over plain http to a non-loopback host,
            or a setting is out of range.
    """
    env = os.environ if environ is None else environ
    env_base_url = env.get(ENV_BASE_URL) or None
    resolved_url = _check_base_url((base_url or env_base_url or DEFAULT_BASE_URL).rstrip("/"))
    resolved_backend = backend or env.get(ENV_BACKEND) or "api"
    key = _secret(api_key)
    key_note = None
    if key is None:
        env_key = _secret(env.get(ENV_API_KEY) or env.get(ENV_API_KEY_SDK))
        trusted = (
            is_aimlapi(resolved_url)
            or is_loopback(resolved_url)
            or (env_base_url is not None and _same_endpoint(resolved_url, env_base_url))
        )
        if env_key is not None and trusted:
            key = env_key
        elif env_key is not None:
            key_note = (
                f"The key in {ENV_API_KEY} was not sent: a key from the environment only goes to"
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
    if resolved_backend == "api" and key is None and is_aimlapi(resolved_url):
        raise AuthenticationError(
            f"No API key for the AI/ML API: set {ENV_API_KEY} (or pass api_key=). Get a key at"
            " https://aimlapi.com/app/keys, or use backend='local' to run the model in-process."
        )
    instruction = (
        default_query_instruction(model) if query_instruction is None else query_instruction
    )
    return EmbedderConfig(
        model=model,
        api_key=key,
        base_url=resolved_url,
        backend=resolved_backend,  # type: ignore[arg-type]
        cache_dir=cache_dir or env.get(ENV_CACHE_DIR) or None,
        query_instruction=instruction,
        key_note=key_note,
        **settings,
    )
