"""Helpers every test module shares: build a client against a stand-in, the vectors to expect."""

from __future__ import annotations

from typing import Any

import httpx2
import openai

from aimlapi_bge import Embedder, resolve_config
from support.standin import StandInServer, standin_vector

SECRET = "sk-test-S3CRET-7f3a9c41"
"""A key distinctive enough that finding it anywhere is a leak."""

FAST = {"max_retries": 1, "timeout": 5.0}
"""Retry settings that keep a test's worst case near a second."""


def make(server: StandInServer, **settings: Any) -> Embedder:
    """An embedder pointed at ``server`` with its key (settings override the defaults)."""
    args: dict[str, Any] = {"base_url": server.url, "api_key": server.api_key, **settings}
    return Embedder(resolve_config(**args))


def make_langchain(server: StandInServer, **settings: Any) -> Any:
    """An ``AIMLBGEEmbeddings`` pointed at ``server`` with its key."""
    from langchain_aimlapi_bge import AIMLBGEEmbeddings

    return AIMLBGEEmbeddings(base_url=server.url, api_key=server.api_key, **settings)


def make_llama_index(server: StandInServer, **settings: Any) -> Any:
    """An ``AIMLBGEEmbedding`` pointed at ``server`` with its key."""
    from llama_index_aimlapi_bge import AIMLBGEEmbedding

    return AIMLBGEEmbedding(base_url=server.url, api_key=server.api_key, **settings)


def expected(texts: list[str], dimension: int = 768) -> list[list[float]]:
    """The vectors the stand-in gives these texts."""
    return [standin_vector(text, dimension).tolist() for text in texts]


def embedding_inputs(server: StandInServer) -> list[list[str]]:
    """The ``input`` list of every embeddings request the server received, in arrival order."""
    return [list(request.body["input"]) for request in server.embedding_requests]


class RouteTo(httpx2.HTTPTransport):
    """Carries requests for any URL to the stand-in, as a proxy would.

    Lets a test use a non-loopback ``base_url`` (``https://embeddings.example.com/v1``) while
    the bytes still go to 127.0.0.1; the ``Host`` header keeps the name the client used.
    """

    def __init__(self, server: StandInServer) -> None:
        super().__init__()
        self._port = server.port

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self._port)
        return super().handle_request(request)


def routed_client(server: StandInServer) -> httpx2.Client:
    """A sync http client (for ``http_client=``) that reaches ``server`` whatever the URL."""
    return openai.DefaultHttpxClient(transport=RouteTo(server))
