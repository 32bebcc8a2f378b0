"""Shared fixtures: a clean environment and a stand-in AI/ML API on 127.0.0.1.

Outbound sockets are blocked except loopback (pytest-socket, ``--allow-hosts`` in
pyproject.toml), so an accidental live call fails instead of reaching the network.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.standin import StandInServer

_ENV_VARS = (
    "AIMLAPI_API_KEY",
    "AIML_API_KEY",
    "AIMLAPI_BASE_URL",
    "AIMLAPI_BGE_BACKEND",
    "AIMLAPI_BGE_CACHE_DIR",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's keys or endpoints."""
    for name in _ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def standin() -> Iterator[StandInServer]:
    """A fresh stand-in server for one test."""
    with StandInServer() as server:
        yield server


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT-like model directory (ONNX graph + WordPiece tokenizer), see tiny_model.py."""
    from support.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
