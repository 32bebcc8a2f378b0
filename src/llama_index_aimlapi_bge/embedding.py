"""``AIMLBGEEmbedding``: a LlamaIndex ``BaseEmbedding`` over the framework-free core."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from aimlapi_bge.extras import install_hint

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
        f"llama_index_aimlapi_bge needs llama-index-core: {install_hint('llama-index')}"
    ) from exc
from pydantic import AliasChoices, ConfigDict, Field, SecretStr

from aimlapi_bge.adapter_support import CoreBacked, adapter_fields
from aimlapi_bge.config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT,
)
from aimlapi_bge.settings import setting

__all__ = ["AIMLBGEEmbedding"]

dispatcher = get_dispatcher(__name__)


def _end_event(texts: list[str], embeddings: list[Embedding]) -> EmbeddingEndEvent:
    # The vectors were validated by the core; re-validating millions of floats in pydantic
    # costs ~0.1 s per 4,000 x 768 call, so the event is built without validation.
    return EmbeddingEndEvent.model_construct(chunks=texts, embeddings=embeddings)


class AIMLBGEEmbedding(CoreBacked, BaseEmbedding):
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
        max_retries, timeout, default_headers, backend, fallback, cache_dir, local_model_path,
        local_precision:
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

    Settings: checked when given; a bad value or an unknown keyword (``embed_batchsize=``)
    raises ``aimlapi_bge.ConfigurationError`` naming it. ``model=`` is accepted for
    ``model_name``. Setting a field later (``embed_model.embed_batch_size = 64``) re-resolves
    the settings and rebuilds the client. ``to_dict()`` / ``to_json()`` leave out ``api_key``
    and the HTTP clients and mask ``default_headers`` values; ``from_dict()`` looks the key
    up in the environment again. ``pickle`` (``IngestionPipeline(num_workers=...)``),
    ``copy.deepcopy`` and ``model_copy`` give an instance with its own client and usage; a
    pickle holds the key only if it was given in code.
    """

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        hide_input_in_errors=True,
        protected_namespaces=("pydantic_model_",),
        arbitrary_types_allowed=True,
    )
    _FIELDS: ClassVar[Mapping[str, str]] = adapter_fields("llama_index")

    model_name: str = Field(
        default=DEFAULT_MODEL,
        validation_alias=AliasChoices("model_name", "model"),
        description=setting("model").help,
    )
    embed_batch_size: int = Field(
        default=DEFAULT_BATCH_SIZE, description=setting("batch_size").help
    )
    api_key: SecretStr | None = Field(
        default=None, exclude=True, description=setting("api_key").help
    )
    base_url: str | None = Field(default=None, description=setting("base_url").help)
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
    http_client: Any = Field(
        default=None, exclude=True, repr=False, description=setting("http_client").help
    )
    http_async_client: Any = Field(
        default=None, exclude=True, repr=False, description=setting("http_async_client").help
    )

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex stores in ``to_dict()`` / ``to_json()`` output."""
        return "AIMLBGEEmbedding"

    def _get_query_embedding(self, query: str) -> Embedding:
        return self.embedder.embed_query(query)

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await self.embedder.aembed_query(query)

    def _get_text_embedding(self, text: str) -> Embedding:
        return self.embedder.embed([text])[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self.embedder.aembed([text]))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self.embedder.embed(texts)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await self.embedder.aembed(texts)

    def _use_llama_index_batching(self) -> bool:
        return self.embeddings_cache is not None or self.rate_limiter is not None

    @dispatcher.span
    def get_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        """Embed many texts: batched, concurrent and bounded by ``max_concurrency``.

        With an ``embeddings_cache`` or a ``rate_limiter`` set, LlamaIndex's own batch loop
        runs instead (it consults them per batch); each batch still goes through the core.
        """
        if self._use_llama_index_batching():
            return super().get_text_embedding_batch(texts, show_progress, **kwargs)
        model_dict = self.to_payload()
        dispatcher.event(EmbeddingStartEvent(model_dict=model_dict))
        with self.callback_manager.event(
            CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: model_dict}
        ) as event:
            embeddings = self.embedder.embed(texts, show_progress=show_progress)
            event.on_end(payload={EventPayload.CHUNKS: texts, EventPayload.EMBEDDINGS: embeddings})
        dispatcher.event(_end_event(texts, embeddings))
        return embeddings

    @dispatcher.span
    async def aget_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        """Async batch embedding with the same in-flight bound as the sync path."""
        if self._use_llama_index_batching():
            return await super().aget_text_embedding_batch(texts, show_progress, **kwargs)
        model_dict = self.to_payload()
        dispatcher.event(EmbeddingStartEvent(model_dict=model_dict))
        event_id = self.callback_manager.on_event_start(
            CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: model_dict}
        )
        embeddings = await self.embedder.aembed(texts, show_progress=show_progress)
        self.callback_manager.on_event_end(
            CBEventType.EMBEDDING,
            payload={EventPayload.CHUNKS: texts, EventPayload.EMBEDDINGS: embeddings},
            event_id=event_id,
        )
        dispatcher.event(_end_event(texts, embeddings))
        return embeddings
