"""The ``aimlapi-bge`` command line against the stand-in server.

Most tests call :func:`aimlapi_bge.cli.main` in-process; the resume test and the missing-key
test run real processes (the module and the installed console script).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from aimlapi_bge import BGE_QUERY_INSTRUCTION
from aimlapi_bge.cli import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_MODEL,
    EXIT_OK,
    EXIT_USAGE,
    main,
)
from support.helpers import expected
from support.standin import StandInServer


@pytest.fixture
def env_for(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Point the environment at a stand-in, as a user would with AIMLAPI_BASE_URL."""

    def point(server: StandInServer) -> None:
        monkeypatch.setenv("AIMLAPI_BASE_URL", server.url)
        monkeypatch.setenv("AIMLAPI_API_KEY", server.api_key or "")

    return point


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return code, out, err


def read_vectors(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def expected_vector(text: str) -> list[float]:
    return expected([text])[0]


# --- embed: arguments --------------------------------------------------------------------


def test_embed_texts_prints_a_json_list_of_vectors(
    standin: StandInServer, env_for: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    env_for(standin)
    code, out, err = run(capsys, "embed", "Laura is a DJ.", "Paris is in France.")
    assert code == EXIT_OK, err
    vectors = json.loads(out)
    assert vectors == [expected_vector("Laura is a DJ."), expected_vector("Paris is in France.")]
    assert standin.inputs_seen == ["Laura is a DJ.", "Paris is in France."]


def test_query_flag_adds_the_query_instruction(
    standin: StandInServer, env_for: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    env_for(standin)
    code, out, _ = run(capsys, "embed", "--query", "who is Laura?")
    assert code == EXIT_OK
    assert standin.inputs_seen == [BGE_QUERY_INSTRUCTION + "who is Laura?"]
    assert json.loads(out) == [expected_vector(BGE_QUERY_INSTRUCTION + "who is Laura?")]


def test_shared_options_reach_the_server(
    standin: StandInServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    standin.settings.models = ("my-model",)
    monkeypatch.setenv("AIMLAPI_API_KEY", standin.api_key or "")
    texts = [f"text {i}" for i in range(5)]
    code, _, err = run(
        capsys, "embed", "--base-url", standin.url, "--model", "my-model", "--batch-size", "2",
        *texts,
    )  # fmt: skip
    assert code == EXIT_OK, err
    assert sorted(len(r.body["input"]) for r in standin.embedding_requests) == [1, 2, 2]
    assert {r.body["model"] for r in standin.embedding_requests} == {"my-model"}


# --- embed: files ------------------------------------------------------------------------


def test_text_file_ids_are_line_numbers(
    tmp_path: Path, standin: StandInServer, env_for: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    env_for(standin)
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"first line\r\n\nthird line\n")
    output = tmp_path / "vectors.jsonl"
    code, out, err = run(capsys, "embed", "--input", corpus, "--output", output)
    assert code == EXIT_OK, err
    assert out == ""  # results go to the file, messages to stderr
    rows = read_vectors(output)
    assert [row["id"] for row in rows] == [0, 1, 2]
    # The empty line is a text too, sent as " " (the core's empty-text policy).
    texts = ["first line", " ", "third line"]
    assert [row["embedding"] for row in rows] == [expected_vector(t) for t in texts]
    assert sorted(standin.inputs_seen) == sorted(texts)
    assert "3/3" in err  # the progress bar finished
    assert "3 of 3 texts are in" in err


def test_jsonl_file_keeps_its_ids(
    tmp_path: Path, standin: StandInServer, env_for: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    env_for(standin)
    corpus = tmp_path / "corpus.jsonl"
    records = [{"id": "doc-a", "text": "alpha"}, {"id": 7, "text": "beta", "extra": 1}]
    corpus.write_text("\n".join(json.dumps(r) for r in records) + "\n\n", encoding="utf-8")
    output = tmp_path / "out.jsonl"
    code, _, err = run(capsys, "embed", "-i", corpus, "-o", output, "--no-progress")
    assert code == EXIT_OK, err
    assert read_vectors(output) == [
        {"id": "doc-a", "embedding": expected_vector("alpha")},
        {"id": 7, "embedding": expected_vector("beta")},
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": 1, "text": "ok"}\n{"id": 2, "text": \n', "corpus.jsonl:2: not valid JSON"),
        ('{"id": 1, "text": "ok"}\n{"text": "no id"}\n', 'corpus.jsonl:2: expected an object with "id"'),
        ('{"id": 1, "text": "a"}\n{"id": 1, "text": "b"}\n', "the id 1 appears twice"),
        ('{"id": [1], "text": "a"}\n', '"id" must be a string or an integer'),
    ],
)  # fmt: skip
def test_bad_input_files_fail_before_any_request(
    tmp_path: Path,
    standin: StandInServer,
    env_for: Any,
    capsys: pytest.CaptureFixture[str],
    content: str,
    message: str,
) -> None:
    env_for(standin)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(content, encoding="utf-8")
    code, _, err = run(capsys, "embed", "-i", corpus, "-o", tmp_path / "out.jsonl")
    assert code == EXIT_USAGE
    assert message in err
    assert standin.embedding_requests == []
    assert "Traceback" not in err


def _corpus(tmp_path: Path, count: int) -> tuple[Path, list[str]]:
    texts = [f"passage {i} about subject {i % 13} and detail {i * 7}" for i in range(count)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path, texts


def test_rerun_cuts_a_truncated_last_line_and_embeds_only_what_is_missing(
    tmp_path: Path, standin: StandInServer, env_for: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    env_for(standin)
    corpus, texts = _corpus(tmp_path, 40)
    clean = tmp_path / "clean.jsonl"
    assert run(capsys, "embed", "-i", corpus, "-o", clean, "--batch-size", "4")[0] == EXIT_OK
    # What a run killed in the middle of a write leaves: 10 whole lines and half a line.
    lines = clean.read_bytes().splitlines(keepends=True)
    output = tmp_path / "out.jsonl"
    output.write_bytes(b"".join(lines[:10]) + lines[10][: len(lines[10]) // 2])
    standin.reset()

    code, _, err = run(capsys, "embed", "-i", corpus, "-o", output, "--batch-size", "4")
    assert code == EXIT_OK, err
    assert "dropped an incomplete last line" in err
    rows = read_vectors(output)
    assert sorted(row["id"] for row in rows) == list(range(40))  # each id exactly once
    assert {row["id"]: row["embedding"] for row in rows} == {
        row["id"]: row["embedding"] for row in read_vectors(clean)
    }
    done = {json.loads(line)["id"] for line in lines[:10]}
    assert sorted(standin.inputs_seen) == sorted(t for i, t in enumerate(texts) if i not in done)


def test_rerun_of_a_finished_file_sends_nothing(
    tmp_path: Path, standin: StandInServer, env_for: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    env_for(standin)
    corpus, _ = _corpus(tmp_path, 5)
    output = tmp_path / "out.jsonl"
    assert run(capsys, "embed", "-i", corpus, "-o", output)[0] == EXIT_OK
    before = output.read_bytes()
    standin.reset()
    code, _, err = run(capsys, "embed", "-i", corpus, "-o", output)
    assert code == EXIT_OK
    assert standin.embedding_requests == []
    assert output.read_bytes() == before
    assert "0 written by this run, 5 already there" in err


def test_an_output_file_that_is_not_ours_is_left_alone(
    tmp_path: Path, standin: StandInServer, env_for: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    env_for(standin)
    corpus, _ = _corpus(tmp_path, 3)
    output = tmp_path / "notes.jsonl"
    output.write_text('{"title": "my notes"}\n', encoding="utf-8")
    code, _, err = run(capsys, "embed", "-i", corpus, "-o", output)
    assert code == EXIT_USAGE
    assert "not an embedding line" in err
    assert output.read_text(encoding="utf-8") == '{"title": "my notes"}\n'
    assert standin.embedding_requests == []


def test_a_rejected_text_fails_alone_and_the_rest_is_kept(
    tmp_path: Path, env_for: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with StandInServer(max_tokens=20) as server:
        env_for(server)
        corpus = tmp_path / "corpus.txt"
        long_text = " ".join(["word"] * 40)
        corpus.write_text(f"short one\n{long_text}\nshort two\nshort three\n", encoding="utf-8")
        output = tmp_path / "out.jsonl"
        code, _, err = run(capsys, "embed", "-i", corpus, "-o", output, "--no-progress")
        assert code == EXIT_FAILED
        assert "failed ids: 1." in err
        assert "Rerun the same command to resume" in err
        assert sorted(row["id"] for row in read_vectors(output)) == [0, 2, 3]


def test_a_server_failure_exits_1_without_a_traceback(
    tmp_path: Path, standin: StandInServer, env_for: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    env_for(standin)
    standin.inject(503)
    code, out, err = run(capsys, "embed", "--max-retries", "0", "hello")
    assert code == EXIT_FAILED
    assert out == ""
    assert "503" in err
    assert "Traceback" not in err


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
@pytest.mark.parametrize("stop", ["SIGKILL", "SIGINT"])
def test_resume_after_the_process_is_stopped(
    stop: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], env_for: Any
) -> None:
    """Kill (or Ctrl-C) a real run mid-file, rerun: every id once, same vectors as a clean run."""
    corpus, texts = _corpus(tmp_path, 320)
    output = tmp_path / "vectors.jsonl"
    options = ["--batch-size", "8", "--max-concurrency", "2", "--no-progress"]
    with StandInServer(latency=0.02, slow_seconds=1.5) as server:
        # The first 6 requests (3 written groups of 16) answer at once; later ones hang for 1.5 s,
        # so the run is surely still going when the signal is sent, however loaded the machine.
        server.inject(*([None] * 6), *(["slow"] * 34))  # type: ignore[arg-type]
        env = {
            **os.environ,
            "AIMLAPI_BASE_URL": server.url,
            "AIMLAPI_API_KEY": server.api_key or "",
        }
        command = [sys.executable, "-m", "aimlapi_bge.cli", "embed", "-i", str(corpus)]
        command += ["-o", str(output), *options]
        with (tmp_path / "stderr.txt").open("w") as stderr:
            process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and process.poll() is None:
                if output.exists() and output.read_bytes().count(b"\n") >= 48:
                    break
                time.sleep(0.005)
            process.send_signal(getattr(signal, stop))
            process.wait(timeout=60)
        messages = (tmp_path / "stderr.txt").read_text()
        if stop == "SIGKILL":
            assert process.returncode == -signal.SIGKILL, messages
        else:
            assert process.returncode == EXIT_INTERRUPTED, messages
            assert "interrupted" in messages and "Rerun the same command to resume" in messages
            assert "Traceback" not in messages
            assert output.read_bytes().endswith(b"\n")  # Ctrl-C never leaves half a line
        complete = output.read_bytes().rsplit(b"\n", 1)[0].splitlines()
        done = {json.loads(line)["id"] for line in complete}
        assert 48 <= len(done) < len(texts)
        server.reset()  # no more slow answers

        env_for(server)  # the rerun (in-process, to keep the test fast) resumes the same file
        code, _, err = run(capsys, "embed", "-i", corpus, "-o", output, *options)
        assert code == EXIT_OK, err
        # It asked only for what the stopped run had not written.
        assert sorted(server.inputs_seen) == sorted(t for i, t in enumerate(texts) if i not in done)
        clean = tmp_path / "clean.jsonl"
        assert run(capsys, "embed", "-i", corpus, "-o", clean, *options)[0] == EXIT_OK

    rows = read_vectors(output)
    assert sorted(row["id"] for row in rows) == list(range(len(texts)))
    assert {row["id"]: row["embedding"] for row in rows} == {
        row["id"]: row["embedding"] for row in read_vectors(clean)
    }


# --- check -------------------------------------------------------------------------------


def test_check_on_a_served_model(
    standin: StandInServer, env_for: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    env_for(standin)
    code, out, err = run(capsys, "check")
    assert code == EXIT_OK, err
    assert "model served:     yes" in out
    assert "dimension:        768" in out
    assert "latency:" in out and " ms" in out
    assert "api_key:          set" in out
    assert "prompt tokens:    7" in out  # the published example's count
    assert "credits used:     1" in out
    assert standin.inputs_seen == ["Laura is a DJ."]
    assert standin.api_key not in out + err


def test_check_on_a_refused_model_explains_the_deprecation(
    env_for: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with StandInServer(models=("other",)) as server:
        env_for(server)
        code, out, err = run(capsys, "check")
    assert code == EXIT_MODEL
    assert "model served:     no" in out
    assert "deprecated" in err
    assert "backend='local'" not in err  # the command line's wording, not Python's
    assert "--backend local" in err
    assert "Traceback" not in err


def test_check_with_a_refused_key(
    standin: StandInServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIMLAPI_BASE_URL", standin.url)
    monkeypatch.setenv("AIMLAPI_API_KEY", "wrong-key-123")
    code, out, err = run(capsys, "check")
    assert code == EXIT_CONFIG
    assert "AIMLAPI_API_KEY" in err
    assert "wrong-key-123" not in out + err


def test_check_on_the_local_backend(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "check", "--backend", "local", "--local-model-path", tiny_model_dir
    )
    assert code == EXIT_OK, err
    assert "backend:          local" in out
    assert "dimension:        16" in out


def test_missing_key_for_the_aimlapi_is_a_clear_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "embed", "hello")
    assert code == EXIT_CONFIG
    assert "No API key for the AI/ML API: set AIMLAPI_API_KEY" in err
    assert out == ""


def test_console_script_reports_a_missing_key_without_a_traceback() -> None:
    script = Path(sys.executable).with_name("aimlapi-bge")
    if not script.exists():
        pytest.skip("the console script is installed by `pip install -e .` (make test does it)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIMLAPI", "AIML_"))}
    result = subprocess.run(
        [str(script), "check"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == EXIT_CONFIG
    assert "AIMLAPI_API_KEY" in result.stderr
    assert "Traceback" not in result.stderr


# --- usage errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["embed"], "give TEXT arguments, or --input FILE --output FILE"),
        (["embed", "--batch-size", "0", "x"], "--batch-size: must be at least 1, got 0"),
        (["embed", "--timeout", "soon", "x"], "--timeout: not a number: 'soon'"),
        (["embed", "--timeout", "nan", "x"], "--timeout: not a number: 'nan'"),
        (["embed", "--max-concurrency", "2.5", "x"], "--max-concurrency: not an integer: '2.5'"),
        (["embed", "--backend", "cloud", "x"], "invalid choice: 'cloud'"),
        (["embed", "--output", "out.jsonl", "x"], "--output needs --input"),
        (["embed", "--input", "missing.txt", "--output", "o.jsonl"], "no such file"),
    ],
)
def test_bad_arguments_exit_2_with_usage(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    _, err = capsys.readouterr()
    assert exit_info.value.code == EXIT_USAGE
    assert "usage: aimlapi-bge" in err
    assert message in err


def test_input_and_texts_together_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus, _ = _corpus(tmp_path, 1)
    with pytest.raises(SystemExit) as exit_info:
        main(["embed", "x", "--input", str(corpus), "--output", str(tmp_path / "o.jsonl")])
    assert exit_info.value.code == EXIT_USAGE
    assert "not both" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["embed"], ["check"]])
def test_every_command_has_help_with_exit_codes(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert f"usage: aimlapi-bge {' '.join(command)}".rstrip() in out
    assert "exit codes:" in out
    assert "AIMLAPI_API_KEY" in out


def test_local_backend_without_model_files_is_a_configuration_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "embed", "--backend", "local", "--local-model-path", tmp_path, "x")
    assert code == EXIT_CONFIG
    assert "tokenizer.json" in err
    assert out == ""
