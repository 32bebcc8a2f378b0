"""Bad settings are refused where they are given, the same way on every path (issue 10).

Paths: ``resolve_config``, ``EmbedderConfig``, both adapters' constructors, assignment to an
adapter's field, ``model_copy(update=...)``, and the command line. Users catch
``ConfigurationError`` (a ``ValueError``) on every one; the message names the setting as the
user spelt it, and never a key or a header value.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from aimlapi_bge import ConfigurationError, EmbedderConfig, resolve_config
from aimlapi_bge.cli import EXIT_CONFIG, EXIT_USAGE, main
from langchain_aimlapi_bge import AIMLBGEEmbeddings
from llama_index_aimlapi_bge import AIMLBGEEmbedding

LOOPBACK = "http://127.0.0.1:9/v1"
KEY = "sk-live-4f9a2c"
Adapter = type[AIMLBGEEmbeddings] | type[AIMLBGEEmbedding]
ADAPTERS: list[Adapter] = [AIMLBGEEmbeddings, AIMLBGEEmbedding]

# (setting, bad value, what the message says about it)
BAD_VALUES: list[tuple[str, Any, str]] = [
    ("timeout", float("nan"), "finite number of seconds above 0, got nan"),
    ("timeout", float("inf"), "finite number of seconds above 0, got inf"),
    ("timeout", 0, "finite number of seconds above 0, got 0"),
    ("timeout", -1.0, "above 0, got -1.0"),
    ("timeout", True, "must be a number of seconds, got True"),
    ("timeout", "60", "must be a number of seconds, got '60'"),
    ("batch_size", 2.5, "must be an integer, got 2.5"),
    ("batch_size", True, "must be an integer, got True"),
    ("batch_size", 0, "must be at least 1, got 0"),
    ("batch_size", "8", "must be an integer, got '8'"),
    ("max_concurrency", 0, "must be at least 1, got 0"),
    ("max_concurrency", False, "must be an integer, got False"),
    ("max_retries", -1, "must be at least 0, got -1"),
    ("base_url", "http://127.0.0.1:9/v1\r\nX-Injected: 1", "has a line break at character 22"),
    ("base_url", "http://127.0.0.1:9/ v1", "has a space at character 20"),
    ("base_url", "http://127.0.0.1:9/\x00v1", "has a control character"),
    ("base_url", "http://user:pa55@127.0.0.1:9/v1", "must not carry a user name or password"),
    ("base_url", "ftp://127.0.0.1/v1", "must be an absolute http(s) URL"),
    ("base_url", "127.0.0.1:9/v1", "must be an absolute http(s) URL"),
    ("base_url", "http://127.0.0.1:99999/v1", "must be an absolute http(s) URL"),
    ("backend", "cloud", "must be one of 'api', 'local', got 'cloud'"),
    ("fallback", "api", "must be one of 'local', got 'api'"),
    ("model", "", "must be a non-empty string"),
    ("query_instruction", 3, "must be a string"),
    ("default_headers", ["X-Team"], "must be a mapping"),
    ("http_client", object(), "must be an httpx2.Client"),
]


def adapter_name(cls: Adapter, setting: str) -> str:
    if cls is AIMLBGEEmbedding:
        return {"model": "model_name", "batch_size": "embed_batch_size"}.get(setting, setting)
    return setting


def refused(build: Callable[[], object], *fragments: str) -> str:
    with pytest.raises(ConfigurationError) as caught:
        build()
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message
    assert isinstance(caught.value, ValueError)
    return message


# --- values -------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "value", "problem"), BAD_VALUES)
def test_the_core_refuses_a_bad_value(name: str, value: Any, problem: str) -> None:
    refused(lambda: resolve_config(**{"base_url": LOOPBACK, name: value}), name, problem)
    if name != "base_url":
        refused(lambda: EmbedderConfig(**{name: value}), name, problem)


@pytest.mark.parametrize(("name", "value", "problem"), BAD_VALUES)
@pytest.mark.parametrize("cls", ADAPTERS)
def test_an_adapter_refuses_a_bad_value_at_construction(
    cls: Adapter, name: str, value: Any, problem: str
) -> None:
    field = adapter_name(cls, name)
    refused(lambda: cls(**{"base_url": LOOPBACK, field: value}), f"{field} ", problem)


@pytest.mark.parametrize(("name", "value", "problem"), BAD_VALUES)
@pytest.mark.parametrize("cls", ADAPTERS)
def test_an_adapter_refuses_a_bad_value_later_and_changes_nothing(
    cls: Adapter, name: str, value: Any, problem: str
) -> None:
    instance = cls(base_url=LOOPBACK, api_key=KEY)
    field = adapter_name(cls, name)
    before, core, given = instance.__dict__.copy(), instance.embedder, instance.model_fields_set
    refused(lambda: setattr(instance, field, value), field, problem)
    assert instance.__dict__ == before
    assert instance.model_fields_set == given
    assert instance.embedder is core
    refused(lambda: instance.model_copy(update={field: value}), field, problem)


def test_a_key_policy_violation_after_construction_changes_nothing() -> None:
    instance = AIMLBGEEmbeddings(base_url=LOOPBACK, api_key=KEY)
    with pytest.raises(ConfigurationError, match="plain http"):
        instance.base_url = "http://embeddings.example.com/v1"
    assert instance.base_url == LOOPBACK
    assert instance.embedder.config.base_url == LOOPBACK
    with pytest.raises(ConfigurationError, match="plain http"):
        instance.model_copy(update={"base_url": "http://embeddings.example.com/v1"})


def test_valid_values_are_normalised_the_same_on_every_path() -> None:
    for instance in (
        AIMLBGEEmbeddings(base_url=f"  {LOOPBACK}/\n", timeout=5, api_key=KEY),
        AIMLBGEEmbedding(base_url=f"  {LOOPBACK}/\n", timeout=5, api_key=KEY),
    ):
        assert instance.base_url == LOOPBACK
        assert instance.timeout == 5.0 and isinstance(instance.timeout, float)
        assert instance.embedder.config.base_url == LOOPBACK
    assert resolve_config(base_url=LOOPBACK + "/", timeout=5).timeout == 5.0


# --- keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize("padding", ["\n", "\r\n", " ", "\t \n"])
def test_surrounding_whitespace_is_stripped_from_a_key(
    padding: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    padded = f"{padding}{KEY}{padding}"
    configs = [
        resolve_config(base_url=LOOPBACK, api_key=padded),
        resolve_config(base_url=LOOPBACK, environ={"AIMLAPI_API_KEY": padded}),
        resolve_config(base_url=LOOPBACK, environ={"AIML_API_KEY": padded}),
        AIMLBGEEmbeddings(base_url=LOOPBACK, api_key=padded).embedder.config,
        AIMLBGEEmbedding(base_url=LOOPBACK, api_key=padded).embedder.config,
    ]
    monkeypatch.setenv("AIMLAPI_API_KEY", padded)
    configs.append(AIMLBGEEmbeddings(base_url=LOOPBACK).embedder.config)
    for config in configs:
        assert config.api_key is not None
        assert config.api_key.get_secret_value() == KEY


def test_a_blank_primary_variable_does_not_hide_the_sdk_one() -> None:
    config = resolve_config(
        base_url=LOOPBACK, environ={"AIMLAPI_API_KEY": " \n", "AIML_API_KEY": KEY}
    )
    assert config.api_key is not None and config.api_key.get_secret_value() == KEY


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        ("sk-live-4f9a\n2c", "a line break"),
        ("sk-live-4f9a\r\n2c", "a line break"),
        ("sk-live-4f9a 2c", "a space"),
        ("sk-live-4f9a\t2c", "a tab"),
        ("sk-live-4f9a\x002c", "a control character"),
        ("sk-live-4f9a\x7f2c", "a control character"),
        ("sk-live-4f9a\u00a02c", "a control character"),  # a no-break space
        ("sk-live-4f9a\u20142c", "a non-ASCII character"),
    ],
)
def test_a_key_with_inner_whitespace_or_control_characters_names_its_source(
    bad: str, what: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = [
        refused(lambda: resolve_config(base_url=LOOPBACK, api_key=bad), "given as api_key=", what),
        refused(lambda: AIMLBGEEmbeddings(base_url=LOOPBACK, api_key=bad), "api_key=", what),
        refused(lambda: AIMLBGEEmbedding(base_url=LOOPBACK, api_key=bad), "api_key=", what),
    ]
    for variable in ("AIMLAPI_API_KEY", "AIML_API_KEY"):
        build = partial(resolve_config, base_url=LOOPBACK, environ={variable: bad})
        messages.append(refused(build, f"in {variable}", what))
        if "\x00" not in bad:  # the process environment cannot hold a NUL
            monkeypatch.delenv("AIMLAPI_API_KEY", raising=False)
            monkeypatch.setenv(variable, bad)
            messages.append(refused(lambda: AIMLBGEEmbedding(base_url=LOOPBACK), f"in {variable}"))
    for message in messages:
        for part in ("sk-live", "4f9a", "2c"):
            assert part not in message


def test_an_environment_key_that_would_not_be_sent_is_not_judged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Withheld from an untrusted host anyway: the instance works without it (no key sent).
    monkeypatch.setenv("AIMLAPI_API_KEY", "two\nlines")
    config = resolve_config(base_url="https://embeddings.example.com/v1")
    assert config.api_key is None
    assert config.key_note is not None and "two" not in config.key_note


# --- headers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "fragments"),
    [
        ({"X-Org": "org-77\r\nX-Evil: 1"}, ["header 'X-Org'", "a line break"]),
        ({"X-Org": "org-77\n"}, None),  # surrounding whitespace: stripped, accepted
        ({"X-Org": "org\x0077"}, ["header 'X-Org'", "a control character"]),
        ({"X-Org": "org-7é"}, ["header 'X-Org'", "a non-ASCII character"]),
        ({"X Org": "org-77"}, ["invalid header name 'X Org'"]),
        ({"X-Org:": "org-77"}, ["invalid header name"]),
        ({"X-Org": 77}, ["header 'X-Org' with a int value"]),
        ({"X-Org": "**********"}, ["header 'X-Org' with the mask", "pass the real value"]),
    ],
)
def test_header_values_are_checked_and_never_shown(
    headers: dict[str, Any], fragments: list[str] | None
) -> None:
    builds: list[Callable[[], object]] = [
        lambda: resolve_config(base_url=LOOPBACK, default_headers=headers),
        lambda: AIMLBGEEmbeddings(base_url=LOOPBACK, default_headers=headers),
        lambda: AIMLBGEEmbedding(base_url=LOOPBACK, default_headers=headers),
    ]
    for build in builds:
        if fragments is None:
            assert build() is not None
            continue
        message = refused(build, "default_headers", *fragments)
        assert "org-7" not in message and "org\x00" not in message and "Evil" not in message


def test_header_values_are_stripped() -> None:
    config = resolve_config(base_url=LOOPBACK, default_headers={"X-Org": " org-77\r\n"})
    assert config.default_headers == {"X-Org": "org-77"}


# --- keywords -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: AIMLBGEEmbedding(embed_batchsize=3), "'embed_batchsize'; did you mean 'embed_batch_size'?"),
        (lambda: AIMLBGEEmbedding(batch_size=3), "'batch_size'; did you mean 'embed_batch_size'?"),
        (lambda: AIMLBGEEmbeddings(batchsize=3), "'batchsize'; did you mean 'batch_size'?"),
        (lambda: AIMLBGEEmbeddings(embed_batch_size=3), "did you mean 'batch_size'?"),
        (lambda: AIMLBGEEmbeddings(model_name="x"), "'model_name'; did you mean 'model'?"),
        (lambda: resolve_config(batchsize=3), "'batchsize'; did you mean 'batch_size'?"),
    ],
)
def test_a_misspelt_keyword_is_refused_with_the_closest_valid_one(
    build: Callable[[], object], fragment: str
) -> None:
    refused(build, fragment)


@pytest.mark.parametrize("cls", ADAPTERS)
def test_a_misspelt_field_is_refused_later_too(cls: Adapter) -> None:
    instance = cls(base_url=LOOPBACK)
    refused(lambda: setattr(instance, "max_concurency", 2), "did you mean 'max_concurrency'?")
    refused(
        lambda: instance.model_copy(update={"max_concurency": 2}),
        "did you mean 'max_concurrency'?",
    )


def test_llama_index_takes_model_as_model_name() -> None:
    instance = AIMLBGEEmbedding(model="acme/embed-1", base_url=LOOPBACK)
    assert instance.model_name == "acme/embed-1"
    assert instance.embedder.config.model == "acme/embed-1"
    assert instance.query_instruction == ""  # not an English BGE model
    copied = instance.model_copy(update={"model": "BAAI/bge-small-en-v1.5"})
    assert copied.model_name == copied.embedder.config.model == "BAAI/bge-small-en-v1.5"
    refused(
        lambda: AIMLBGEEmbedding(model="a/b", model_name="c/d", base_url=LOOPBACK),
        "got both 'model' and 'model_name'",
    )


def test_pydantic_errors_become_configuration_errors_naming_the_field() -> None:
    message = refused(lambda: AIMLBGEEmbedding(base_url=LOOPBACK, num_workers="many"))
    assert "num_workers" in message
    instance = AIMLBGEEmbeddings(base_url=LOOPBACK)
    refused(lambda: setattr(instance, "show_progress_bar", "often"), "show_progress_bar")


def test_copies_are_checked_like_constructions() -> None:
    instance = AIMLBGEEmbeddings(base_url=LOOPBACK, api_key=KEY)
    refused(lambda: instance.model_copy(update={"api_key": "a\nb"}), "api_key=")
    assert copy.copy(instance).embedder is not instance.embedder


# --- the command line ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timeout", "inf"], "argument --timeout: not a number: 'inf'"),
        (["--timeout", "0"], "argument --timeout: must be a finite number of seconds above 0"),
        (["--batch-size", "true"], "argument --batch-size: not an integer: 'true'"),
        (["--max-retries", "-1"], "argument --max-retries: must be at least 0, got -1"),
        (["--base-url", "http://u:p@127.0.0.1/v1"], "must not carry a user name or password"),
        (["--base-url", "http://127.0.0.1/v1\r\nX: 1"], "argument --base-url: has a line break"),
        (["--base-url", "ftp://127.0.0.1/v1"], "must be an absolute http(s) URL"),
        (["--fallback", "api"], "argument --fallback: invalid choice: 'api'"),
        (["--model", ""], "argument --model: must be a non-empty string"),
    ],
)
def test_the_command_line_refuses_a_bad_setting_with_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["embed", *args, "hello"])
    err = capsys.readouterr().err
    assert exit_info.value.code == EXIT_USAGE
    assert message in err
    assert "Traceback" not in err
    assert "u:p" not in err


def test_the_command_line_names_a_bad_key_in_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIMLAPI_API_KEY", "sk-first\nsk-second")
    assert main(["embed", "--base-url", LOOPBACK, "hello"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "The API key in AIMLAPI_API_KEY has a line break" in err
    assert "sk-first" not in err and "sk-second" not in err
    assert "Traceback" not in err


def test_a_bad_value_is_reported_before_a_missing_key() -> None:
    # No key and the AI/ML API as endpoint: the typo is still what the user hears about first.
    refused(lambda: resolve_config(batch_size=0), "batch_size must be at least 1")
    refused(lambda: AIMLBGEEmbeddings(batch_size=0), "batch_size must be at least 1")
    refused(lambda: resolve_config(backend="cloud"), "backend must be one of")


def test_a_broken_base_url_in_the_environment_counts_only_where_it_is_used() -> None:
    environ = {"AIMLAPI_BASE_URL": "http://user:pw@127.0.0.1:9/v1", "AIMLAPI_API_KEY": KEY}
    message = refused(lambda: resolve_config(environ=environ), "AIMLAPI_BASE_URL must not carry")
    assert "pw" not in message
    config = resolve_config(base_url=LOOPBACK, environ=environ)  # given in code: not used
    assert config.base_url == LOOPBACK
