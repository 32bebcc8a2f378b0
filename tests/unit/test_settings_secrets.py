"""``default_headers`` values are secrets like the key: shown by name, values masked (issue 10).

Renderings checked: repr/str, pydantic dumps, LangChain's ``dumps``/``dumpd``, LlamaIndex's
``to_dict``/``to_json``, the core config and the settings summary.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from langchain_core.load import dumpd, dumps

from aimlapi_bge import ConfigurationError, Embedder, resolve_config
from aimlapi_bge.config import MASK
from aimlapi_bge.settings import SETTINGS, settings_summary
from langchain_aimlapi_bge import AIMLBGEEmbeddings
from llama_index_aimlapi_bge import AIMLBGEEmbedding

LOOPBACK = "http://127.0.0.1:9/v1"
KEY = "sk-key-91d0e7"
ORG = "org-secret-5b2c"
HEADERS = {"X-Org": ORG, "Authorization-Extra": "Token tok-secret-e81f"}


def renderings(instance: AIMLBGEEmbeddings | AIMLBGEEmbedding) -> list[str]:
    shown = [
        repr(instance),
        str(instance),
        str(instance.model_dump()),
        str(instance.model_dump(mode="json")),
        instance.model_dump_json(),
        repr(instance.embedder.config),
        str(dataclasses.asdict(instance.embedder.config)),
        str(instance.default_headers),
        str(settings_summary(instance.embedder)),
    ]
    if isinstance(instance, AIMLBGEEmbeddings):
        shown += [dumps(instance), json.dumps(dumpd(instance))]
    else:
        shown += [json.dumps(instance.to_dict()), instance.to_json(), str(instance.to_payload())]
    return shown


@pytest.mark.parametrize("cls", [AIMLBGEEmbeddings, AIMLBGEEmbedding])
def test_header_values_and_the_key_are_never_rendered(
    cls: type[AIMLBGEEmbeddings] | type[AIMLBGEEmbedding],
) -> None:
    instance = cls(base_url=LOOPBACK, api_key=KEY, default_headers=HEADERS)
    for text in renderings(instance):
        for secret in (KEY, ORG, "tok-secret"):
            assert secret not in text
    # The values are really there (the core sends them), only never shown.
    assert instance.embedder.config.default_headers == HEADERS
    assert instance.default_headers == HEADERS


@pytest.mark.parametrize("cls", [AIMLBGEEmbeddings, AIMLBGEEmbedding])
def test_header_names_are_shown_with_masked_values(
    cls: type[AIMLBGEEmbeddings] | type[AIMLBGEEmbedding],
) -> None:
    instance = cls(base_url=LOOPBACK, default_headers=HEADERS)
    masked = {"X-Org": MASK, "Authorization-Extra": MASK}
    assert f"default_headers={masked!r}" in repr(instance)
    assert instance.model_dump()["default_headers"] == masked
    assert json.loads(instance.model_dump_json())["default_headers"] == masked


def test_a_masked_dump_cannot_silently_become_real_headers() -> None:
    original = AIMLBGEEmbedding(base_url=LOOPBACK, default_headers=HEADERS)
    with pytest.raises(ConfigurationError, match="pass the real value") as caught:
        AIMLBGEEmbedding.from_dict(original.to_dict())
    assert ORG not in str(caught.value)
    restored = AIMLBGEEmbedding.from_dict(original.to_dict(), default_headers=HEADERS)
    assert restored.embedder.config.default_headers == HEADERS


def test_the_core_config_hides_header_values() -> None:
    config = resolve_config(base_url=LOOPBACK, api_key=KEY, default_headers=HEADERS)
    for text in (repr(config), str(config), str(settings_summary(Embedder(config)))):
        assert ORG not in text and KEY not in text


def test_the_secret_settings_are_the_key_and_the_headers() -> None:
    assert {item.name for item in SETTINGS if item.secret} == {"api_key", "default_headers"}
