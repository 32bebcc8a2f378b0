"""LlamaIndex integration for BAAI/bge-base-en-v1.5 embeddings through the AI/ML API."""

from llama_index_aimlapi_bge.embedding import AIMLBGEEmbedding

__all__ = ["AIMLBGEEmbedding"]
