"""The examples run as they are: the RAG demo (``make demo``) and the two quickstarts."""

from __future__ import annotations

import json
import os
import re
import runpy
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from support.examples import load_example
from support.standin import StandInServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXPECTED_TOP = {
    "What volcano buried Pompeii and Herculaneum?": "vesuvius",
    "How do honeybees tell hive mates where flowers are?": "honeybees",
    "How did Fleming discover penicillin?": "penicillin",
    "What causes ocean tides?": "tides",
}


def load_demo() -> ModuleType:
    return load_example("rag_demo.py", "rag_demo")


def top_passages(output: str) -> dict[str, tuple[str, str]]:
    """Question -> (LangChain's top id, LlamaIndex's top id), parsed from the demo's output."""
    found = re.findall(
        r"Q\d+\. (.+)\n\s+LangChain  retriever: ([\w-]+).*\n\s+LlamaIndex retriever: ([\w-]+)",
        output,
    )
    return {question: (lc, li) for question, lc, li in found}


def corpus_texts() -> list[str]:
    lines = (EXAMPLES / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines]


def test_corpus_ships_distinct_passages() -> None:
    rows = [json.loads(line) for line in (EXAMPLES / "corpus.jsonl").read_text().splitlines()]
    assert 15 <= len(rows) <= 30
    assert len({row["id"] for row in rows}) == len(rows)
    assert set(EXPECTED_TOP.values()) <= {row["id"] for row in rows}


