"""``AIMLBGEEmbeddings``: a LangChain ``Embeddings`` over the framework-free core."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from aimlapi_bge.extras import install_hint

try:
    from langchain_core.embeddings import Embeddings
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        f"langchain_aimlapi_bge needs langchain-core: {install_hint('langchain')}"
    ) from exc
from pydantic import ConfigDict, Field, SecretStr

from aimlapi_bge.adapter_support import CoreBacked, adapter_fields
from aimlapi_bge.config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT,
)
from aimlapi_bge.settings import setting

__all__ = ["AIMLBGEEmbeddings"]


class AIMLBGEEmbeddings(CoreBacked, Embeddings):
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

    Settings:
        Checked when given: a bad value or a misspelt keyword raises
        ``aimlapi_bge.ConfigurationError`` (a ``ValueError``) naming the field. Setting a field
        later (``embeddings.batch_size = 64``) re-resolves the settings and rebuilds the client.
        ``copy.deepcopy``, ``model_copy(update=...)`` and ``pickle`` give an instance with its
        own client and usage; a pickle holds the key only if it was given in code.
    """

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        hide_input_in_errors=True,
        protected_namespaces=(),
    )
    _FIELDS: ClassVar[Mapping[str, str]] = adapter_fields("langchain")

    model: str = Field(default=DEFAULT_MODEL, description=setting("model").help)
    api_key: SecretStr | None = Field(default=None, description=setting("api_key").help)
    base_url: str | None = Field(default=None, description=setting("base_url").help)
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, description=setting("batch_size").help)
    max_concurrency: int = Field(
        default=DEFAULT_MAX_CONCURRENCY, description=setting("max_concurrency").help
    )
    max_retries: int = Field(default=DEFAULT_MAX_RETRIES, description=setting("max_retries").help)
    timeout: float = Field(default=DEFAULT_TIMEOUT, description=setting("timeout").help)
    query_instruction: str | None = Field(
        default=None, description=setting("query_instruction").help
    )
    default_headers: dict[str, str] | None = Field(
        default=None, description=setting("default_headers").help
    )
    show_progress_bar: bool = False
    """Show a tqdm progress bar while embedding documents (read on each call)."""
    backend: Literal["api", "local"] | None = Field(
        default=None, description=setting("backend").help
    )
    fallback: Literal["local"] | None = Field(default=None, description=setting("fallback").help)
    cache_dir: str | None = Field(default=None, description=setting("cache_dir").help)
    local_model_path: str | None = Field(
        default=None, description=setting("local_model_path").help
    )
    local_precision: Literal["fp32", "int8"] = Field(
        default="fp32", description=setting("local_precision").help
    )
    http_client: Any = Field(default=None, exclude=True, description=setting("http_client").help)
    http_async_client: Any = Field(
        default=None, exclude=True, description=setting("http_async_client").help
    )

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents (no query instruction), in input order."""
        return self.embedder.embed(texts, show_progress=self.show_progress_bar)

    def embed_query(self, text: str) -> list[float]:
        """Embed a query, prefixed with ``query_instruction``."""
        return self.embedder.embed_query(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents asynchronously (concurrent batches, no thread executor)."""
        return await self.embedder.aembed(texts, show_progress=self.show_progress_bar)

    async def aembed_query(self, text: str) -> list[float]:
        """Embed a query asynchronously."""
        return await self.embedder.aembed_query(text)
