"""The command line speaks in flags: real failures name --backend local, not backend='local'.

The library's messages use Python keywords (they are also read by programmers); the CLI
rewrites them when printing. Each test provokes a real failure and reads what a user sees.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aimlapi_bge.cli import EXIT_FAILED, EXIT_USAGE, main
from support.standin import StandInServer

PYTHON_WORDING = re.compile(
    r"\b(?:backend|fallback)='|\b(?:api_key|base_url|cache_dir|local_model_path)=|"
    r"`(?:timeout|max_retries|batch_size|max_concurrency|base_url)`"
)


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    code = main([str(arg) for arg in args])
    return code, capsys.readouterr().err


def assert_cli_wording(err: str) -> None:
    assert not PYTHON_WORDING.search(err), err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["check", "embed"])
def test_a_model_that_is_not_served(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with StandInServer(models=("other",)) as server:
        monkeypatch.setenv("AIMLAPI_API_KEY", server.api_key or "")
        args = ["--base-url", server.url] + (["hello"] if command == "embed" else [])
        code, err = run(capsys, command, *args)
    assert code == EXIT_FAILED
    assert "does not serve the model 'BAAI/bge-base-en-v1.5'" in err
    assert "--backend local computes them in-process" in err
    assert "or point --base-url at a self-hosted" in err
    assert_cli_wording(err)


def test_no_key_for_the_aimlapi(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "embed", "hello")  # no key, default endpoint: nothing is sent
    assert code == EXIT_USAGE
    assert "No API key for the AI/ML API: set AIMLAPI_API_KEY." in err
    assert "or use --backend local to run the model in-process" in err
    assert_cli_wording(err)


def test_a_refused_key(
    standin: StandInServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIMLAPI_API_KEY", "not-the-key")
    code, err = run(capsys, "embed", "--base-url", standin.url, "hello")
    assert code == EXIT_USAGE
    assert "Set a valid key in AIMLAPI_API_KEY." in err
    assert "not-the-key" not in err
    assert_cli_wording(err)


def test_local_model_files_missing_from_an_empty_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("fastembed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "empty-cache"
    cache.mkdir()
    code, err = run(capsys, "embed", "--backend", "local", "--cache-dir", cache, "hello")
    assert code == EXIT_USAGE
    assert f"they are not in --cache-dir {str(cache)!r} and HF_HUB_OFFLINE is set" in err
    assert "(set --cache-dir or AIMLAPI_BGE_CACHE_DIR" in err
    assert "pass --local-model-path DIR." in err
    assert_cli_wording(err)


def test_a_local_model_directory_without_the_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(capsys, "check", "--backend", "local", "--local-model-path", tmp_path)
    assert code == EXIT_USAGE
    assert f"--local-model-path {str(tmp_path)!r} lacks" in err
    assert_cli_wording(err)


def test_timeouts_name_the_flags_to_change(
    standin: StandInServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIMLAPI_API_KEY", standin.api_key or "")
    standin.settings.slow_seconds = 2.0
    standin.inject("slow")
    code, err = run(
        capsys, "embed", "--base-url", standin.url, "--timeout", "0.2", "--max-retries", "0", "x"
    )
    assert code == EXIT_FAILED
    assert "timed out after every retry. Raise --timeout or --max-retries, or lower" in err
    assert "--batch-size" in err
    assert_cli_wording(err)


@pytest.mark.parametrize("command", [[], ["embed"], ["check"]])
def test_help_lists_the_exit_codes(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    out = capsys.readouterr().out
    codes = re.findall(r"^  (\d+) ", out.split("exit codes:", 1)[1], flags=re.MULTILINE)
    assert codes == ["0", "1", "2", "130", "141"]
    assert_cli_wording(out)
