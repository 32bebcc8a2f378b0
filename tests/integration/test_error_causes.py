"""Errors name the real cause, end to end against the stand-in on 127.0.0.1.

A wrong ``base_url`` (route 404) is a configuration error, never a deprecation story and never
a reason to fall back; a misspelt model is told apart from a retired one; a key with a trailing
newline is a configuration error naming the header, never quoting it.
"""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path

import httpx2
import pytest

from aimlapi_bge import (
    ConfigurationError,
    Embedder,
    EndpointNotFoundError,
    FallbackWarning,
    ModelNotAvailableError,
    resolve_config,
)
from aimlapi_bge.models import RETIRED_MODELS
from langchain_aimlapi_bge import AIMLBGEEmbeddings
from support.helpers import SECRET, expected, make
from support.standin import StandInServer

BGE = "BAAI/bge-base-en-v1.5"


def assert_never_shown(secret: str, error: BaseException | None) -> None:
    """Not in the error, nor in any exception chained to it (tracebacks print them all)."""
    seen: list[BaseException] = []
    while error is not None and error not in seen:
        assert secret not in str(error) and secret not in repr(error)
        seen.append(error)
        error = error.__cause__ or error.__context__


def root_url(server: StandInServer) -> str:
    """The stand-in's address without /v1: the usual base_url mistake."""
    return f"http://127.0.0.1:{server.port}"


def test_a_base_url_without_v1_is_a_configuration_error_with_the_url_called(
    standin: StandInServer,
) -> None:
    with pytest.raises(EndpointNotFoundError) as caught:
        make(standin, base_url=root_url(standin)).embed(["a passage"])
    message = str(caught.value)
    assert f"POST {root_url(standin)}/embeddings answered 404" in message
    assert "Cannot POST /embeddings" in message  # the server's own words
    assert "does not end in /v1" in message
    assert "deprecated" not in message and "backend" not in message
    assert isinstance(caught.value, ConfigurationError)
    assert standin.request_count == 1  # a 404 is not retried


async def test_a_base_url_ending_in_embeddings_is_named_on_the_async_path(
    standin: StandInServer,
) -> None:
    with pytest.raises(EndpointNotFoundError, match="already ends in /embeddings"):
        await make(standin, base_url=f"{standin.url}/embeddings").aembed(["a passage"])
    assert standin.embedding_requests[0].path == "/v1/embeddings/embeddings"


def test_fallback_local_does_not_switch_on_a_route_404(
    standin: StandInServer, tiny_model_dir: Path
) -> None:
    embedder = Embedder(
        resolve_config(
            base_url=root_url(standin),
            api_key=standin.api_key,
            fallback="local",
            local_model_path=str(tiny_model_dir),
        )
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(EndpointNotFoundError):
            embedder.embed(["Laura is a DJ."])
        with pytest.raises(EndpointNotFoundError):
            asyncio.run(embedder.aembed(["Laura is a DJ."]))
    assert not [w for w in caught if issubclass(w.category, FallbackWarning)]
    assert embedder.backend == "api"
    assert standin.request_count == 2


def test_fallback_local_still_switches_on_a_retired_model(tiny_model_dir: Path) -> None:
    with StandInServer(models=()) as server:
        embedder = Embedder(
            resolve_config(
                base_url=server.url,
                api_key=server.api_key,
                fallback="local",
                local_model_path=str(tiny_model_dir),
            )
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            embedder.embed(["Laura is a DJ."])
    (warning,) = [w for w in caught if issubclass(w.category, FallbackWarning)]
    assert RETIRED_MODELS[BGE].isoformat() in str(warning.message)
    assert embedder.backend == "local"


def test_a_misspelt_model_gets_the_listing_recipe_which_works(standin: StandInServer) -> None:
    typo = "BAAI/bge-base-en-v1.6"
    with pytest.raises(ModelNotAvailableError) as caught:
        make(standin, model=typo).embed(["a passage"])
    message = str(caught.value)
    assert f"does not serve the model '{typo}'" in message
    # The stand-in itself calls any bge model deprecated; our own text makes no such claim.
    ours = message.replace(caught.value.server_message or "", "")
    assert "deprecated" not in ours and "2026" not in ours
    assert f"GET {standin.url}/models" in message
    # The recipe in the message really lists what the server serves.
    listed = httpx2.get(
        f"{standin.url}/models", headers={"Authorization": f"Bearer {standin.api_key}"}
    ).json()
    assert [model["id"] for model in listed["data"]] == [BGE]


def test_the_langchain_adapter_raises_the_route_error_too(standin: StandInServer) -> None:
    embeddings = AIMLBGEEmbeddings(base_url=root_url(standin), api_key=standin.api_key)
    with pytest.raises(EndpointNotFoundError, match="/v1"):
        embeddings.embed_query("who is Laura?")


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"api_key": SECRET[:6] + "\n" + SECRET[6:]}, "api_key"),
        ({"api_key": SECRET[:6] + "\r\n" + SECRET[6:]}, "api_key"),
        ({"api_key": SECRET, "default_headers": {"X-Team": SECRET[:6] + "\n" + SECRET[6:]}}, "X-Team"),
    ],
    ids=["key-newline", "key-crlf", "default-header-newline"],
)
def test_a_header_value_with_an_inner_line_break_is_a_configuration_error(
    standin: StandInServer, settings: dict[str, object], named: str
) -> None:
    # Refused when the embedder is built: nothing is sent, the error names where the value
    # came from and never quotes it, here or in its chained causes. (Surrounding whitespace,
    # a pasted key's trailing newline, is stripped instead: see test_settings_keys.py.)
    with pytest.raises(ConfigurationError) as caught:
        make(standin, max_retries=1, **settings).embed(["a passage"])
    assert named.lower() in str(caught.value).lower()
    assert_never_shown(SECRET, caught.value)
    assert standin.request_count == 0


async def test_a_pasted_keys_line_ending_is_stripped_an_inner_one_refused_async(
    standin: StandInServer,
) -> None:
    key = standin.api_key or ""
    vectors = await make(standin, api_key=key + "\r\n", max_retries=0).aembed(["a passage"])
    assert vectors == expected(["a passage"])
    assert standin.embedding_requests[0].headers["authorization"] == f"Bearer {key}"
    with pytest.raises(ConfigurationError, match="api_key") as caught:
        await make(standin, api_key=SECRET + "\n" + SECRET, max_retries=0).aembed(["a passage"])
    assert_never_shown(SECRET, caught.value)
    assert standin.request_count == 1  # the first call's, none for the refused key
