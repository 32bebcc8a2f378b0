"""The status -> exception table (``errors.STATUS_ERRORS``), on answers the openai SDK really parsed.

Each answer is served by an in-memory transport (no socket) to an ``openai.OpenAI`` client with
no retries, so the exception under test is the one the SDK builds in production; it then goes
through :func:`aimlapi_bge.errors.error_from_openai`. Body shapes: the AI/ML API's flat
``{message, path, requestId, statusCode, timestamp}``, OpenAI's ``{"error": {..., "code"}}``,
vLLM's ``{"object": "error", ...}``, text-embeddings-inference's ``{"error", "error_type"}``
(and its empty-bodied router 404), FastAPI's ``{"detail"}`` (Infinity, vLLM), NestJS's default,
Go's and nginx's plain 404 pages.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai
import pytest

from aimlapi_bge import (
    AIMLAPIError,
    AuthenticationError,
    BatchTooLargeError,
    ConfigurationError,
    EndpointNotFoundError,
    InputTooLongError,
    InsufficientCreditsError,
    InvalidInputError,
    ModelNotAvailableError,
    RateLimitError,
    ServiceError,
)
from aimlapi_bge.env import ENV_API_KEY
from aimlapi_bge.errors import (
    STATUS_ERRORS,
    error_from_openai,
    format_positions,
    header_value_error,
    unsendable_headers,
)
from aimlapi_bge.models import RETIRED_MODELS, retired_on

BASE_URL = "https://api.aimlapi.com/v1"
BGE = "BAAI/bge-base-en-v1.5"
TYPO = "BAAI/bge-base-en-v1.6"


def sdk_error(status: int, body: Any, content_type: str = "application/json") -> openai.APIError:
    """The exception the openai SDK raises for this answer to ``POST {BASE_URL}/embeddings``."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, content=payload, headers={"content-type": content_type})

    client = openai.OpenAI(
        api_key="k",
        base_url=BASE_URL,
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(answer)),
    )
    with pytest.raises(openai.APIError) as caught:
        client.post("/embeddings", body={"model": BGE, "input": ["x"]}, cast_to=httpx2.Response)
    return caught.value


def mapped(status: int, body: Any, model: str = BGE, **kwargs: Any) -> AIMLAPIError:
    settings: dict[str, Any] = {"model": model, "base_url": BASE_URL, "batch_size": 8, **kwargs}
    return error_from_openai(sdk_error(status, body), **settings)


def flat(status: int, message: str, path: str = "/v1/embeddings") -> dict[str, Any]:
    """The AI/ML API's error body."""
    return {
        "message": message,
        "path": path,
        "requestId": "req-123",
        "statusCode": status,
        "timestamp": "2026-04-01T10:00:00.000Z",
    }


def openai_shaped(message: str, code: str | None) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    }


# --- route 404: the URL is wrong ---------------------------------------------------------------

ROUTE_404_BODIES = {
    "aimlapi flat, base_url without /v1": flat(404, "Cannot POST /embeddings", "/embeddings"),
    "nestjs default": {
        "statusCode": 404,
        "message": "Cannot POST /v2/embeddings",
        "error": "Not Found",
    },
    "fastapi (infinity, vllm)": {"detail": "Not Found"},
    "openai invalid url": openai_shaped("Invalid URL (POST /v1/embedding)", None),
    "tei router (empty body)": b"",
    "go default": b"404 page not found",
    "nginx html": b"<html><head><title>404 Not Found</title></head><body>nginx</body></html>",
}


@pytest.mark.parametrize("body", ROUTE_404_BODIES.values(), ids=ROUTE_404_BODIES.keys())
def test_a_route_404_is_a_configuration_error_showing_the_url(body: Any) -> None:
    error = mapped(404, body)
    assert type(error) is EndpointNotFoundError
    assert isinstance(error, ConfigurationError) and isinstance(error, ValueError)
    assert not isinstance(error, ModelNotAvailableError)  # so fallback='local' stays put
    message = str(error)
    assert f"{BASE_URL}/embeddings" in message
    assert "/v1" in message and "without /embeddings" in message
    assert "--base-url" in message
    assert "deprecated" not in message and "2026" not in message
    assert "--backend local" not in message and "backend='local'" not in message
    assert error.status_code == 404


