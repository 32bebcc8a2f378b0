"""docs/errors.md says what the code raises: its class names, hierarchy, table and retired models."""

from __future__ import annotations

import re
from pathlib import Path

import aimlapi_bge
from aimlapi_bge import AIMLAPIError
from aimlapi_bge.errors import STATUS_ERRORS
from aimlapi_bge.models import RETIRED_MODELS

DOC = (Path(__file__).parents[2] / "docs" / "errors.md").read_text(encoding="utf-8")
NOT_OURS = {"TypeError", "ValueError", "ValidationError"}  # builtins, and pydantic's


def section(title: str) -> str:
    start = DOC.index(f"\n## {title}")
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end != -1 else None]


def exported_errors() -> set[str]:
    return {
        name
        for name in aimlapi_bge.__all__
        if isinstance(getattr(aimlapi_bge, name), type)
        and issubclass(getattr(aimlapi_bge, name), AIMLAPIError)
    }


def test_every_class_named_in_the_page_is_exported() -> None:
    named = set(re.findall(r"`(?:\w+\.)*([A-Z]\w*Error)`", DOC)) - NOT_OURS
    assert named <= set(aimlapi_bge.__all__)
    assert named == exported_errors()  # and every exported error is documented


def test_the_hierarchy_drawn_is_the_real_one() -> None:
    tree = re.search(r"```text\n(AIMLAPIError\n.*?)```", DOC, re.DOTALL)
    assert tree is not None
    parents: list[str] = []
    drawn: set[str] = set()
    for line in tree.group(1).splitlines():
        name = line.split()[-1]
        depth = (len(line) - len(name)) // 4
        parents[depth:] = [name]
        drawn.add(name)
        cls = getattr(aimlapi_bge, name)
        if depth:
            assert getattr(aimlapi_bge, parents[depth - 1]) in cls.__bases__, name
    assert drawn == exported_errors()


def _status_pairs_in_doc() -> set[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    rows = re.findall(r"^\| ([^|]+) \| [^|]+ \| `(\w+)` \|", section("Server answers"), re.M)
    for statuses, name in rows:
        for status in statuses.split(","):
            status = status.strip()
            if status == "5xx":
                pairs.update((str(code), name) for code in range(500, 600))
            else:
                pairs.add(("any" if status == "any other" else status, name))
    return pairs


def test_the_status_table_has_exactly_the_rows_of_the_code() -> None:
    in_code: set[tuple[str, str]] = set()
    for rule in STATUS_ERRORS:
        statuses = ["any"] if rule.statuses is None else [str(code) for code in rule.statuses]
        in_code.update((status, rule.error.__name__) for status in statuses)
    assert _status_pairs_in_doc() == in_code


def test_the_retired_models_table_is_the_constant() -> None:
    rows = re.findall(r"^\| `([^`]+)` \| (\d{4}-\d\d-\d\d) \|$", section("Server answers"), re.M)
    assert {model: day for model, day in rows} == {
        model: day.isoformat() for model, day in RETIRED_MODELS.items()
    }
