"""aimlapi-bge core: BAAI/bge-base-en-v1.5 embeddings over the AI/ML API, framework-free.

The LangChain adapter (``langchain_aimlapi_bge``) and the LlamaIndex adapter
(``llama_index_aimlapi_bge``) are thin layers over :class:`Embedder`.
"""

from aimlapi_bge.config import (
    BGE_QUERY_INSTRUCTION,
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    EmbedderConfig,
    resolve_config,
)
from aimlapi_bge.embedder import Embedder, FallbackWarning
from aimlapi_bge.errors import (
    AIMLAPIError,
    AuthenticationError,
    BatchTooLargeError,
    ConfigurationError,
    EndpointNotFoundError,
    InputTooLongError,
    InsufficientCreditsError,
    InvalidInputError,
    LocalModelUnavailableError,
    ModelNotAvailableError,
    RateLimitError,
    RedirectError,
    ResponseValidationError,
    ServiceError,
)
from aimlapi_bge.usage import Usage

__version__ = "0.1.0"

__all__ = [
    "BGE_QUERY_INSTRUCTION",
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "AIMLAPIError",
    "AuthenticationError",
    "BatchTooLargeError",
    "ConfigurationError",
    "Embedder",
    "EmbedderConfig",
    "EndpointNotFoundError",
    "FallbackWarning",
    "InputTooLongError",
    "InsufficientCreditsError",
    "InvalidInputError",
    "LocalModelUnavailableError",
    "ModelNotAvailableError",
    "RateLimitError",
    "RedirectError",
    "ResponseValidationError",
    "ServiceError",
    "Usage",
    "__version__",
    "resolve_config",
]