def test_a_route_404_says_what_is_wrong_with_the_base_url_itself() -> None:
    body = flat(404, "Cannot POST /embeddings", "/embeddings")
    error = error_from_openai(
        sdk_error(404, body), model=BGE, base_url="http://127.0.0.1:8080", batch_size=1
    )
    assert "'http://127.0.0.1:8080' does not end in /v1" in str(error)
    assert "POST http://127.0.0.1:8080/embeddings answered 404" in str(error)
    twice = error_from_openai(
        sdk_error(404, body), model=BGE, base_url=f"{BASE_URL}/embeddings", batch_size=1
    )
    assert "already ends in /embeddings" in str(twice)


def test_an_html_page_is_quoted_by_its_title_not_its_markup() -> None:
    error = mapped(404, ROUTE_404_BODIES["nginx html"])
    assert error.server_message == "an HTML page (404 Not Found)"
    assert "<html" not in str(error)


def test_405_means_the_url_takes_no_post() -> None:
    error = mapped(405, {"detail": "Method Not Allowed"})
    assert type(error) is EndpointNotFoundError
    assert "answered 405" in str(error)


# --- model 404: the model is wrong or gone -----------------------------------------------------

MODEL_404_BODIES = {
    "aimlapi flat": lambda m: flat(404, f"Model {m} not found"),
    "aimlapi flat, deprecated": lambda m: flat(
        404, f"Model {m} is deprecated and no longer available"
    ),
    "openai model_not_found": lambda m: openai_shaped(
        f"The model `{m}` does not exist or you do not have access to it.", "model_not_found"
    ),
    "openai code only": lambda m: openai_shaped("Not found", "model_not_found"),
    "vllm": lambda m: {
        "object": "error",
        "message": f"The model `{m}` does not exist.",
        "type": "NotFoundError",
        "param": None,
        "code": 404,
    },
    "tei": lambda m: {"error": f"Model {m} is not loaded", "error_type": "Validation"},
    "fastapi detail": lambda m: {"detail": f"Model '{m}' not found"},
}


@pytest.mark.parametrize("shape", MODEL_404_BODIES.values(), ids=MODEL_404_BODIES.keys())
def test_a_misspelt_model_is_named_with_how_to_list_served_models(shape: Any) -> None:
    error = mapped(404, shape(TYPO), model=TYPO)
    assert type(error) is ModelNotAvailableError
    message = str(error)
    assert f"The server at {BASE_URL} does not serve the model '{TYPO}'" in message
    assert f"GET {BASE_URL}/models" in message
    assert f'curl -H "Authorization: Bearer ${ENV_API_KEY}" {BASE_URL}/models' in message
    assert "deprecated" not in message.replace(error.server_message or "", "")
    assert "2026" not in message


@pytest.mark.parametrize("shape", MODEL_404_BODIES.values(), ids=MODEL_404_BODIES.keys())
def test_a_retired_model_gets_its_date_and_the_ways_out(shape: Any) -> None:
    error = mapped(404, shape(BGE))
    assert type(error) is ModelNotAvailableError
    message = str(error)
    assert f"'{BGE}'" in message
    assert f"deprecated (no longer callable) since {RETIRED_MODELS[BGE].isoformat()}" in message
    assert "backend='local' (CLI: --backend local)" in message
    assert "fallback='local'" in message
    assert "base_url (CLI: --base-url)" in message and "self-hosted" in message


def test_each_retired_model_carries_its_own_date() -> None:
    large = "BAAI/bge-large-en-v1.5"
    error = mapped(404, flat(404, f"Model {large} not found"), model=large)
    assert f"since {RETIRED_MODELS[large].isoformat()}" in str(error)
    assert retired_on("baai/BGE-large-en-v1.5") == RETIRED_MODELS[large]
    assert retired_on("BAAI/bge-small-en-v1.5") is None


def test_a_404_that_tells_neither_route_nor_model_says_both_without_a_deprecation_claim() -> None:
    for model in (BGE, TYPO):
        error = mapped(404, flat(404, "Resource unavailable"), model=model)
        assert type(error) is ModelNotAvailableError
        message = str(error)
        assert "Either the URL is wrong" in message and "/v1" in message
        assert f"does not serve the model '{model}'" in message
        assert f"GET {BASE_URL}/models" in message
        assert "deprecated" not in message and "2026" not in message


