"""The corpus job's recorded settings and stream reading, without any request."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from aimlapi_bge import Embedder, resolve_config
from aimlapi_bge.corpus import CorpusError, CorpusJob, meta_path, read_records, read_stream


def embedder() -> Embedder:
    return Embedder(resolve_config(base_url="http://127.0.0.1:9/v1", api_key="k"))


def test_a_library_user_resuming_an_unrecorded_output_gets_a_warning(tmp_path: Path) -> None:
    source = tmp_path / "corpus.txt"
    source.write_text("a\nb\n", encoding="utf-8")
    output = tmp_path / "vectors.jsonl"
    output.write_text('{"id": 0, "embedding": [1.0]}\n{"id": 1, "embedding": [0.5]}\n')
    job = CorpusJob(embedder(), source, output, show_progress=False)
    with pytest.warns(UserWarning, match="holds vectors but no vectors.jsonl.meta.json"):
        job.run()  # every id is there already: nothing to send
    assert job.unrecorded and job.skipped == 2 and job.written == 0
    settings = json.loads(meta_path(output).read_text())["settings"]
    assert settings["base_url"] == "http://127.0.0.1:9/v1"


def test_an_unreadable_input_is_a_corpus_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"--input .*missing\.txt: cannot read it"):
        list(read_records(tmp_path / "missing.txt"))


@pytest.mark.parametrize(
    ("data", "records"),
    [
        ('\n{"id": "x", "text": "t"}\n', [("x", "t")]),  # JSONL: the first non-blank line
        ('{"id": "x"}\nplain\n', [(0, '{"id": "x"}'), (1, "plain")]),  # no "text": lines
        ("one\r\ntwo", [(0, "one"), (1, "two")]),
        ("", []),
    ],
)
def test_standard_input_format_is_detected_from_its_first_line(
    data: str, records: list[tuple[object, str]]
) -> None:
    found = [(r.id, r.text) for r in read_stream(io.StringIO(data, newline=None))]
    assert found == records


def test_the_input_format_can_be_forced_for_a_stream() -> None:
    line = '{"id": "x", "text": "t"}\n'
    assert [r.text for r in read_stream(io.StringIO(line), "text")] == [line.rstrip("\n")]
