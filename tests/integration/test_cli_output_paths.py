"""An --output the command cannot use is a usage error (exit 2), found before any request."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aimlapi_bge.cli import EXIT_USAGE, main
from support.standin import StandInServer


@pytest.fixture
def source(tmp_path: Path, standin: StandInServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AIMLAPI_API_KEY", standin.api_key or "")
    monkeypatch.setenv("AIMLAPI_BASE_URL", standin.url)
    path = tmp_path / "corpus.txt"
    path.write_text("one\ntwo\nthree\n", encoding="utf-8")
    return path


def embed_into(output: Path, source: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["embed", "-i", str(source), "-o", str(output), "--no-progress"])
    return code, capsys.readouterr().err


def assert_refused_quietly(code: int, err: str, standin: StandInServer) -> None:
    assert code == EXIT_USAGE
    assert "Rerun" not in err and "resume" not in err  # nothing was interrupted
    assert "texts are in" not in err
    assert "Traceback" not in err
    assert standin.embedding_requests == []


def test_a_directory(
    tmp_path: Path, source: Path, standin: StandInServer, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    code, err = embed_into(folder, source, capsys)
    assert f"--output {folder} is a directory; give a file name." in err
    assert_refused_quietly(code, err, standin)


def test_a_missing_parent_directory(
    tmp_path: Path, source: Path, standin: StandInServer, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "no" / "such" / "vectors.jsonl"
    code, err = embed_into(output, source, capsys)
    assert f"the directory {output.parent} does not exist" in err
    assert_refused_quietly(code, err, standin)
    assert not output.parent.exists()


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere"
)
def test_an_unwritable_directory(
    tmp_path: Path, source: Path, standin: StandInServer, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, err = embed_into(locked / "vectors.jsonl", source, capsys)
    finally:
        locked.chmod(0o700)
    assert "cannot write there (permission denied)" in err
    assert_refused_quietly(code, err, standin)


def test_metadata_that_cannot_be_written_leaves_no_empty_output(
    tmp_path: Path, source: Path, standin: StandInServer, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "vectors.jsonl"
    (tmp_path / "vectors.jsonl.meta.json").mkdir()  # the sidecar's name is taken by a folder
    code, err = embed_into(output, source, capsys)
    assert "vectors.jsonl.meta.json" in err
    assert_refused_quietly(code, err, standin)
    assert not output.exists()


def test_a_service_failure_before_any_vector_does_not_speak_of_resuming(
    source: Path, standin: StandInServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    standin.inject(503, 503)
    code = main(["embed", "-i", str(source), "-o", str(tmp_path / "v.jsonl"), "--max-retries", "1"])
    err = capsys.readouterr().err
    assert code == 1
    assert "0 of 3 texts are in" in err
    assert "Rerun the same command to resume" not in err


@pytest.mark.skipif(not Path("/proc/version").is_file(), reason="needs Linux /proc")
def test_a_file_that_refuses_writes_even_to_root(
    source: Path, standin: StandInServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = embed_into(Path("/proc/version"), source, capsys)
    assert "--output /proc/version: cannot write there" in err
    assert_refused_quietly(code, err, standin)
