"""The one declaration of every setting: name, type, default, help, and where users set it.

:class:`~aimlapi_bge.config.EmbedderConfig`, :func:`~aimlapi_bge.config.resolve_config`, the
command-line options, both adapters' fields and the configuration table in the documentation
follow :data:`SETTINGS` (the CLI is built from it; the rest is checked against it by
``tests/unit/test_settings_declaration.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aimlapi_bge.config import (
    DEFAULT_BASE_URL,
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT,
)
from aimlapi_bge.env import ENV_API_KEY, ENV_API_KEY_SDK, ENV_BACKEND, ENV_BASE_URL, ENV_CACHE_DIR

if TYPE_CHECKING:
    from aimlapi_bge.embedder import Embedder

__all__ = ["SETTINGS", "Setting", "setting", "settings_summary"]


@dataclass(frozen=True)
class Setting:
    """One setting, as every entry point spells it."""

    name: str
    """Core name: the ``EmbedderConfig`` field and ``resolve_config`` keyword."""
    annotation: str
    """The type as users read it, e.g. ``"int"`` or ``"str | None"``."""
    default: Any
    """The default value; ``None`` when it is computed (see ``default_doc``)."""
    help: str
    """One line, ending with a period."""
    env: str | None = None
    """The environment variable that supplies it, if any."""
    cli_flag: str | None = None
    """The command-line option (``"--batch-size"``); None when not on the command line."""
    langchain: str | None = None
    """The ``AIMLBGEEmbeddings`` field; None when not exposed."""
    llama_index: str | None = None
    """The ``AIMLBGEEmbedding`` field; None when not exposed."""
    secret: bool = False
    """Never shown in a repr, dump or log (values masked)."""
    default_doc: str | None = None
    """How a computed default is described in the documentation."""


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "model",
        "str",
        DEFAULT_MODEL,
        "Embedding model name; the default gives 768-dimensional vectors.",
        cli_flag="--model",
        langchain="model",
        llama_index="model_name",
    ),
    Setting(
        "api_key",
        "SecretStr | None",
        None,
        "API key; never taken from the command line, never shown or logged.",
        env=ENV_API_KEY,
        secret=True,
        default_doc=f"${ENV_API_KEY}, else ${ENV_API_KEY_SDK}",
        langchain="api_key",
        llama_index="api_key",
    ),
    Setting(
        "base_url",
        "str | None",
        None,
        "OpenAI-compatible endpoint (AI/ML API, text-embeddings-inference, Infinity, vLLM).",
        env=ENV_BASE_URL,
        cli_flag="--base-url",
        default_doc=f"${ENV_BASE_URL}, else {DEFAULT_BASE_URL}",
        langchain="base_url",
        llama_index="base_url",
    ),
    Setting(
        "batch_size",
        "int",
        DEFAULT_BATCH_SIZE,
        "Texts per request; shrinks by itself when a server refuses the size.",
        cli_flag="--batch-size",
        langchain="batch_size",
        llama_index="embed_batch_size",
    ),
    Setting(
        "max_concurrency",
        "int",
        DEFAULT_MAX_CONCURRENCY,
        "Requests in flight at most, sync and async; lowered while the server answers 429.",
        cli_flag="--max-concurrency",
        langchain="max_concurrency",
        llama_index="max_concurrency",
    ),
    Setting(
        "max_retries",
        "int",
        DEFAULT_MAX_RETRIES,
        "Retries of 429/408/409/5xx and connection errors, with the openai SDK's backoff.",
        cli_flag="--max-retries",
        langchain="max_retries",
        llama_index="max_retries",
    ),
    Setting(
        "timeout",
        "float",
        DEFAULT_TIMEOUT,
        "Seconds per request attempt.",
        cli_flag="--timeout",
        langchain="timeout",
        llama_index="timeout",
    ),
    Setting(
        "query_instruction",
        "str | None",
        None,
        "Prefix for queries only; an empty string turns it off.",
        cli_flag="--query-instruction",
        default_doc="BAAI's retrieval instruction for English BGE models, else none",
        langchain="query_instruction",
        llama_index="query_instruction",
    ),
    Setting(
        "default_headers",
        "dict[str, str] | None",
        None,
        "Extra HTTP headers for every request; values are secret (shown masked).",
        secret=True,
        langchain="default_headers",
        llama_index="default_headers",
    ),
    Setting(
        "backend",
        "Literal['api', 'local'] | None",
        None,
        "api: HTTP requests; local: the model in-process (extra [local]).",
        env=ENV_BACKEND,
        cli_flag="--backend",
        default_doc=f"${ENV_BACKEND}, else api",
        langchain="backend",
        llama_index="backend",
    ),
    Setting(
        "fallback",
        "Literal['local'] | None",
        None,
        "Switch to the local backend when the API refuses the model or stays unreachable.",
        cli_flag="--fallback",
        langchain="fallback",
        llama_index="fallback",
    ),
    Setting(
        "cache_dir",
        "str | None",
        None,
        "Local backend: where model files are cached.",
        env=ENV_CACHE_DIR,
        cli_flag="--cache-dir",
        default_doc=f"${ENV_CACHE_DIR}, else $HF_HOME/hub, else the user cache directory",
        langchain="cache_dir",
        llama_index="cache_dir",
    ),
    Setting(
        "local_model_path",
        "str | None",
        None,
        "Local backend: a directory holding the ONNX model and tokenizer files.",
        cli_flag="--local-model-path",
        langchain="local_model_path",
        llama_index="local_model_path",
    ),
    Setting(
        "local_precision",
        "Literal['fp32', 'int8']",
        "fp32",
        "Local backend: fp32 (the service's vectors) or int8 (dynamic quantisation, faster).",
        cli_flag="--local-precision",
        langchain="local_precision",
        llama_index="local_precision",
    ),
    Setting(
        "http_client",
        "httpx2.Client | None",
        None,
        "HTTP client for the sync path (openai.DefaultHttpxClient); its owner closes it.",
        langchain="http_client",
        llama_index="http_client",
    ),
    Setting(
        "http_async_client",
        "httpx2.AsyncClient | None",
        None,
        "HTTP client for the async path (openai.DefaultAsyncHttpxClient); serves one event loop.",
        langchain="http_async_client",
        llama_index="http_async_client",
    ),
)

_BY_NAME = {item.name: item for item in SETTINGS}


def setting(name: str) -> Setting:
    """The declaration of setting ``name`` (its core name, e.g. ``"batch_size"``)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"No setting {name!r}; settings: {', '.join(_BY_NAME)}") from None


def settings_summary(embedder: Embedder) -> dict[str, Any]:
    """A secret-free summary of an embedder's settings in use, for logs and CLI output."""
    config = embedder.config
    return {
        "model": config.model,
        "base_url": config.base_url,
        "backend": embedder.backend,
        "batch_size": embedder.batch_size,
        "max_concurrency": config.max_concurrency,
        "max_retries": config.max_retries,
        "timeout": config.timeout,
        "api_key": "set" if config.api_key else "not set",
    }
