"""LlamaIndex's naming convention for the same adapter: ``llama_index.embeddings.aimlapi_bge``.

``llama_index`` and ``llama_index.embeddings`` are namespace packages shared with llama-index-core
and other integrations, so this package ships no ``__init__.py`` for them.
"""

from llama_index_aimlapi_bge import AIMLBGEEmbedding

__all__ = ["AIMLBGEEmbedding"]