def test_a_route_404_whose_path_holds_the_model_name_is_still_a_route_404() -> None:
    body = flat(404, f"Cannot POST /models/{BGE}/embeddings", f"/models/{BGE}/embeddings")
    assert type(mapped(404, body)) is EndpointNotFoundError


def test_infinity_refusing_an_unknown_model_with_400_is_not_blamed_on_the_texts() -> None:
    body = openai_shaped(f"Invalid model: {TYPO}. Choose from ['{BGE}']", None)
    error = mapped(400, body, model=TYPO)
    assert type(error) is ModelNotAvailableError
    assert not isinstance(error, InvalidInputError)


# --- the other statuses keep their classes and name both spellings of each remedy ------------


def test_401_403_429_5xx_name_the_python_keyword_and_the_cli_flag() -> None:
    refused = mapped(401, flat(401, "Invalid key"))
    assert type(refused) is AuthenticationError
    assert f"Set a valid key in {ENV_API_KEY} or pass api_key=" in str(refused)
    missing = mapped(401, flat(401, "Unauthorized"), key_sent=False, key_note="(note)")
    assert "none was sent" in str(missing) and str(missing).endswith("(note) (request id req-123)")
    credits = mapped(403, flat(403, "Insufficient credits"))
    assert type(credits) is InsufficientCreditsError
    assert "backend='local' (CLI: --backend local)" in str(credits)
    limited = mapped(429, flat(429, "Too many requests"))
    assert type(limited) is RateLimitError
    assert "max_concurrency (CLI: --max-concurrency)" in str(limited)
    assert "max_retries (CLI: --max-retries)" in str(limited)
    for status in (408, 409, 500, 502, 503, 504, 599):
        failed = mapped(status, flat(status, "upstream failed"))
        assert type(failed) is ServiceError, status
        assert f"failed with {status}" in str(failed)
        assert "max_retries (CLI: --max-retries)" in str(failed)


@pytest.mark.parametrize(
    ("status", "body", "kind", "max_batch"),
    [
        (
            413,
            {"error": "batch size 64 > maximum allowed batch size 32", "error_type": "Validation"},
            BatchTooLargeError,
            32,
        ),
        (413, flat(413, "Request entity too large"), BatchTooLargeError, None),
        (413, b"", BatchTooLargeError, None),
        (
            422,
            {"detail": [{"msg": "List should have at most 16 items after validation"}]},
            BatchTooLargeError,
            16,
        ),
        (400, flat(400, "Payload too large"), BatchTooLargeError, None),
        (
            413,
            {
                "error": "Input validation error: input[0] must have less than 512 tokens. Given: 700",
                "error_type": "Validation",
            },
            InputTooLongError,
            None,
        ),
        (
            400,
            flat(400, "input[3] is too long: maximum context length is 512 tokens"),
            InputTooLongError,
            None,
        ),
        (422, flat(422, "input[0] must be a string"), InvalidInputError, None),
        (
            400,
            flat(400, "Body validation error! input must be a non-empty string or array"),
            InvalidInputError,
            None,
        ),
        (418, flat(418, "I'm a teapot"), InvalidInputError, None),
    ],
)
def test_batch_and_input_rows(
    status: int, body: Any, kind: type[AIMLAPIError], max_batch: int | None
) -> None:
    error = mapped(status, body)
    assert type(error) is kind
    assert error.status_code == status
    if isinstance(error, BatchTooLargeError):
        assert error.max_batch == max_batch
        assert "a batch of 8 texts" in str(error)


def test_the_server_words_and_request_id_are_kept() -> None:
    error = mapped(404, flat(404, f"Model {TYPO} not found"), model=TYPO)
    assert error.server_message == f"Model {TYPO} not found"
    assert error.request_id == "req-123"
    assert str(error).endswith("(request id req-123)")


def test_braces_in_a_server_message_do_not_break_the_templates() -> None:
    error = mapped(400, flat(400, "bad input {0} {model} %s"))
    assert "bad input {0} {model} %s" in str(error)


