"""Errors that say what to do, and 4xx answers that are never retried.

Every 4xx below reaches the server exactly once per batch; the only extra requests are the
deliberate bisection of a batch the server rejected as invalid, which sends smaller batches to
find the offending texts.
"""

from __future__ import annotations

import asyncio

import openai
import pytest

from aimlapi_bge import (
    DEFAULT_MODEL,
    AuthenticationError,
    ConfigurationError,
    InsufficientCreditsError,
    InvalidInputError,
    ModelNotAvailableError,
    resolve_config,
)
from aimlapi_bge.models import RETIRED_MODELS
from langchain_aimlapi_bge import AIMLBGEEmbeddings
from support.helpers import embedding_inputs, expected, make
from support.standin import StandInServer


def test_a_refused_key_names_the_variable_and_is_not_retried(standin: StandInServer) -> None:
    with pytest.raises(AuthenticationError) as caught:
        make(standin, api_key="not-the-key").embed(["a passage"])
    error = caught.value
    assert "AIMLAPI_API_KEY" in str(error)
    assert "refused" in str(error)
    assert error.status_code == 401
    assert error.request_id and error.request_id in str(error)
    assert isinstance(error.__cause__, openai.AuthenticationError)
    assert standin.request_count == 1


async def test_a_refused_key_on_the_async_path(standin: StandInServer) -> None:
    with pytest.raises(AuthenticationError, match="AIMLAPI_API_KEY"):
        await make(standin, api_key="not-the-key").aembed(["a passage"])
    assert standin.request_count == 1


def test_a_missing_key_is_told_apart_from_a_refused_one(standin: StandInServer) -> None:
    embedder = make(standin, api_key=None)  # loopback: no key needed to build it
    with pytest.raises(AuthenticationError, match="none was sent") as caught:
        embedder.embed(["a passage"])
    assert "AIMLAPI_API_KEY" in str(caught.value)
    assert "authorization" not in standin.requests[0].headers


def test_out_of_credits(standin: StandInServer) -> None:
    standin.inject(403, 403, 403)
    with pytest.raises(InsufficientCreditsError, match="credits") as caught:
        make(standin).embed(["a passage", "another"])
    assert caught.value.status_code == 403
    assert isinstance(caught.value.__cause__, openai.PermissionDeniedError)
    assert standin.request_count == 1


def test_a_retired_model_names_it_and_the_ways_out() -> None:
    with StandInServer(models=("text-embedding-3-small",)) as server:
        with pytest.raises(ModelNotAvailableError) as caught:
            make(server).embed(["a passage"])
        assert server.request_count == 1
    message = str(caught.value)
    assert "'BAAI/bge-base-en-v1.5'" in message
    assert "deprecated" in message and RETIRED_MODELS[DEFAULT_MODEL].isoformat() in message
    assert "backend='local'" in message
    assert "base_url" in message and "self-hosted" in message
    assert "no longer available" in message  # the server's own words are kept
    assert caught.value.status_code == 404
    assert caught.value.request_id
    assert isinstance(caught.value.__cause__, openai.NotFoundError)


def test_a_missing_model_that_is_not_bge_gets_no_deprecation_story() -> None:
    with (
        StandInServer() as server,
        pytest.raises(ModelNotAvailableError, match="'text-embedding-3-small'") as caught,
    ):
        make(server, model="text-embedding-3-small").embed(["a passage"])
    assert "deprecated" not in str(caught.value)


def test_the_langchain_adapter_raises_the_same_errors() -> None:
    with StandInServer(models=()) as server:
        embeddings = AIMLBGEEmbeddings(base_url=server.url, api_key=server.api_key)
        with pytest.raises(ModelNotAvailableError, match=RETIRED_MODELS[DEFAULT_MODEL].isoformat()):
            embeddings.embed_query("who is Laura?")
        with pytest.raises(ModelNotAvailableError):
            asyncio.run(embeddings.aembed_documents(["Laura is a DJ."]))
        assert server.request_count == 2


@pytest.mark.parametrize("status", [400, 422])
def test_a_rejected_text_is_not_retried(status: int) -> None:
    with StandInServer(fail_on_text={"bad passage": status}) as server:
        with pytest.raises(InvalidInputError) as caught:
            make(server).embed(["bad passage"])
        assert server.request_count == 1
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.status_code == status
    assert error.server_message == f"Injected fault {status}"
    assert f"Injected fault {status}" in str(error)
    assert error.positions == [0]
    assert error.request_id
    assert isinstance(error.__cause__, openai.APIStatusError)


@pytest.mark.parametrize("status", [400, 422])
def test_a_rejected_batch_is_bisected_to_name_the_offending_text(status: int) -> None:
    texts = [f"passage {i}" for i in range(8)]
    with StandInServer(fail_on_text={"passage 5": status}) as server:
        with pytest.raises(InvalidInputError) as caught:
            make(server, batch_size=8, max_concurrency=1).embed(texts)
        sent = embedding_inputs(server)
    error = caught.value
    assert error.positions == [5]
    assert "position(s) [5] of the list you passed" in str(error)
    assert error.failed_positions == [5]
    assert error.embeddings is not None
    assert [v for i, v in enumerate(error.embeddings) if i != 5] == expected(
        [t for i, t in enumerate(texts) if i != 5]
    )
    # 8 -> 4+4 -> 2+2 -> 1+1: every request is new (nothing is resent as it was).
    assert sent[0] == texts
    assert len(sent) == 7
    assert len({tuple(batch) for batch in sent}) == len(sent)
    assert ["passage 5"] in sent


def test_several_rejected_texts_are_all_named(standin: StandInServer) -> None:
    standin.settings.fail_on_text.update({"passage 1": 400, "passage 6": 400})
    texts = [f"passage {i}" for i in range(8)]
    with pytest.raises(InvalidInputError) as caught:
        make(standin, batch_size=4).embed(texts)
    assert caught.value.positions == [1, 6]
    assert caught.value.embedded_count == 6


@pytest.mark.parametrize(
    ("mode", "server_message"),
    [
        ("tei", "This request requires a valid API key. Get one at https://aimlapi.com/app/keys"),
        (
            "openai",
            "This request requires a valid API key. Get one at https://aimlapi.com/app/keys",
        ),
        ("infinity", "Unauthorized"),
    ],
)
def test_error_bodies_of_self_hosted_servers_are_understood(mode: str, server_message: str) -> None:
    with StandInServer(mode=mode) as server, pytest.raises(AuthenticationError) as caught:
        make(server, api_key="not-the-key").embed(["a passage"])
    assert caught.value.server_message == server_message
    assert server_message in str(caught.value)


def test_a_text_that_is_not_valid_unicode_is_named_without_a_request(
    standin: StandInServer,
) -> None:
    texts = ["fine", "broken \ud800 text", "also fine"]
    with pytest.raises(InvalidInputError, match="not valid Unicode") as caught:
        make(standin).embed(texts)
    assert caught.value.positions == [1]
    assert caught.value.embeddings is not None
    assert caught.value.embeddings[0] == expected(["fine"])[0]
    assert caught.value.embeddings[2] == expected(["also fine"])[0]
    assert all("broken" not in text for text in standin.inputs_seen)


@pytest.mark.parametrize(
    "url",
    ["not a url", "127.0.0.1:8000/v1", "ftp://127.0.0.1/v1", "http://[::1/v1", "http://h:99999"],
)
def test_a_malformed_base_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="absolute http"):
        resolve_config(base_url=url)
