"""Every setting is declared once, in ``aimlapi_bge.settings.SETTINGS`` (issue 11).

The core config, ``resolve_config``, both adapters and the command line either derive from the
declaration or are checked against it here: each setting appears everywhere it says it does,
under the declared name, with the declared default; and nothing appears that it lacks.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import pytest
from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import SecretStr

from aimlapi_bge.adapter_support import adapter_fields
from aimlapi_bge.cli import LOCAL_SETTINGS, build_parser
from aimlapi_bge.config import EmbedderConfig, resolve_config
from aimlapi_bge.settings import SETTINGS, Setting, setting
from langchain_aimlapi_bge import AIMLBGEEmbeddings
from llama_index_aimlapi_bge import AIMLBGEEmbedding

LOOPBACK = "http://127.0.0.1:9/v1"

# A valid, non-default value for settings (others are tried with their default).
SAMPLES: dict[str, Any] = {
    "model": "acme/embed-1",
    "api_key": "sk-sample",
    "base_url": "http://127.0.0.2:9/v1",
    "batch_size": 3,
    "max_concurrency": 2,
    "max_retries": 0,
    "timeout": 1.5,
    "query_instruction": "Q: ",
    "default_headers": {"X-Team": "rag"},
    "backend": "api",
    "fallback": None,
    "cache_dir": "/tmp/models",
    "local_model_path": "/tmp/model",
    "http_client": None,
    "http_async_client": None,
}

# Fields an adapter has that are not settings of the core.
LANGCHAIN_CALL_OPTIONS = {"show_progress_bar"}  # read on each call
LLAMA_INDEX_FRAMEWORK_FIELDS = set(BaseEmbedding.model_fields) - {"model_name", "embed_batch_size"}


def test_each_setting_is_declared_once_with_one_line_of_help() -> None:
    names = [item.name for item in SETTINGS]
    assert len(names) == len(set(names))
    for item in SETTINGS:
        assert isinstance(item, Setting)
        assert item.help.endswith(".") and "\n" not in item.help, item.name
        assert item.annotation, item.name
        assert setting(item.name) is item
        if item.default is None and item.default_doc is None:
            assert "None" in item.annotation, item.name  # None really is the default
        if item.cli_flag is not None:
            assert item.cli_flag == "--" + item.name.replace("_", "-")
    with pytest.raises(KeyError, match="batch_size"):
        setting("batchsize")


def test_the_core_config_has_exactly_the_declared_settings() -> None:
    config_fields = {
        item.name: item
        for item in dataclasses.fields(EmbedderConfig)
        if not item.metadata.get("derived")
    }
    assert set(config_fields) == {item.name for item in SETTINGS}
    for item in SETTINGS:
        if item.default_doc is None:  # computed defaults are resolved in EmbedderConfig
            assert config_fields[item.name].default == item.default, item.name


def test_resolve_config_takes_every_setting_by_its_core_name() -> None:
    assert set(SAMPLES) <= {item.name for item in SETTINGS}
    for item in SETTINGS:
        name, value = item.name, SAMPLES.get(item.name, item.default)
        config = resolve_config(**{"base_url": LOOPBACK, name: value})
        shown = getattr(config, name)
        if isinstance(shown, SecretStr):
            shown = shown.get_secret_value()
        if name in SAMPLES or item.default_doc is None:  # else: a computed default
            assert shown == (value.rstrip("/") if name == "base_url" else value), name


@pytest.mark.parametrize(
    ("cls", "framework", "extra"),
    [
        (AIMLBGEEmbeddings, "langchain", LANGCHAIN_CALL_OPTIONS),
        (AIMLBGEEmbedding, "llama_index", LLAMA_INDEX_FRAMEWORK_FIELDS),
    ],
)
def test_each_adapter_has_exactly_the_declared_fields_and_defaults(
    cls: type[Any], framework: str, extra: set[str]
) -> None:
    declared = {getattr(item, framework): item for item in SETTINGS if getattr(item, framework)}
    assert set(cls.model_fields) == set(declared) | extra
    for name, item in declared.items():
        assert cls.model_fields[name].default == item.default, name
        assert cls.model_fields[name].description == item.help, name
    assert adapter_fields(framework) == cls._FIELDS  # type: ignore[arg-type]
    assert set(cls._FIELDS.values()) == {item.name for item in declared.values()}


def test_the_framework_naming_conventions_are_kept() -> None:
    assert setting("model").langchain == "model"
    assert setting("batch_size").langchain == "batch_size"
    assert setting("model").llama_index == "model_name"
    assert setting("batch_size").llama_index == "embed_batch_size"


def _setting_options(
    parser: argparse.ArgumentParser, title: str = "settings (shared by all commands)"
) -> dict[str, argparse.Action]:
    groups = [g for g in parser._action_groups if g.title == title]
    (group,) = groups
    return {action.option_strings[0]: action for action in group._group_actions}


def test_every_command_has_exactly_the_declared_options() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    declared = {item.cli_flag: item for item in SETTINGS if item.cli_flag}
    assert declared, "some settings are on the command line"
    local_only = {"verify-local", "compare"}  # the local model's settings only
    for name in local_only:
        options = _setting_options(commands.choices[name], "local model")
        assert set(options) == {item.cli_flag for item in SETTINGS if item.name in LOCAL_SETTINGS}
    for name, command in commands.choices.items():
        if name in local_only:
            continue
        options = _setting_options(command)
        # check's --timeout is its own overall deadline (see docs/command-line.md).
        redefined = {"--timeout"} if name == "check" else set()
        assert set(options) == set(declared) - redefined, name
        assert redefined <= set(command._option_string_actions), name
        for flag, action in options.items():
            assert action.dest == declared[flag].name
            assert action.default is None  # not given: resolve_config's default applies
            assert (declared[flag].default_doc or str(declared[flag].default)) in (
                action.help or ""
            ).replace("%%", "%")
    secret_flags = {item.cli_flag for item in SETTINGS if item.secret}
    assert secret_flags == {None}, "a secret on the command line shows in `ps`"
