"""``aimlapi-bge check`` gives up after its own deadline, whatever the server does.

The servers here misbehave on purpose: one holds the connection and never answers, one
drip-feeds its answer a byte at a time, one answers 429 forever. Each test asserts the exit code
and the message a user sees; the only time limit is a generous guard that the run ended at all.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from aimlapi_bge.cli import EXIT_FAILED, EXIT_OK, main
from support.standin import StandInServer

GUARD = 60.0
"""Seconds a run may take before the test calls it hung (the deadlines tested are 1 s)."""


class MisbehavingServer:
    """A TCP server on 127.0.0.1 that accepts connections and answers as ``behaviour`` says.

    ``"hang"``: reads the request, then holds the socket without a byte of answer.
    ``"drip"``: sends a 200 head promising a large body, then one byte every 0.2 s, forever.
    """

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.stopped = threading.Event()
        self.connections: list[socket.socket] = []
        self.requests = 0
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/v1"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> MisbehavingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.listener.close()
        for connection in self.connections:
            connection.close()  # releases a client thread the CLI abandoned

    def _serve(self) -> None:
        self.listener.settimeout(0.1)
        while not self.stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections.append(connection)
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        try:
            connection.recv(65536)  # the request (small enough for one read)
            self.requests += 1
            if self.behaviour == "drip":
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: 100000\r\n\r\n{"
                )
                while not self.stopped.wait(0.2):
                    connection.sendall(b" ")
            else:
                self.stopped.wait()
        except OSError:
            pass


def run_guarded(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``main(args)`` in a thread; fails the test if it has not returned within GUARD."""
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(main(list(args))), daemon=True)
    thread.start()
    thread.join(GUARD)
    assert not thread.is_alive(), f"check did not return within {GUARD} s"
    out, err = capsys.readouterr()
    return result[0], out, err


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AIMLAPI_API_KEY", "standin-key")
    yield


def test_a_server_that_never_answers_is_given_up_on_and_the_process_exits() -> None:
    """A real process: the abandoned request must not keep it alive either."""
    with MisbehavingServer("hang") as server:
        env = {**os.environ, "AIMLAPI_API_KEY": "standin-key", "AIMLAPI_BASE_URL": server.url}
        result = subprocess.run(
            [sys.executable, "-m", "aimlapi_bge.cli", "check", "--timeout", "1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=GUARD,
        )
        assert server.requests == 1
    assert result.returncode == EXIT_FAILED, result.stderr
    assert (
        f"check gave up after 1 s (--timeout 1), still waiting for an answer from {server.url}"
        " to POST /embeddings" in result.stderr
    )
    assert "model served:     unknown" in result.stdout
    assert "Traceback" not in result.stderr


def test_a_drip_fed_answer_is_given_up_on(keyed: None, capsys: pytest.CaptureFixture[str]) -> None:
    # Every byte arrives well within the per-read timeout: only the overall deadline stops it.
    with MisbehavingServer("drip") as server:
        code, out, err = run_guarded(capsys, "check", "--base-url", server.url, "--timeout", "1")
    assert code == EXIT_FAILED
    assert "check gave up after 1 s (--timeout 1), still waiting for an answer from" in err
    assert "OK" not in out


def test_429_with_a_long_retry_after_is_given_up_on_and_says_so(
    keyed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Retry-After: 30 would make the client sleep 30 s before its next attempt.
    with StandInServer(retry_after=30) as server:
        server.inject(*([429] * 10))
        code, _, err = run_guarded(capsys, "check", "--base-url", server.url, "--timeout", "1")
        assert len(server.embedding_requests) == 1
    assert code == EXIT_FAILED
    assert "check gave up after 1 s (--timeout 1)" in err
    assert "429 Too Many Requests 1 time(s)" in err


def test_429_forever_ends_with_the_servers_reason_within_the_deadline(
    keyed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with StandInServer(retry_after=0.01) as server:
        server.inject(*([429] * 50))
        code, _, err = run_guarded(
            capsys, "check", "--base-url", server.url, "--timeout", "30", "--max-retries", "9"
        )
        # Retries are capped for check (2), whatever --max-retries says: 3 attempts in all.
        assert len(server.embedding_requests) == 3
    assert code == EXIT_FAILED
    assert "check gave up after" in err
    assert "Still rate limited after every retry" in err
    assert "`max_concurrency`" not in err and "--max-concurrency" in err  # CLI wording
    assert "Traceback" not in err


def test_a_healthy_server_passes_within_the_deadline(
    standin: StandInServer, keyed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_guarded(capsys, "check", "--base-url", standin.url, "--timeout", "30")
    assert code == EXIT_OK, err
    assert out.rstrip().endswith("OK")
    assert "timeout:          30" in out  # the deadline is also each attempt's timeout


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_check_timeout_must_be_a_positive_number(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "--timeout", value])
    assert exit_info.value.code == 2
    assert "--timeout" in capsys.readouterr().err


def test_check_help_documents_its_own_deadline(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    out: Any = capsys.readouterr().out
    assert "give up after SECONDS in all" in out
    assert "(default: 15)" in out
    # embed keeps the per-request meaning of --timeout.
    with pytest.raises(SystemExit):
        main(["embed", "--help"])
    assert "seconds per request attempt" in capsys.readouterr().out.lower()
