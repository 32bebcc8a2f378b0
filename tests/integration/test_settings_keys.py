"""A key or header value with a trailing newline (``echo`` into a file, a copy-paste) works:
the server receives it stripped, from code, the environment and the command line (issue 10)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aimlapi_bge import Embedder, resolve_config
from aimlapi_bge.cli import EXIT_OK, main
from langchain_aimlapi_bge import AIMLBGEEmbeddings
from llama_index_aimlapi_bge import AIMLBGEEmbedding
from support.helpers import SECRET, expected
from support.standin import StandInServer


@pytest.fixture
def server() -> Iterator[StandInServer]:
    with StandInServer(api_key=SECRET) as standin:
        yield standin


def sent(server: StandInServer, header: str) -> list[str | None]:
    return [request.headers.get(header) for request in server.embedding_requests]


@pytest.mark.parametrize("padding", ["\n", "\r\n", "  "])
def test_a_padded_key_from_code_is_sent_stripped(server: StandInServer, padding: str) -> None:
    key = SECRET + padding
    headers = {"X-Org": "org-1" + padding}
    Embedder(resolve_config(base_url=server.url, api_key=key, default_headers=headers)).embed(
        ["a"]
    )
    AIMLBGEEmbeddings(base_url=server.url, api_key=key, default_headers=headers).embed_query("b")
    AIMLBGEEmbedding(base_url=server.url, api_key=key, default_headers=headers).get_text_embedding(
        "c"
    )
    assert sent(server, "authorization") == [f"Bearer {SECRET}"] * 3
    assert sent(server, "x-org") == ["org-1"] * 3


@pytest.mark.parametrize("variable", ["AIMLAPI_API_KEY", "AIML_API_KEY"])
def test_a_padded_key_from_the_environment_is_sent_stripped(
    server: StandInServer, variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, SECRET + "\r\n")
    assert AIMLBGEEmbeddings(base_url=server.url).embed_documents(["a"]) == expected(["a"])
    assert AIMLBGEEmbedding(base_url=server.url).get_text_embedding("b") == expected(["b"])[0]
    assert sent(server, "authorization") == [f"Bearer {SECRET}"] * 2


def test_the_command_line_strips_a_padded_key(
    server: StandInServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIMLAPI_API_KEY", SECRET + "\n")
    assert main(["embed", "--base-url", server.url, "hello"]) == EXIT_OK
    assert sent(server, "authorization") == [f"Bearer {SECRET}"]
    assert SECRET not in capsys.readouterr().err
