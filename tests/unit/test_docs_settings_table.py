"""The MkDocs hook that turns the settings declaration into the table on docs/configuration.md."""

from __future__ import annotations

from types import ModuleType

import pytest

from aimlapi_bge.settings import Setting
from support.examples import ROOT, load_script


@pytest.fixture(scope="module")
def hook() -> ModuleType:
    return load_script(ROOT / "docs" / "hooks" / "settings_table.py", "settings_table_hook")


SETTINGS = (
    Setting("batch_size", "int", 128, "texts per request", None, "--batch-size", "batch_size",
            "embed_batch_size"),
    Setting("api_key", "SecretStr | None", None, "bearer key | never logged",
            "AIMLAPI_API_KEY, AIML_API_KEY", None, "api_key", "api_key", secret=True,
            default_doc="none"),
)  # fmt: skip


def _rows(table: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip("|").split(" | ")] for line in table.splitlines()[2:]
    ]


def test_one_row_per_setting_in_the_documented_columns(hook: ModuleType) -> None:
    table = hook.render_table(SETTINGS)
    header, rule, *_ = table.splitlines()
    assert header == (
        "| Setting (core) | LangChain field | LlamaIndex field | CLI flag | Environment | Default "
        "| Description |"
    )
    assert rule.count("---") == 7
    assert _rows(table)[0] == [
        "`batch_size`", "`batch_size`", "`embed_batch_size`", "`--batch-size`", "", "128",
        "texts per request",
    ]  # fmt: skip


def test_default_doc_wins_over_repr_and_pipes_are_escaped(hook: ModuleType) -> None:
    row = hook.render_table(SETTINGS).splitlines()[3]
    assert "| none |" in row
    assert "None" not in row
    assert "`AIMLAPI_API_KEY`, `AIML_API_KEY`" in row
    assert "bearer key \\| never logged" in row


def test_repr_shows_the_type_of_a_default(hook: ModuleType) -> None:
    table = hook.render_table([Setting("model", "str", "BAAI/bge-base-en-v1.5", "model name")])
    assert "| 'BAAI/bge-base-en-v1.5' |" in table


def test_marker_is_replaced_in_place(hook: ModuleType) -> None:
    page = "# Configuration\n\nIntro.\n\n<!-- settings-table -->\n\nMore.\n"
    out = hook.replace_marker(page, SETTINGS)
    assert "<!-- settings-table -->" not in out
    assert out.startswith("# Configuration\n\nIntro.\n\n| Setting (core) |")
    assert out.endswith("\n\nMore.\n")


@pytest.mark.parametrize("page", ["# Configuration\n", "<!-- settings-table -->\n" * 2])
def test_a_page_without_exactly_one_marker_is_an_error(hook: ModuleType, page: str) -> None:
    with pytest.raises(ValueError, match="settings-table"):
        hook.replace_marker(page, SETTINGS)
