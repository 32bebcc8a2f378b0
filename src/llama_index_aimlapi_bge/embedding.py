"""``AIMLBGEEmbedding``: a LlamaIndex ``BaseEmbedding`` over the framework-free core."""

from __future__ import annotations

from typing import Any, Literal

try:
    from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
    from llama_index.core.callbacks.schema import CBEventType, EventPayload
    from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
    from llama_index.core.instrumentation.events.embedding import (
        EmbeddingEndEvent,
        EmbeddingStartEvent,
    )
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "llama_index_aimlapi_bge needs llama-index-core: pip install 'aimlapi-bge[llama-index]'"
    ) from exc
from pydantic import Field, PrivateAttr, SecretStr, model_validator
from typing_extensions import Self

from aimlapi_bge.config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT,
    resolve_config,
)
from aimlapi_bge.embedder import Embedder
from aimlapi_bge.usage import Usage

__all__ = ["AIMLBGEEmbedding"]

dispatcher = get_dispatcher(__name__)


class AIMLBGEEmbedding(BaseEmbedding):
    """BAAI/bge-base-en-v1.5 embeddings from the AI/ML API (or in-process), for LlamaIndex.

    Setup:
        .. code-block:: bash

            pip install "aimlapi-bge[llama-index]"
            export AIMLAPI_API_KEY="your-key"

    Key init args:
        model_name: str
            Default ``"BAAI/bge-base-en-v1.5"`` (768 dimensions).
        embed_batch_size: int
            Texts per request. Default 128 (shrinks by itself if a server refuses it).
        max_concurrency: int
            Requests in flight at most, on every path, batch methods included. Default 8.
        api_key: Optional[SecretStr]
            Default ``AIMLAPI_API_KEY``, else ``AIML_API_KEY``. Never serialised.
        base_url: Optional[str]
            Default ``AIMLAPI_BASE_URL``, else ``"https://api.aimlapi.com/v1"``.
        query_instruction: Optional[str]
            Query prefix; BAAI's retrieval instruction for English BGE models by default,
            ``""`` turns it off.
        max_retries, timeout, default_headers, backend, fallback, cache_dir, local_model_path:
            as in the LangChain adapter.

    Instantiate:
        .. code-block:: python

            from llama_index.core import Settings
            from llama_index_aimlapi_bge import AIMLBGEEmbedding

            Settings.embed_model = AIMLBGEEmbedding()

    Embed:
        .. code-block:: python

            vector = Settings.embed_model.get_query_embedding("Who is Laura?")
            vectors = Settings.embed_model.get_text_embedding_batch(["Laura is a DJ."])

    Async:
        .. code-block:: python

            vector = await Settings.embed_model.aget_query_embedding("Who is Laura?")
            vectors = await Settings.embed_model.aget_text_embedding_batch(texts)

    The batch methods hand the whole list to the core, which batches it and keeps at most
    ``max_concurrency`` requests in flight (LlamaIndex's default async batch path would
    start every batch at once).
    """

    model_name: str = Field(default=DEFAULT_MODEL, description="Embedding model name.")
    embed_batch_size: int = Field(
        default=DEFAULT_BATCH_SIZE, gt=0, description="Texts per request."
    )
    api_key: SecretStr | None = Field(default=None, exclude=True, repr=False)
    base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint.")
    max_concurrency: int = Field(default=DEFAULT_MAX_CONCURRENCY, gt=0)
    max_retries: int = Field(default=DEFAULT_MAX_RETRIES, ge=0)
    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0)
    query_instruction: str | None = Field(default=None)
    default_headers: dict[str, str] | None = Field(default=None, exclude=True, repr=False)
    backend: Literal["api", "local"] | None = Field(default=None)
    fallback: Literal["local"] | None = Field(default=None)
    cache_dir: str | None = Field(default=None)
    local_model_path: str | None = Field(default=None)
    http_client: Any = Field(default=None, exclude=True, repr=False)
    http_async_client: Any = Field(default=None, exclude=True, repr=False)

    _embedder: Embedder = PrivateAttr()

    @model_validator(mode="after")
    def _build_embedder(self) -> Self:
        config = resolve_config(
            model=self.model_name,
            api_key=self.api_key,
            base_url=self.base_url,
            backend=self.backend,
            cache_dir=self.cache_dir,
            query_instruction=self.query_instruction,
            batch_size=self.embed_batch_size,
            max_concurrency=self.max_concurrency,
            max_retries=self.max_retries,
            timeout=self.timeout,
            default_headers=self.default_headers,
            fallback=self.fallback,
            local_model_path=self.local_model_path,
            http_client=self.http_client,
            http_async_client=self.http_async_client,
        )
        self.api_key = config.api_key
        self.base_url = config.base_url
        self.backend = config.backend
        self.query_instruction = config.query_instruction
        self._embedder = Embedder(config)
        return self

    @classmethod
    def class_name(cls) -> str:
        return "AIMLBGEEmbedding"

    @property
    def usage(self) -> Usage:
        """Requests, prompt tokens and credits used by this instance so far."""
        return self._embedder.usage

    def reset_usage(self) -> Usage:
        """Return the usage so far and start counting from zero."""
        return self._embedder.reset_usage()

    @property
    def embedder(self) -> Embedder:
        """The framework-free core embedder behind this instance."""
        return self._embedder

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._embedder.embed_query(query)

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await self._embedder.aembed_query(query)

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._embedder.embed([text])[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._embedder.aembed([text]))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._embedder.embed(texts)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await self._embedder.aembed(texts)

    @dispatcher.span
    def get_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        """Embed many texts: batched, concurrent and bounded by ``max_concurrency``."""
        if self.embeddings_cache is not None:
            return super().get_text_embedding_batch(texts, show_progress, **kwargs)
        model_dict = self.to_payload()
        dispatcher.event(EmbeddingStartEvent(model_dict=model_dict))
        with self.callback_manager.event(
            CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: model_dict}
        ) as event:
            embeddings = self._embedder.embed(texts, show_progress=show_progress)
            event.on_end(payload={EventPayload.CHUNKS: texts, EventPayload.EMBEDDINGS: embeddings})
        dispatcher.event(EmbeddingEndEvent(chunks=texts, embeddings=embeddings))
        return embeddings

    @dispatcher.span
    async def aget_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        """Async batch embedding with the same in-flight bound as the sync path."""
        if self.embeddings_cache is not None:
            return await super().aget_text_embedding_batch(texts, show_progress, **kwargs)
        model_dict = self.to_payload()
        dispatcher.event(EmbeddingStartEvent(model_dict=model_dict))
        event_id = self.callback_manager.on_event_start(
            CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: model_dict}
        )
        embeddings = await self._embedder.aembed(texts, show_progress=show_progress)
        self.callback_manager.on_event_end(
            CBEventType.EMBEDDING,
            payload={EventPayload.CHUNKS: texts, EventPayload.EMBEDDINGS: embeddings},
            event_id=event_id,
        )
        dispatcher.event(EmbeddingEndEvent(chunks=texts, embeddings=embeddings))
        return embeddings
