"""The API key never leaks, and only goes where it is meant to.

Where it must not appear: repr/str of the adapters, the core embedder and its config, pydantic
dumps, LlamaIndex's to_dict/to_json, log records of every logger at DEBUG (openai, httpx2,
httpcore2, aimlapi_bge), exception messages and their chained causes.

Where it may go: a key from the environment only to ``https://*.aimlapi.com``, loopback, or the
URL ``AIMLAPI_BASE_URL`` names; a key given in code to the ``base_url`` given with it; never
over plain http except to loopback. Non-loopback URLs are routed to the stand-in by an http
client transport (``fault_support.RouteTo``), so the tests see what such a server would receive.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import traceback
from collections.abc import Iterator

import openai
import pytest

from aimlapi_bge import (
    AIMLAPIError,
    AuthenticationError,
    ConfigurationError,
    Embedder,
    InputTooLongError,
    ModelNotAvailableError,
    ServiceError,
    resolve_config,
)
from aimlapi_bge.settings import settings_summary
from langchain_aimlapi_bge import AIMLBGEEmbeddings
from llama_index_aimlapi_bge import AIMLBGEEmbedding
from support.helpers import SECRET, expected, make, routed_client
from support.standin import StandInServer

ELSEWHERE = "https://embeddings.example.com/v1"


@pytest.fixture
def server() -> Iterator[StandInServer]:
    """A stand-in that accepts only SECRET."""
    with StandInServer(api_key=SECRET) as standin:
        yield standin


def authorization(server: StandInServer) -> list[str | None]:
    return [request.headers.get("authorization") for request in server.embedding_requests]


# --- renderings ----------------------------------------------------------------------------


def test_no_rendering_of_an_instance_shows_the_key(server: StandInServer) -> None:
    langchain = AIMLBGEEmbeddings(base_url=server.url, api_key=SECRET)
    llama = AIMLBGEEmbedding(base_url=server.url, api_key=SECRET)
    core = make(server)
    renderings: list[object] = [
        repr(langchain),
        str(langchain),
        langchain.model_dump(),
        langchain.model_dump(mode="json"),
        langchain.model_dump_json(),
        repr(llama),
        str(llama),
        llama.to_dict(),
        llama.to_json(),
        llama.model_dump(),
        llama.model_dump_json(),
        repr(core),
        str(core),
        repr(core.config),
        str(core.config),
        dataclasses.asdict(core.config),
        settings_summary(core),
        repr(langchain.embedder),
        repr(llama.embedder.config),
    ]
    for rendering in renderings:
        assert SECRET not in str(rendering)
    # The key is really in use: these instances authenticate with it.
    langchain.embed_query("q")
    llama.get_query_embedding("q")
    core.embed(["d"])
    assert authorization(server) == [f"Bearer {SECRET}"] * 3


# --- logs ----------------------------------------------------------------------------------


def _exercise(server: StandInServer) -> list[AIMLAPIError]:
    """Successes, retries and failures on both paths; returns the errors raised."""
    embedder = make(server, max_retries=1, batch_size=2)
    embedder.embed(["one", "two", "three"])
    asyncio.run(embedder.aembed(["four", "five"]))
    errors: list[AIMLAPIError] = []
    for faults in ((503, 503), ("drop", "drop"), (404,)):  # 404 is not retried
        server.inject(*faults)
        try:
            embedder.embed(["six"])
        except AIMLAPIError as error:
            errors.append(error)
    server.inject(500, 500)
    try:
        asyncio.run(embedder.aembed(["seven"]))
    except AIMLAPIError as error:
        errors.append(error)
    try:
        embedder.embed(["eight", "word " * 600])
    except AIMLAPIError as error:
        errors.append(error)
    return errors


def test_no_log_record_or_error_message_shows_the_key(
    server: StandInServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors = _exercise(server)
    with pytest.raises(AuthenticationError) as refused:
        make(server, api_key=SECRET + "-wrong").embed(["x"])
    errors.append(refused.value)
    assert [type(error) for error in errors] == [
        ServiceError,
        ServiceError,
        ModelNotAvailableError,
        ServiceError,
        InputTooLongError,
        AuthenticationError,
    ]
    names = {record.name.split(".")[0] for record in caplog.records}
    assert {"openai", "httpx2", "httpcore2"} <= names  # the loggers really were captured
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in repr(record.__dict__)
    assert SECRET not in caplog.text
    for error in errors:
        assert isinstance(error.__cause__, openai.OpenAIError)
        link: BaseException | None = error
        while link is not None:
            assert SECRET not in str(link)
            assert SECRET not in repr(link)
            link = link.__cause__ or link.__context__
        assert SECRET not in "".join(traceback.format_exception(error))
    assert authorization(server)[-1] == f"Bearer {SECRET}-wrong"
    assert set(authorization(server)[:-1]) == {f"Bearer {SECRET}"}


# --- where the key goes --------------------------------------------------------------------


def test_an_environment_key_goes_to_loopback(
    server: StandInServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIMLAPI_API_KEY", SECRET)
    Embedder(resolve_config(base_url=server.url)).embed(["x"])
    assert authorization(server) == [f"Bearer {SECRET}"]


@pytest.mark.parametrize("code_url", [None, ELSEWHERE, ELSEWHERE + "/"])
def test_an_environment_key_goes_to_the_url_the_environment_names(
    server: StandInServer, monkeypatch: pytest.MonkeyPatch, code_url: str | None
) -> None:
    monkeypatch.setenv("AIMLAPI_API_KEY", SECRET)
    monkeypatch.setenv("AIMLAPI_BASE_URL", ELSEWHERE)
    embedder = Embedder(resolve_config(base_url=code_url, http_client=routed_client(server)))
    assert embedder.embed(["x"]) == expected(["x"])
    assert authorization(server) == [f"Bearer {SECRET}"]
    assert server.requests[0].headers["host"] == "embeddings.example.com"


@pytest.mark.parametrize("env_url", [None, "https://another.example.com/v1"])
def test_an_environment_key_does_not_follow_a_base_url_given_in_code(
    server: StandInServer, monkeypatch: pytest.MonkeyPatch, env_url: str | None
) -> None:
    monkeypatch.setenv("AIMLAPI_API_KEY", SECRET)
    if env_url:
        monkeypatch.setenv("AIMLAPI_BASE_URL", env_url)
    embedder = Embedder(resolve_config(base_url=ELSEWHERE, http_client=routed_client(server)))
    assert embedder.config.api_key is None
    with pytest.raises(AuthenticationError) as caught:
        embedder.embed(["x"])
    assert authorization(server) == [None]
    message = str(caught.value)
    assert "none was sent" in message
    assert "The key in AIMLAPI_API_KEY was not sent" in message
    assert "pass api_key=" in message
    assert SECRET not in message


def test_the_adapters_apply_the_same_rule(
    server: StandInServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIMLAPI_API_KEY", SECRET)
    client = routed_client(server)
    langchain = AIMLBGEEmbeddings(base_url=ELSEWHERE, http_client=client)
    llama = AIMLBGEEmbedding(base_url=ELSEWHERE, http_client=client)
    assert langchain.api_key is None and llama.api_key is None
    with pytest.raises(AuthenticationError, match="was not sent"):
        langchain.embed_documents(["x"])
    with pytest.raises(AuthenticationError, match="was not sent"):
        llama.get_text_embedding("x")
    assert authorization(server) == [None, None]


def test_a_key_given_in_code_goes_to_the_base_url_given_with_it(server: StandInServer) -> None:
    embedder = Embedder(
        resolve_config(base_url=ELSEWHERE, api_key=SECRET, http_client=routed_client(server))
    )
    assert embedder.embed(["x"]) == expected(["x"])
    assert authorization(server) == [f"Bearer {SECRET}"]


def test_no_key_for_a_self_hosted_server_sends_no_authorization_header() -> None:
    with StandInServer(api_key=None) as server:
        assert Embedder(resolve_config(base_url=server.url)).embed(["x"]) == expected(["x"])
        routed = Embedder(resolve_config(base_url=ELSEWHERE, http_client=routed_client(server)))
        assert routed.embed(["y"]) == expected(["y"])
        assert authorization(server) == [None, None]


@pytest.mark.parametrize(
    "url",
    ["http://10.255.255.1/v1", "http://embeddings.example.com/v1", "http://api.aimlapi.com/v1"],
)
def test_a_key_is_never_sent_over_plain_http_beyond_loopback(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Refused while resolving the settings: no connection is ever attempted.
    with pytest.raises(ConfigurationError, match="plain http") as caught:
        resolve_config(base_url=url, api_key=SECRET)
    assert SECRET not in str(caught.value)
    with pytest.raises(ValueError, match="plain http"):
        AIMLBGEEmbeddings(base_url=url, api_key=SECRET)
    with pytest.raises(ValueError, match="plain http"):
        AIMLBGEEmbedding(base_url=url, api_key=SECRET)
    monkeypatch.setenv("AIMLAPI_API_KEY", SECRET)
    monkeypatch.setenv("AIMLAPI_BASE_URL", url)
    with pytest.raises(ConfigurationError, match="plain http"):
        resolve_config()
    monkeypatch.delenv("AIMLAPI_BASE_URL")
    assert resolve_config(base_url=url).api_key is None  # an environment key is withheld


@pytest.mark.parametrize(
    ("url", "trusted"),
    [
        ("https://api.aimlapi.com/v1", True),
        ("https://eu.aimlapi.com/v1", True),
        ("https://aimlapi.com/v1", True),
        ("http://localhost:8080/v1", True),
        ("http://[::1]:8080/v1", True),
        ("https://api.aimlapi.com.evil.example/v1", False),
        ("https://evilaimlapi.com/v1", False),
        ("https://localhost.evil.example/v1", False),
    ],
)
def test_which_urls_an_environment_key_may_reach(
    url: str, trusted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIMLAPI_API_KEY", SECRET)
    key = resolve_config(base_url=url).api_key
    assert (key is not None and key.get_secret_value() == SECRET) is trusted


def test_a_url_with_userinfo_is_refused_outright(monkeypatch: pytest.MonkeyPatch) -> None:
    # Once "trusted: False" (the host is evil.example); now no such URL is accepted at all.
    monkeypatch.setenv("AIMLAPI_API_KEY", SECRET)
    with pytest.raises(ConfigurationError, match="user name or password") as caught:
        resolve_config(base_url="https://api.aimlapi.com@evil.example/v1")
    assert "evil.example" not in str(caught.value)  # what precedes '@' may be a password


def test_a_missing_key_for_the_ai_ml_api_names_the_variable() -> None:
    for build in (
        lambda: resolve_config(),
        lambda: AIMLBGEEmbeddings(),
        lambda: AIMLBGEEmbedding(),
    ):
        with pytest.raises(AuthenticationError, match="AIMLAPI_API_KEY"):
            build()
