"""Copies and pickles of either adapter use the values they show (issues 10 and 12).

``copy.copy``, ``copy.deepcopy``, ``model_copy(update=...)`` and ``pickle`` give an instance
that builds its own core from its fields (usage starts at zero; no openai client is shared). A
pickle carries the key only when it was given in code; a key found in the environment is looked
up again where the pickle is loaded. Checked from what the stand-in server received.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import pickle
import subprocess
import sys
from typing import Any

import openai
import pytest

from aimlapi_bge import AuthenticationError, ConfigurationError
from langchain_aimlapi_bge import AIMLBGEEmbeddings
from llama_index_aimlapi_bge import AIMLBGEEmbedding
from support.helpers import SECRET, expected, routed_client
from support.standin import StandInServer

TEXTS = ["Laura is a DJ.", "Paris is in France.", "Cats sleep a lot.", "Rust has no GC.", "Tea"]
ELSEWHERE = "https://embeddings.example.com/v1"
Adapter = AIMLBGEEmbeddings | AIMLBGEEmbedding


@pytest.fixture
def server() -> Any:
    with StandInServer(api_key=SECRET) as standin:
        yield standin


def build(kind: str, server: StandInServer, **settings: Any) -> Adapter:
    settings = {"base_url": server.url, **settings}
    if kind == "langchain":
        return AIMLBGEEmbeddings(**settings)
    if "batch_size" in settings:
        settings["embed_batch_size"] = settings.pop("batch_size")
    return AIMLBGEEmbedding(**settings)


def embed(instance: Adapter, texts: list[str]) -> list[list[float]]:
    if isinstance(instance, AIMLBGEEmbeddings):
        return instance.embed_documents(texts)
    return instance.get_text_embedding_batch(texts)


def batch_field(instance: Adapter) -> str:
    return "batch_size" if isinstance(instance, AIMLBGEEmbeddings) else "embed_batch_size"


def sizes(server: StandInServer) -> list[int]:
    return sorted(len(request.body["input"]) for request in server.embedding_requests)


def authorization(server: StandInServer) -> list[str | None]:
    return [request.headers.get("authorization") for request in server.embedding_requests]


KINDS = pytest.mark.parametrize("kind", ["langchain", "llama_index"])


@KINDS
def test_a_pickled_instance_embeds_with_the_settings_it_shows(
    kind: str, server: StandInServer
) -> None:
    original = build(kind, server, api_key=SECRET, batch_size=2, default_headers={"X-Team": "rag"})
    embed(original, ["warm-up"])
    restored = pickle.loads(pickle.dumps(original))
    assert getattr(restored, batch_field(restored)) == 2
    assert restored.usage.requests == 0  # counted per instance
    server.reset()
    assert embed(restored, TEXTS) == expected(TEXTS)
    assert sizes(server) == [1, 2, 2]
    assert set(authorization(server)) == {f"Bearer {SECRET}"}  # given in code: it travels
    assert {request.headers["x-team"] for request in server.embedding_requests} == {"rag"}
    assert restored.embedder is not original.embedder


@KINDS
def test_a_key_from_the_environment_never_travels_in_a_pickle(
    kind: str, server: StandInServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIMLAPI_API_KEY", SECRET)
    original = build(kind, server)
    assert original.api_key is not None  # shown, resolved from the environment
    data = pickle.dumps(original)
    assert SECRET.encode() not in data
    restored = pickle.loads(data)
    assert embed(restored, ["x"]) == expected(["x"])  # looked up again: still set here
    assert restored.api_key is not None and restored.api_key.get_secret_value() == SECRET
    monkeypatch.delenv("AIMLAPI_API_KEY")
    unkeyed = pickle.loads(data)
    with pytest.raises(AuthenticationError):
        embed(unkeyed, ["y"])
    assert authorization(server) == [f"Bearer {SECRET}", None]


@KINDS
def test_a_pickle_works_in_another_process(kind: str, server: StandInServer) -> None:
    # What IngestionPipeline(num_workers=N) or a process pool does with the instance.
    instance = build(kind, server, api_key=SECRET, batch_size=2)
    code = (
        "import base64, json, pickle, sys\n"
        "instance = pickle.loads(base64.b64decode(sys.stdin.read()))\n"
        "texts = json.loads(sys.argv[1])\n"
        "embed = getattr(instance, 'embed_documents', None) or instance.get_text_embedding_batch\n"
        "print(json.dumps(embed(texts)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIMLAPI", "AIML_"))}
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(TEXTS)],
        input=base64.b64encode(pickle.dumps(instance)).decode(),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == expected(TEXTS)
    assert sizes(server) == [1, 2, 2]


@KINDS
def test_model_copy_with_an_update_uses_the_new_value(kind: str, server: StandInServer) -> None:
    original = build(kind, server, api_key=SECRET)
    embed(original, ["warm-up"])
    copied = original.model_copy(update={batch_field(original): 2})
    assert getattr(copied, batch_field(copied)) == 2
    assert copied.embedder.config.batch_size == 2
    assert copied.usage.requests == 0
    server.reset()
    assert embed(copied, TEXTS) == expected(TEXTS)
    assert sizes(server) == [1, 2, 2]
    server.reset()
    assert embed(original, TEXTS) == expected(TEXTS)  # the original is untouched
    assert sizes(server) == [5]


@KINDS
def test_a_key_from_the_environment_does_not_follow_a_copy_elsewhere(
    kind: str, server: StandInServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIMLAPI_API_KEY", SECRET)
    original = build(kind, server)
    copied = original.model_copy(
        update={"base_url": ELSEWHERE, "http_client": routed_client(server)}
    )
    assert copied.api_key is None
    with pytest.raises(AuthenticationError, match="was not sent"):
        embed(copied, ["x"])
    assert authorization(server) == [None]
    given = build(kind, server, api_key=SECRET).model_copy(
        update={"base_url": ELSEWHERE, "http_client": routed_client(server)}
    )
    assert embed(given, ["y"]) == expected(["y"])  # a key given in code goes with its copy
    assert authorization(server)[-1] == f"Bearer {SECRET}"


@KINDS
def test_copies_share_no_core_with_the_original(kind: str, server: StandInServer) -> None:
    original = build(kind, server, api_key=SECRET)
    embed(original, ["warm-up"])
    assert copy.copy(original) == original == original.model_copy()  # each has its own core
    for copied in (copy.copy(original), copy.deepcopy(original), original.model_copy()):
        assert copied.embedder is not original.embedder
        assert copied.embedder.config == original.embedder.config
        assert embed(copied, ["x"]) == expected(["x"])
        assert copied.usage.requests == 1
        setattr(copied, batch_field(copied), 3)
        assert getattr(original, batch_field(original)) == 128
    assert original.usage.requests == 1


@KINDS
def test_a_users_http_client_is_shared_by_copies_and_not_pickled(
    kind: str, server: StandInServer
) -> None:
    client = openai.DefaultHttpxClient(headers={"x-probe": "mine"})
    original = build(kind, server, api_key=SECRET, http_client=client)
    for copied in (
        copy.deepcopy(original),
        original.model_copy(deep=True),
        original.model_copy(update={batch_field(original): 2}, deep=True),
    ):
        assert copied.http_client is client
        assert copied.embedder is not original.embedder
        assert embed(copied, ["x"]) == expected(["x"])
    assert [request.headers["x-probe"] for request in server.embedding_requests] == ["mine"] * 3
    with pytest.raises(TypeError, match="holding http_client"):
        pickle.dumps(original)


def test_a_llama_index_pickle_keeps_what_llama_index_can_pickle(server: StandInServer) -> None:
    from llama_index.core.callbacks import CallbackManager, LlamaDebugHandler

    handler = LlamaDebugHandler()
    original = AIMLBGEEmbedding(
        base_url=server.url, api_key=SECRET, callback_manager=CallbackManager([handler])
    )
    restored = pickle.loads(pickle.dumps(original))
    assert restored.model_fields_set == original.model_fields_set
    assert restored.get_text_embedding_batch(["x"]) == expected(["x"])
    assert isinstance(restored.callback_manager, CallbackManager)


@KINDS
def test_a_header_changed_in_place_is_used_and_checked(kind: str, server: StandInServer) -> None:
    instance = build(kind, server, api_key=SECRET, default_headers={"X-Team": "rag"})
    embed(instance, ["a"])
    assert instance.default_headers is not None
    instance.default_headers["X-Team"] = "search"  # not an assignment: noticed all the same
    embed(instance, ["b"])
    assert [r.headers["x-team"] for r in server.embedding_requests] == ["rag", "search"]
    instance.default_headers["X-Team"] = "two\nlines"
    with pytest.raises(ConfigurationError, match="header 'X-Team'"):
        embed(instance, ["c"])
    assert len(server.embedding_requests) == 2
