"""LangChain integration for BAAI/bge-base-en-v1.5 embeddings through the AI/ML API."""

from langchain_aimlapi_bge.embeddings import AIMLBGEEmbeddings

__all__ = ["AIMLBGEEmbeddings"]