def test_every_row_names_a_public_class_and_the_table_ends_in_a_catch_all() -> None:
    import aimlapi_bge

    for rule in STATUS_ERRORS:
        assert rule.error.__name__ in aimlapi_bge.__all__
    assert STATUS_ERRORS[-1].statuses is None and STATUS_ERRORS[-1].pattern is None


# --- a header value HTTP forbids (a key with a trailing newline) --------------------------------

SECRET_KEY = "sk-live-Q9x7-abcdef"


def header_failure(headers: dict[str, str]) -> openai.APIConnectionError:
    """What the SDK raises when the transport refuses a header value: h11 quotes the value."""
    request = httpx2.Request("POST", f"{BASE_URL}/embeddings", headers=headers)
    bad = next(value for value in headers.values() if value != value.strip())
    inner = httpx2.LocalProtocolError(f"Illegal header value {bad.encode()!r}")
    error = openai.APIConnectionError(request=request)
    error.__cause__ = inner
    inner.__context__ = httpx2.LocalProtocolError(f"Illegal header value {bad.encode()!r}")
    return error


def chain(error: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_a_key_with_a_line_break_is_a_configuration_error_that_never_shows_it(ending: str) -> None:
    sdk = header_failure({"Authorization": f"Bearer {SECRET_KEY}{ending}"})
    error = error_from_openai(sdk, model=BGE, base_url=BASE_URL, batch_size=1)
    assert type(error) is ConfigurationError
    assert "'authorization'" in str(error) and "api_key=key.strip()" in str(error)
    assert ENV_API_KEY in str(error)
    for link in [error, *chain(sdk)]:  # api.py raises it `from` the SDK error
        assert SECRET_KEY not in str(link) and SECRET_KEY not in repr(link)


def test_a_default_header_with_a_line_break_is_named_by_its_name_only() -> None:
    sdk = header_failure({"Authorization": f"Bearer {SECRET_KEY}", "X-Team-Token": "t0ken-XYZ\n"})
    error = error_from_openai(sdk, model=BGE, base_url=BASE_URL, batch_size=1)
    assert type(error) is ConfigurationError
    assert "'X-Team-Token'" in str(error) and "default_headers" in str(error)
    assert "authorization" not in str(error).lower()
    for link in [error, *chain(sdk)]:
        assert "t0ken-XYZ" not in str(link) and SECRET_KEY not in str(link)


def test_a_real_connection_failure_is_still_a_service_error() -> None:
    request = httpx2.Request(
        "POST", f"{BASE_URL}/embeddings", headers={"Authorization": "Bearer k"}
    )
    sdk = openai.APIConnectionError(request=request)
    sdk.__cause__ = httpx2.ConnectError("[Errno 111] Connection refused")
    error = error_from_openai(sdk, model=BGE, base_url=BASE_URL, batch_size=1)
    assert type(error) is ServiceError
    assert "Connection refused" in str(error) and "--base-url" in str(error)


def test_format_positions_renders_runs() -> None:
    assert format_positions([0, 1, 2, 5, 7, 8]) == "[0-2, 5, 7-8]"
    assert format_positions([]) == "none"
    assert format_positions(list(range(0, 40, 2)), limit=3) == "[0, 2, 4, ... (17 more ranges)]"


def test_unsendable_headers_names_each_header_a_client_cannot_send() -> None:
    headers = {
        "Authorization": "Bearer sk-ok",
        "X-Newline": "v\n",
        "X-Space": " v",
        "X-Tab": "v\t",
        "X-Accent": "clé",
        "X-Inner-Space": "a b",
    }
    assert unsendable_headers(headers.items()) == ["X-Newline", "X-Space", "X-Tab", "X-Accent"]
    assert unsendable_headers([(b"authorization", b"Bearer k\r\n")]) == ["authorization"]
    assert unsendable_headers({}.items()) == []


def test_header_value_error_tells_the_key_from_other_headers() -> None:
    key = header_value_error(["authorization", "X-Team"])
    assert "The API key cannot be sent" in str(key) and "'X-Team'" in str(key)
    other = header_value_error(["X-Team"])
    assert "API key" not in str(other) and "default_headers" in str(other)
