"""What the distribution declares and exposes: one version, the license, extras, install hints,
and the LlamaIndex-style import path. (The built wheel itself: tests/integration/test_wheel.py.)"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from aimlapi_bge.extras import install_hint
from support.isolation import import_error_with, run_python

ROOT = Path(__file__).resolve().parents[2]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        data: dict[str, Any] = tomllib.load(file)
    return data


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_version_has_one_source(project: dict[str, Any]) -> None:
    import aimlapi_bge

    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "aimlapi_bge.__version__"
    }
    assert importlib.metadata.version("aimlapi-bge") == aimlapi_bge.__version__


def test_license_is_an_spdx_expression_with_its_file(project: dict[str, Any]) -> None:
    assert project["project"]["license"] == "MIT"
    assert project["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 aimlapi-bge contributors" in text
    assert any(r.startswith("setuptools>=77") for r in project["build-system"]["requires"])


def test_the_core_needs_no_numpy_and_no_framework(project: dict[str, Any]) -> None:
    core = _names(project["project"]["dependencies"])
    assert {"openai", "pydantic"} <= core
    assert not core & {"numpy", "langchain-core", "llama-index-core", "fastembed"}


@pytest.mark.parametrize(
    ("extra", "package"),
    [("langchain", "langchain-core"), ("llama-index", "llama-index-core"), ("local", "fastembed")],
)
def test_each_extra_brings_its_framework(project: dict[str, Any], extra: str, package: str) -> None:
    assert package in _names(project["project"]["optional-dependencies"][extra])


def test_install_hint_names_the_index_and_the_checkout_command() -> None:
    assert install_hint("langchain") == (
        "pip install 'aimlapi-bge[langchain]' (from a checkout: pip install -e '.[langchain]')"
    )


@pytest.mark.parametrize(
    ("blocked", "statement", "extra"),
    [
        (["langchain_core"], "import langchain_aimlapi_bge", "langchain"),
        (["llama_index.core"], "import llama_index_aimlapi_bge", "llama-index"),
        (["llama_index.core"], "import llama_index.embeddings.aimlapi_bge", "llama-index"),
        (["fastembed"], "import aimlapi_bge.local", "local"),
    ],
)
def test_a_missing_extra_is_named_with_its_install_command(
    blocked: list[str], statement: str, extra: str
) -> None:
    assert install_hint(extra) in import_error_with(blocked, statement)


def test_llama_index_style_import_path_is_the_same_class() -> None:
    result = run_python(
        "import llama_index.core\n"
        "from llama_index.embeddings.aimlapi_bge import AIMLBGEEmbedding\n"
        "from llama_index_aimlapi_bge import AIMLBGEEmbedding as Same\n"
        "import llama_index, llama_index.embeddings\n"
        "assert AIMLBGEEmbedding is Same\n"
        "print(getattr(llama_index, '__file__', None), getattr(llama_index.embeddings, '__file__', None))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["None", "None"]  # both stay namespace packages


def test_no_init_for_the_shared_namespaces() -> None:
    assert not (ROOT / "src" / "llama_index" / "__init__.py").exists()
    assert not (ROOT / "src" / "llama_index" / "embeddings" / "__init__.py").exists()
    assert (ROOT / "src" / "llama_index" / "embeddings" / "aimlapi_bge" / "__init__.py").is_file()
