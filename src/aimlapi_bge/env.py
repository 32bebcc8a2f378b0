"""Names of the environment variables aimlapi-bge reads (a leaf module: imports nothing)."""

from __future__ import annotations

__all__ = ["ENV_API_KEY", "ENV_API_KEY_SDK", "ENV_BACKEND", "ENV_BASE_URL", "ENV_CACHE_DIR"]

ENV_API_KEY = "AIMLAPI_API_KEY"
ENV_API_KEY_SDK = "AIML_API_KEY"
ENV_BASE_URL = "AIMLAPI_BASE_URL"
ENV_BACKEND = "AIMLAPI_BGE_BACKEND"
ENV_CACHE_DIR = "AIMLAPI_BGE_CACHE_DIR"
