"""MkDocs hook: replace ``<!-- settings-table -->`` in configuration.md with a table of every setting.

The table is generated from ``aimlapi_bge.settings.SETTINGS``, so the documentation cannot drift from
the code. A configuration page without the marker fails the build (the table would vanish quietly).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

MARKER = "<!-- settings-table -->"
PAGE = "configuration.md"
COLUMNS = (
    "Setting (core)",
    "LangChain field",
    "LlamaIndex field",
    "CLI flag",
    "Environment",
    "Default",
    "Description",
)


class SettingLike(Protocol):
    """The fields of ``aimlapi_bge.settings.Setting`` the table shows."""

    name: str
    default: Any
    help: str
    env: str | None
    cli_flag: str | None
    langchain: str | None
    llama_index: str | None
    default_doc: str | None


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def _code(value: str | None) -> str:
    if not value:
        return ""
    return ", ".join(f"`{_cell(part.strip())}`" for part in value.split(","))


def render_table(settings: Iterable[SettingLike]) -> str:
    """A Markdown table, one row per setting, in the order given."""
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for setting in settings:
        default = setting.default_doc if setting.default_doc is not None else repr(setting.default)
        row = (
            _code(setting.name),
            _code(setting.langchain),
            _code(setting.llama_index),
            _code(setting.cli_flag),
            _code(setting.env),
            _cell(default),
            _cell(setting.help),
        )
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def replace_marker(markdown: str, settings: Iterable[SettingLike]) -> str:
    """``markdown`` with its one marker line replaced by the table; an error if there is none."""
    if markdown.count(MARKER) != 1:
        raise ValueError(
            f"{PAGE} must contain the line {MARKER} exactly once "
            f"(found {markdown.count(MARKER)}): the settings table goes there"
        )
    return markdown.replace(MARKER, render_table(settings))


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: fill in the settings table on the configuration page."""
    if page.file.src_uri != PAGE:
        return markdown
    from mkdocs.exceptions import PluginError

    try:
        from aimlapi_bge.settings import SETTINGS
    except ImportError as exc:
        raise PluginError(f"{PAGE}: cannot import aimlapi_bge.settings.SETTINGS: {exc}") from exc
    try:
        return replace_marker(markdown, SETTINGS)
    except ValueError as exc:
        raise PluginError(str(exc)) from exc
