"""Resuming ``embed --output`` only with the settings the output was made with.

The settings that decide the vectors are recorded in ``<output>.meta.json`` before the first
line; a rerun with another model, endpoint, backend or query mode is refused, naming the
difference, with nothing sent and the output left as it was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aimlapi_bge.cli import EXIT_OK, EXIT_USAGE, main
from support.helpers import expected
from support.standin import StandInServer


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIMLAPI_API_KEY", "standin-key")


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return code, out, err


def corpus(tmp_path: Path, count: int = 6) -> tuple[Path, list[str]]:
    texts = [f"passage number {i}" for i in range(count)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path, texts


def meta(output: Path) -> dict[str, Any]:
    recorded: dict[str, Any] = json.loads(
        output.with_name(output.name + ".meta.json").read_text(encoding="utf-8")
    )
    return recorded


def half_done(
    tmp_path: Path, server: StandInServer, capsys: pytest.CaptureFixture[str], *flags: str
) -> tuple[Path, Path, bytes]:
    """An output holding the first 3 of 6 vectors, as an interrupted run leaves it."""
    source, _ = corpus(tmp_path)
    output = tmp_path / "vectors.jsonl"
    code, _, err = run(
        capsys, "embed", "-i", source, "-o", output, "--base-url", server.url, *flags
    )
    assert code == EXIT_OK, err
    lines = output.read_bytes().splitlines(keepends=True)
    output.write_bytes(b"".join(lines[:3]))
    server.reset()
    return source, output, output.read_bytes()


def test_settings_are_recorded_next_to_the_output(
    tmp_path: Path, standin: StandInServer, keyed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    source, _ = corpus(tmp_path)
    output = tmp_path / "vectors.jsonl"
    code, _, err = run(capsys, "embed", "-i", source, "-o", output, "--base-url", standin.url)
    assert code == EXIT_OK, err
    recorded = meta(output)
    assert recorded["settings"] == {
        "model": "BAAI/bge-base-en-v1.5",
        "backend": "api",
        "base_url": standin.url,
        "local_model_path": None,
        "mode": "documents",
    }
    assert recorded["written_by"].startswith("aimlapi-bge ")
    assert "standin-key" not in json.dumps(recorded)
    # The output itself stays plain JSONL: every line is a vector.
    assert all("embedding" in json.loads(line) for line in output.read_text().splitlines())


@pytest.mark.parametrize(
    ("first", "second", "difference"),
    [
        ([], ["--query"], "no --query (documents) then, --query (queries) now"),
        (["--queries"], [], "--query (queries) then, no --query (documents) now"),
        ([], ["--model", "other-model"], "--model BAAI/bge-base-en-v1.5 then, --model other-model now"),
    ],
)  # fmt: skip
def test_resuming_with_other_settings_is_refused(
    tmp_path: Path,
    keyed: None,
    capsys: pytest.CaptureFixture[str],
    first: list[str],
    second: list[str],
    difference: str,
) -> None:
    with StandInServer(models=("BAAI/bge-base-en-v1.5", "other-model")) as server:
        source, output, before = half_done(tmp_path, server, capsys, *first)
        code, _, err = run(
            capsys, "embed", "-i", source, "-o", output, "--base-url", server.url, *second
        )
        assert code == EXIT_USAGE
        assert f"{output} was written with other settings" in err
        assert difference in err
        assert "cannot be mixed" in err
        assert "Rerun the same command" not in err
        assert server.embedding_requests == []
    assert output.read_bytes() == before


def test_resuming_against_another_endpoint_is_refused(
    tmp_path: Path, keyed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with StandInServer() as first, StandInServer() as second:
        source, output, before = half_done(tmp_path, first, capsys)
        code, _, err = run(capsys, "embed", "-i", source, "-o", output, "--base-url", second.url)
        assert code == EXIT_USAGE
        assert f"--base-url {first.url} then, --base-url {second.url} now" in err
        assert second.embedding_requests == []
    assert output.read_bytes() == before


def test_resuming_with_another_backend_is_refused(
    tmp_path: Path,
    standin: StandInServer,
    keyed: None,
    tiny_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source, output, before = half_done(tmp_path, standin, capsys)
    code, _, err = run(
        capsys, "embed", "-i", source, "-o", output,
        "--backend", "local", "--local-model-path", tiny_model_dir,
    )  # fmt: skip
    assert code == EXIT_USAGE
    assert "--backend api then, --backend local now" in err
    assert f"--base-url {standin.url} then, no --base-url now" in err
    assert output.read_bytes() == before


def test_resuming_with_the_same_settings_still_works(
    tmp_path: Path, standin: StandInServer, keyed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    source, output, _ = half_done(tmp_path, standin, capsys, "--query")
    code, _, err = run(
        capsys, "embed", "-i", source, "-o", output, "--base-url", standin.url, "--query"
    )
    assert code == EXIT_OK, err
    assert "warning" not in err
    assert len(standin.inputs_seen) == 3  # only the missing half was sent


def test_an_output_without_metadata_resumes_with_a_warning_and_is_then_recorded(
    tmp_path: Path, standin: StandInServer, keyed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    source, texts = corpus(tmp_path)
    output = tmp_path / "vectors.jsonl"
    # What an older aimlapi-bge left: vectors, no metadata.
    output.write_text(
        "".join(
            json.dumps({"id": i, "embedding": vector}) + "\n"
            for i, vector in enumerate(expected(texts[:2]))
        ),
        encoding="utf-8",
    )
    code, _, err = run(capsys, "embed", "-i", source, "-o", output, "--base-url", standin.url)
    assert code == EXIT_OK, err
    assert "warning:" in err and "holds vectors but no vectors.jsonl.meta.json" in err
    assert "only with the flags it was started with" in err
    assert sorted(standin.inputs_seen) == sorted(texts[2:])
    assert meta(output)["settings"]["mode"] == "documents"
    # From now on it is checked like any other output.
    code, _, err = run(
        capsys, "embed", "-i", source, "-o", output, "--base-url", standin.url, "--query"
    )
    assert code == EXIT_USAGE
    assert "no --query (documents) then, --query (queries) now" in err


def test_stale_metadata_of_an_empty_output_is_replaced(
    tmp_path: Path, standin: StandInServer, keyed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    source, _ = corpus(tmp_path)
    output = tmp_path / "vectors.jsonl"
    output.with_name("vectors.jsonl.meta.json").write_text(
        json.dumps({"format": 1, "settings": {"model": "old", "mode": "queries"}}),
        encoding="utf-8",
    )  # the output itself was deleted: nothing to mix with
    code, _, err = run(capsys, "embed", "-i", source, "-o", output, "--base-url", standin.url)
    assert code == EXIT_OK, err
    assert meta(output)["settings"]["model"] == "BAAI/bge-base-en-v1.5"


def test_unreadable_metadata_is_refused(
    tmp_path: Path, standin: StandInServer, keyed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    source, output, before = half_done(tmp_path, standin, capsys)
    output.with_name("vectors.jsonl.meta.json").write_text("{not json", encoding="utf-8")
    code, _, err = run(capsys, "embed", "-i", source, "-o", output, "--base-url", standin.url)
    assert code == EXIT_USAGE
    assert "vectors.jsonl.meta.json is not aimlapi-bge metadata" in err
    assert standin.embedding_requests == []
    assert output.read_bytes() == before