def test_demo_in_api_mode_answers_with_the_right_passages(tmp_path: Path) -> None:
    """`make demo` as a user runs it: a separate process, key and endpoint from the environment."""
    with StandInServer() as server:
        env = {
            **os.environ,
            "AIMLAPI_BASE_URL": server.url,
            "AIMLAPI_API_KEY": server.api_key or "",
            "ANONYMIZED_TELEMETRY": "False",
        }
        result = subprocess.run(
            [sys.executable, str(EXAMPLES / "rag_demo.py"), "--store", str(tmp_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert f"API backend: {server.url} with the key from the environment" in result.stdout
        tops = top_passages(result.stdout)
        assert tops == {question: (top, top) for question, top in EXPECTED_TOP.items()}
        assert "Top passage: Mount Vesuvius erupted in 79 AD" in result.stdout
        # LlamaIndex's pipeline embedded every passage once into Chroma; LangChain only
        # embedded its questions. Usage says what each cost.
        assert sorted(set(server.inputs_seen) & set(corpus_texts())) == sorted(corpus_texts())
        assert f"Chroma (embedded, {tmp_path / 'chroma'})" in result.stdout
        assert "embedded 20 new or changed passages" in result.stdout
        assert re.search(
            r"Usage, LangChain embeddings : \d+ requests, 4 texts, \d+ tokens, [1-9]",
            result.stdout,
        )
        assert re.search(r"Usage, LlamaIndex embeddings: \d+ requests, 24 texts", result.stdout)
        assert "Backend used: api" in result.stdout

        # `make demo` again: the embedded store and the docstore persisted, so only the
        # questions are embedded, and the answers are the same.
        server.reset()
        again = subprocess.run(
            [sys.executable, str(EXAMPLES / "rag_demo.py"), "--store", str(tmp_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert again.returncode == 0, again.stderr
        assert not set(server.inputs_seen) & set(corpus_texts())
        assert "embedded 0 new or changed passages: -" in again.stdout
        assert "skipped 20 unchanged passages" in again.stdout
        assert top_passages(again.stdout) == tops
        assert re.search(r"Usage, LlamaIndex embeddings: \d+ requests, 4 texts", again.stdout)


def test_demo_accepts_base_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with StandInServer() as server:
        monkeypatch.setenv("AIMLAPI_API_KEY", server.api_key or "")
        assert load_demo().main(["--base-url", server.url, "--store", str(tmp_path)]) == 0
        assert server.embedding_requests
    out = capsys.readouterr().out
    assert top_passages(out) == {question: (top, top) for question, top in EXPECTED_TOP.items()}


def test_demo_switches_to_local_when_the_api_refuses_the_model(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    with StandInServer(models=("other",)) as server:
        monkeypatch.setenv("AIMLAPI_API_KEY", server.api_key or "")
        args = ["--base-url", server.url, "--local-model-path", str(tiny_model_dir)]
        code = load_demo().main([*args, "--store", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "deprecated" in err and "Switching this instance to the local backend" in err
    assert "Backend used: local" in out
    assert len(top_passages(out)) == len(EXPECTED_TOP)


def test_demo_without_a_key_runs_the_local_backend(
    capsys: pytest.CaptureFixture[str], tiny_model_dir: Path, tmp_path: Path
) -> None:
    args = ["--local-model-path", str(tiny_model_dir), "--store", str(tmp_path)]
    assert load_demo().main(args) == 0
    out = capsys.readouterr().out
    assert "local backend (no AIMLAPI_API_KEY set)" in out
    assert "Backend used: local" in out
    assert len(top_passages(out)) == len(EXPECTED_TOP)  # the tiny model ranks arbitrarily
    assert re.search(
        r"Usage, LlamaIndex embeddings: \d+ requests, 24 texts, \d+ tokens, 0 credits", out
    )


def test_demo_without_a_key_says_the_model_is_downloaded() -> None:
    demo = load_demo()
    _, description = demo.choose_backend(demo.parse_args([]))
    assert "local backend (no AIMLAPI_API_KEY set)" in description
    assert "the first run downloads it (about 440 MB) from Hugging Face" in description


@pytest.mark.parametrize(
    ("script", "first_hit"),
    [
        ("langchain_quickstart.py", "Laura is a DJ who plays records at a night club."),
        ("llama_index_quickstart.py", "Paris is the capital of France, on the river Seine."),
    ],
)
def test_quickstarts_run_as_they_are(
    script: str,
    first_hit: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from llama_index.core import Settings

    # The LlamaIndex quickstart sets the global Settings.embed_model: restore it afterwards.
    monkeypatch.setattr(Settings, "_embed_model", Settings._embed_model)
    with StandInServer() as server:
        monkeypatch.setenv("AIMLAPI_BASE_URL", server.url)
        monkeypatch.setenv("AIMLAPI_API_KEY", server.api_key or "")
        runpy.run_path(str(EXAMPLES / script), run_name="__main__")
        assert server.embedding_requests
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(first_hit)
    assert "prompt_tokens=" in lines[-1]


# --- how a failed run ends: the user's real problem, in one paragraph, last ----------------

PYTHON_KEYWORDS = ("api_key=", "base_url=", "cache_dir=", "local_model_path=", "backend=")


def ending(err: str) -> str:
    """The demo's closing paragraph, checked to be the last thing it printed."""
    assert "Traceback" not in err
    last = err.strip().split("\n\n")[-1]
    assert last.startswith("rag_demo: error: ") and "\n" not in last
    assert not any(keyword in last for keyword in PYTHON_KEYWORDS), last
    assert "make standin" in last and "AIMLAPI_BASE_URL=http://127.0.0.1:8765/v1" in last
    return last


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_demo_without_model_files_ends_naming_the_cache_and_the_no_download_route(
    tmp_path: Path,
) -> None:
    """No key, no cached model, no downloads: a separate process, as `make demo` runs it."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIMLAPI_", "AIML_API"))
    }
    env.update(
        HF_HUB_OFFLINE="1",
        ANONYMIZED_TELEMETRY="False",
        AIMLAPI_BGE_CACHE_DIR=str(tmp_path / "empty-cache"),
        FASTEMBED_CACHE_PATH=str(tmp_path / "empty-cache"),
    )
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "rag_demo.py"), "--store", str(tmp_path / "store")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    last = ending(result.stderr)
    assert "The local model's files (BAAI/bge-base-en-v1.5" in last
    assert str(tmp_path / "empty-cache") in last
    assert "--cache-dir or AIMLAPI_BGE_CACHE_DIR" in last and "HF_HUB_OFFLINE is set" in last
    assert "--local-model-path DIR" in last and "set AIMLAPI_API_KEY" in last


def test_demo_with_a_refused_key_ends_naming_the_key_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with StandInServer(api_key="the-right-key") as server:
        url = server.url
        monkeypatch.setenv("AIMLAPI_BASE_URL", url)
        monkeypatch.setenv("AIMLAPI_API_KEY", "sk-wrong-Z9q")
        assert load_demo().main(["--store", str(tmp_path), "--max-retries", "0"]) == 1
    out, err = capsys.readouterr()
    last = ending(err)
    assert last.startswith(f"rag_demo: error: The API at {url} refused the key")
    assert "check the key in AIMLAPI_API_KEY" in last
    assert "sk-wrong-Z9q" not in out + err
    assert "switched to the local model" not in err  # a refused key is not a reason to fall back


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        ("unreachable", "could not be reached or kept failing: check the network and"),
        ("retired", "does not serve BAAI/bge-base-en-v1.5"),
    ],
)
def test_demo_whose_api_and_local_fallback_both_fail_ends_with_both_problems(
    problem: str,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = ["--store", str(tmp_path / "store"), "--cache-dir", str(tmp_path / "empty-cache")]
    with StandInServer(models=("other-model",)) as server:
        url = server.url if problem == "retired" else f"http://127.0.0.1:{closed_port()}/v1"
        monkeypatch.setenv("AIMLAPI_BASE_URL", url)
        monkeypatch.setenv("AIMLAPI_API_KEY", server.api_key or "")
        assert load_demo().main([*args, "--max-retries", "0"]) == 1
    last = ending(capsys.readouterr().err)
    assert last.startswith(f"rag_demo: error: The API at {url} {expected}")
    assert "switched to the local model, which is not available either" in last
    assert f"not in {tmp_path / 'empty-cache'} (--cache-dir or AIMLAPI_BGE_CACHE_DIR)" in last
    if problem == "retired":
        assert "retired" in last
    else:
        assert "AIMLAPI_BASE_URL (or --base-url)" in last


def test_demo_with_an_incomplete_model_directory_ends_naming_the_flag_and_the_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "tokenizer.json").write_text("{}")
    args = ["--store", str(tmp_path / "store"), "--local-model-path", str(tmp_path / "model")]
    assert load_demo().main(args) == 1
    last = ending(capsys.readouterr().err)
    assert last.startswith(
        f"rag_demo: error: The local model cannot be used: --local-model-path"
        f" '{tmp_path / 'model'}' lacks onnx/model.onnx or model.onnx, tokenizer_config.json."
    )


def test_demo_against_a_server_wanting_a_key_ends_asking_for_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with StandInServer() as server:
        url = server.url
        monkeypatch.setenv("AIMLAPI_BASE_URL", url)
        assert load_demo().main(["--store", str(tmp_path), "--max-retries", "0"]) == 1
    last = ending(capsys.readouterr().err)
    assert last.startswith(f"rag_demo: error: The API at {url} needs a key")
    assert "set AIMLAPI_API_KEY." in last
