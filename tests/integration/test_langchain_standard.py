"""LangChain's standard embeddings suites (langchain-tests) for ``AIMLBGEEmbeddings``.

The integration suite runs over real HTTP against the stand-in AI/ML API on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from aimlapi_bge import BGE_QUERY_INSTRUCTION, DEFAULT_BASE_URL, DEFAULT_MODEL
from langchain_aimlapi_bge import AIMLBGEEmbeddings
from support.standin import StandInServer


class TestAIMLBGEEmbeddingsUnit(EmbeddingsUnitTests):
    """Construction and environment resolution; no request is made."""

    @property
    def embeddings_class(self) -> type[AIMLBGEEmbeddings]:
        return AIMLBGEEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"api_key": "unit-test-key"}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"AIMLAPI_API_KEY": "key-from-env"},
            {},
            {
                "api_key": "key-from-env",
                "model": DEFAULT_MODEL,
                "base_url": DEFAULT_BASE_URL,
                "query_instruction": BGE_QUERY_INSTRUCTION,
            },
        )


class TestAIMLBGEEmbeddingsIntegration(EmbeddingsIntegrationTests):
    """The standard embed/aembed checks, answered by one stand-in server for the class."""

    server: StandInServer

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _standin_for_class(cls) -> Iterator[None]:
        with StandInServer() as server:
            cls.server = server
            yield

    @property
    def embeddings_class(self) -> type[AIMLBGEEmbeddings]:
        return AIMLBGEEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"base_url": self.server.url, "api_key": self.server.api_key, "batch_size": 2}

    def test_the_suite_talks_to_the_standin(self, model: AIMLBGEEmbeddings) -> None:
        before = len(self.server.embedding_requests)
        model.embed_documents(["foo", "bar", "baz"])
        new = self.server.embedding_requests[before:]
        assert sorted(len(r.body["input"]) for r in new) == [1, 2]
        assert all(r.headers["authorization"] == "Bearer standin-key" for r in new)
