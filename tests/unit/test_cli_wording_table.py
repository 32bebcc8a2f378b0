"""The keyword-to-flag table on the library's message fragments that no socket-free test
provokes (a withheld environment key, range errors, messages that carry both forms)."""

from __future__ import annotations

import pytest

from aimlapi_bge.cli import build_parser, cli_wording


def flags() -> set[str]:
    parser = build_parser()
    found: set[str] = set()
    for action in parser._actions:
        if isinstance(action.choices, dict):
            for command in action.choices.values():
                found.update(command._option_string_actions)
    return found


@pytest.mark.parametrize(
    ("library", "cli"),
    [
        (
            "The key in AIMLAPI_API_KEY was not sent: a key from the environment only goes to"
            " *.aimlapi.com, loopback or AIMLAPI_BASE_URL; pass api_key= for"
            " https://tei.example.com/v1.",
            "The key in AIMLAPI_API_KEY was not sent: a key from the environment only goes to"
            " *.aimlapi.com, loopback or AIMLAPI_BASE_URL; set"
            " AIMLAPI_BASE_URL=https://tei.example.com/v1 (instead of --base-url) to send it"
            " there.",
        ),
        ("Set a valid key in AIMLAPI_API_KEY or pass api_key=.", "Set a valid key in AIMLAPI_API_KEY."),
        ("set AIMLAPI_API_KEY (or pass api_key=). Get", "set AIMLAPI_API_KEY. Get"),
        ("batch_size must be at least 1, got 0", "--batch-size must be at least 1, got 0"),
        ("max_retries must be >= 0, got -1", "--max-retries must be >= 0, got -1"),
        ("timeout must be > 0 seconds, got 0", "--timeout must be > 0 seconds, got 0"),
        (
            "base_url must be an absolute http(s) URL such as 'https://api.aimlapi.com/v1'",
            "--base-url must be an absolute http(s) URL such as 'https://api.aimlapi.com/v1'",
        ),
        ("use backend='local' (--backend local) instead", "use --backend local instead"),
        ("stored in /data/my_cache_dir/x and AIMLAPI_BGE_CACHE_DIR", "stored in /data/my_cache_dir/x and AIMLAPI_BGE_CACHE_DIR"),
    ],
)  # fmt: skip
def test_python_keywords_become_flags(library: str, cli: str) -> None:
    if "api_key=" in library and "--api-key" in flags():
        cli = library.replace("api_key=", "--api-key")
    assert cli_wording(library) == cli


def test_fallback_is_named_as_a_flag_or_dropped_when_there_is_none() -> None:
    library = (
        "To keep the same vectors: use backend='local' (the same model in-process, extra"
        " [local]), fallback='local' to switch automatically, or point base_url at a server."
    )
    fallback = ", --fallback local to switch automatically" if "--fallback" in flags() else ""
    assert cli_wording(library) == (
        "To keep the same vectors: use --backend local (the same model in-process, extra"
        f" [local]){fallback}, or point --base-url at a server."
    )
