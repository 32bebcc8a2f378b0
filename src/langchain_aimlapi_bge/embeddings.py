"""``AIMLBGEEmbeddings``: a LangChain ``Embeddings`` over the framework-free core."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

try:
    from langchain_core.embeddings import Embeddings
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "langchain_aimlapi_bge needs langchain-core: pip install 'aimlapi-bge[langchain]'"
    ) from exc
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator
from typing_extensions import Self

from aimlapi_bge.adapter_support import CoreBacked
from aimlapi_bge.config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT,
)
from aimlapi_bge.embedder import Embedder

__all__ = ["AIMLBGEEmbeddings"]

# The fields that configure the core (each is resolve_config's argument of the same name);
# show_progress_bar is read on each call instead.
_SETTINGS = (
    "model",
    "api_key",
    "base_url",
    "batch_size",
    "max_concurrency",
    "max_retries",
    "timeout",
    "query_instruction",
    "default_headers",
    "backend",
    "fallback",
    "cache_dir",
    "local_model_path",
    "local_precision",
    "http_client",
    "http_async_client",
)


class AIMLBGEEmbeddings(CoreBacked, BaseModel, Embeddings):
    """BAAI/bge-base-en-v1.5 embeddings from the AI/ML API (or in-process), for LangChain.

    Setup:
        Install the package and set your key:

        .. code-block:: bash

            pip install "aimlapi-bge[langchain]"
            export AIMLAPI_API_KEY="your-key"

    Key init args — embedding params:
        model: str
            Embedding model name. Default ``"BAAI/bge-base-en-v1.5"`` (768 dimensions).
        query_instruction: Optional[str]
            Prefix for queries only. Default: BAAI's
            ``"Represent this sentence for searching relevant passages: "`` for English BGE
            models, nothing for other models; ``""`` turns it off.
        batch_size: int
            Texts per request. Default 128 (shrinks by itself if a server refuses it).

    Key init args — client params:
        api_key: Optional[SecretStr]
            Default: ``AIMLAPI_API_KEY``, else ``AIML_API_KEY``.
        base_url: Optional[str]
            Default: ``AIMLAPI_BASE_URL``, else ``"https://api.aimlapi.com/v1"``. Any
            OpenAI-compatible server (text-embeddings-inference, Infinity, vLLM) works.
        max_concurrency: int
            Requests in flight at most, sync and async. Default 8.
        max_retries: int
            Retries of 429/408/5xx/connection errors (openai SDK backoff). Default 4.
        timeout: float
            Seconds per attempt. Default 60.
        backend: Optional[Literal["api", "local"]]
            ``"local"`` runs the model in-process (extra ``[local]``). Default ``"api"``
            (env ``AIMLAPI_BGE_BACKEND``).
        fallback: Optional[Literal["local"]]
            Switch to the local backend if the API refuses the model or stays unreachable.

    Instantiate:
        .. code-block:: python

            from langchain_aimlapi_bge import AIMLBGEEmbeddings

            embeddings = AIMLBGEEmbeddings()

    Embed single text:
        .. code-block:: python

            vector = embeddings.embed_query("What is the meaning of life?")
            len(vector)  # 768

    Embed multiple texts:
        .. code-block:: python

            vectors = embeddings.embed_documents(["Laura is a DJ.", "Paris is in France."])

    Async:
        .. code-block:: python

            vector = await embeddings.aembed_query("What is the meaning of life?")
            vectors = await embeddings.aembed_documents(["Laura is a DJ."])

    Usage:
        .. code-block:: python

            embeddings.usage  # Usage(requests=2, texts=3, prompt_tokens=21, credits_used=3.0, ...)

    Setting a field later (``embeddings.batch_size = 64``) rebuilds the client.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, protected_namespaces=())

    model: str = DEFAULT_MODEL
    """Embedding model name."""
    api_key: SecretStr | None = None
    """API key; default from ``AIMLAPI_API_KEY`` (then ``AIML_API_KEY``)."""
    base_url: str | None = None
    """Endpoint; default from ``AIMLAPI_BASE_URL``, else the AI/ML API."""
    batch_size: int = DEFAULT_BATCH_SIZE
    """Texts per request."""
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    """Requests in flight at most."""
    max_retries: int = DEFAULT_MAX_RETRIES
    """Retries of transient failures."""
    timeout: float = DEFAULT_TIMEOUT
    """Seconds per attempt."""
    query_instruction: str | None = None
    """Query prefix; ``None`` picks the model's default, ``""`` disables it."""
    default_headers: dict[str, str] | None = None
    """Extra HTTP headers for every request."""
    show_progress_bar: bool = False
    """Show a tqdm progress bar while embedding documents."""
    backend: Literal["api", "local"] | None = None
    """``"api"`` (default) or ``"local"``; env ``AIMLAPI_BGE_BACKEND``."""
    fallback: Literal["local"] | None = None
    """Fall back to the local backend when the API cannot serve the model."""
    cache_dir: str | None = None
    """Local backend: where model files are cached (env ``AIMLAPI_BGE_CACHE_DIR``)."""
    local_model_path: str | None = None
    """Local backend: a directory holding the ONNX model and tokenizer files."""
    local_precision: Literal["fp32", "int8"] = "fp32"
    """Local backend: ``"fp32"`` (default, the service's vectors) or ``"int8"`` (dynamic
    quantisation: several times faster, vectors close but not equal)."""
    http_client: Any = Field(default=None, exclude=True)
    """Optional ``httpx`` client for the sync path (openai's ``DefaultHttpxClient``)."""
    http_async_client: Any = Field(default=None, exclude=True)
    """Optional ``httpx`` async client for the async path."""

    _SETTING_NAMES: ClassVar[Mapping[str, str]] = {name: name for name in _SETTINGS}
    _embedder: Embedder = PrivateAttr()
    _inputs: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _build_embedder(self) -> Self:
        self._init_embedder()
        return self

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents (no query instruction), in input order."""
        return self._embedder.embed(texts, show_progress=self.show_progress_bar)

    def embed_query(self, text: str) -> list[float]:
        """Embed a query, prefixed with ``query_instruction``."""
        return self._embedder.embed_query(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents asynchronously (concurrent batches, no thread executor)."""
        return await self._embedder.aembed(texts, show_progress=self.show_progress_bar)

    async def aembed_query(self, text: str) -> list[float]:
        """Embed a query asynchronously."""
        return await self._embedder.aembed_query(text)
