"""``aimlapi-bge embed -i - -o -`` in a Unix pipe: texts in on stdin, clean JSONL out on stdout.

The pipe itself is tested with real processes (``python -m aimlapi_bge.cli``) against the
stand-in, as a shell would run them; the error cases run in-process with a replaced stdin.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aimlapi_bge import BGE_QUERY_INSTRUCTION
from aimlapi_bge.cli import EXIT_BROKEN_PIPE, EXIT_OK, EXIT_USAGE, main
from support.helpers import expected
from support.standin import StandInServer

CLI = [sys.executable, "-m", "aimlapi_bge.cli"]


@pytest.fixture
def server() -> Iterator[StandInServer]:
    with StandInServer() as standin:
        yield standin


def environment(server: StandInServer) -> dict[str, str]:
    return {
        **os.environ,
        "AIMLAPI_BASE_URL": server.url,
        "AIMLAPI_API_KEY": server.api_key or "",
    }


def pipe(server: StandInServer, data: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*CLI, "embed", *args],
        input=data,
        env=environment(server),
        capture_output=True,
        timeout=120,
    )


def in_process(
    server: StandInServer,
    data: bytes,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *args: str,
) -> tuple[int, bytes, str]:
    """Like :func:`pipe`, in this process: ``sys.stdin`` holds ``data``."""
    for name, value in environment(server).items():
        if name.startswith("AIMLAPI"):
            monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
    code = main(["embed", *args])
    out, err = capsys.readouterr()
    return code, out.encode(), err


def parsed(stdout: bytes) -> list[dict[str, Any]]:
    """stdout as JSONL: every line a JSON object, nothing else."""
    text = stdout.decode("utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_jsonl_in_jsonl_out(server: StandInServer) -> None:
    records = [{"id": f"doc-{i}", "text": f"passage {i} about π"} for i in range(25)]
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    result = pipe(server, data, "-i", "-", "-o", "-", "--batch-size", "4")
    assert result.returncode == EXIT_OK, result.stderr.decode()
    rows = parsed(result.stdout)
    assert sorted(row["id"] for row in rows) == sorted(r["id"] for r in records)
    by_id = {r["id"]: r["text"] for r in records}
    for row in rows:
        assert row["embedding"] == expected([by_id[row["id"]]])[0], row["id"]
    stderr = result.stderr.decode()
    assert "Embedding: 25text" in stderr  # the progress bar, on stderr only
    assert "25 vectors written to standard output" in stderr
    assert not (Path.cwd() / "-").exists()
    assert not (Path.cwd() / "-.meta.json").exists()


def test_text_lines_in_ids_are_line_numbers(server: StandInServer) -> None:
    texts = ["first line", "", "third line", '{"not": "a record"}']
    data = ("\r\n".join(texts) + "\n").encode()
    result = pipe(server, data, "-i", "-", "-o", "-", "--no-progress")
    assert result.returncode == EXIT_OK, result.stderr.decode()
    rows = parsed(result.stdout)
    assert [row["id"] for row in rows] == [0, 1, 2, 3]
    sent = ["first line", " ", "third line", '{"not": "a record"}']
    assert [row["embedding"] for row in rows] == expected(sent)


def test_queries_through_a_pipe(
    server: StandInServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = in_process(
        server, b"who is Laura?\n", monkeypatch, capsys, "-i", "-", "-o", "-", "--query"
    )
    assert code == EXIT_OK, err
    assert parsed(out) == [
        {"id": 0, "embedding": expected([BGE_QUERY_INSTRUCTION + "who is Laura?"])[0]}
    ]


def test_a_file_to_stdout(
    server: StandInServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "corpus.jsonl"
    source.write_text('{"id": 1, "text": "alpha"}\n{"id": 2, "text": "beta"}\n')
    code, out, err = in_process(server, b"", monkeypatch, capsys, "-i", str(source), "-o", "-")
    assert code == EXIT_OK, err
    assert parsed(out) == [
        {"id": 1, "embedding": expected(["alpha"])[0]},
        {"id": 2, "embedding": expected(["beta"])[0]},
    ]
    assert not (tmp_path / "-.meta.json").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"id": 1, "text": "ok"}\n{"id": 2, "text": \n', "<stdin>:2: not valid JSON"),
        (b'{"id": 1, "text": "a"}\n{"id": 1, "text": "b"}\n', "<stdin>: the id 1 appears twice"),
        (b'{"id": 1, "text": "a"}\n{"text": "b"}\n', '<stdin>:2: expected an object with "id"'),
        (b"caf\xe9\n", "<stdin>:1: not UTF-8 text"),
    ],
)
def test_bad_input_stops_the_stream_with_its_position(
    server: StandInServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    data: bytes,
    message: str,
) -> None:
    code, out, err = in_process(server, data, monkeypatch, capsys, "-i", "-", "-o", "-")
    assert code == EXIT_USAGE
    assert message in err
    assert "Traceback" not in err
    assert out == b""
    assert server.embedding_requests == []


def test_stdin_into_a_resumable_file_is_refused(
    server: StandInServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "vectors.jsonl"
    with pytest.raises(SystemExit) as exit_info:
        main(["embed", "-i", "-", "-o", str(output)])
    assert exit_info.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--input - (standard input) needs --output - (standard output)" in err
    assert not output.exists()


def test_closing_the_pipe_early_ends_quietly(server: StandInServer) -> None:
    """``... | head -1``: the reader goes away after one line; no traceback, exit 141."""
    data = "".join(f"text number {i}\n" for i in range(200)).encode()
    process = subprocess.Popen(
        [*CLI, "embed", "-i", "-", "-o", "-", "--batch-size", "4", "--max-concurrency", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(server),
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(data)
    process.stdin.close()
    first = process.stdout.readline()
    process.stdout.close()  # 200 lines of ~15 kB each cannot all fit in the pipe's buffer
    assert process.stderr is not None
    stderr = process.stderr.read()  # until the process ends
    process.wait(timeout=120)
    assert json.loads(first)["id"] == 0
    assert process.returncode == EXIT_BROKEN_PIPE, stderr.decode()
    assert b"Traceback" not in stderr
    assert b"Exception ignored" not in stderr
