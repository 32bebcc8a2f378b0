"""Corpus files in, vector files out: the resumable job behind ``aimlapi-bge embed --input``.

Input is a text file (one text per line; the id is the 0-based line number) or JSONL (one
object per line with ``id`` and ``text``). Output is JSONL, one ``{"id": ..., "embedding":
[...]}`` line per text. Texts are embedded in groups of ``batch_size × max_concurrency`` (one
:meth:`~aimlapi_bge.Embedder.embed` call each, so every request slot is busy), and each finished
group is appended and flushed at once: a killed run loses at most the groups in flight.

A rerun resumes: it reads the ids already in the output, cuts off a truncated last line left by
a killed run, and embeds only the texts whose ids are missing, so no vector is written twice.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

from tqdm.auto import tqdm

from aimlapi_bge.embedder import Embedder
from aimlapi_bge.errors import AIMLAPIError

__all__ = ["CorpusError", "CorpusJob", "Record", "RecordId", "detect_format", "read_records"]

RecordId = int | str
InputFormat = Literal["auto", "text", "jsonl"]
_JSONL_SUFFIXES = (".jsonl", ".ndjson")


@contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold SIGINT back (POSIX, main thread) until the block is done."""
    can_block = hasattr(signal, "pthread_sigmask") and (
        threading.current_thread() is threading.main_thread()
    )
    if not can_block:
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class CorpusError(ValueError):
    """An input or output file the job cannot use; the message says which line and why."""


@dataclass(frozen=True)
class Record:
    """One text to embed and the id its vector is written under."""

    id: RecordId
    text: str


def detect_format(path: str | Path, input_format: InputFormat = "auto") -> Literal["text", "jsonl"]:
    """``"jsonl"`` for ``.jsonl``/``.ndjson`` files (or when asked), else ``"text"``."""
    if input_format != "auto":
        return input_format
    return "jsonl" if Path(path).suffix.lower() in _JSONL_SUFFIXES else "text"


def _valid_id(value: object) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _jsonl_record(line: str, number: int, path: Path) -> Record:
    try:
        item = json.loads(line)
    except ValueError as exc:
        raise CorpusError(f"{path}:{number}: not valid JSON ({exc}).") from exc
    if not isinstance(item, dict) or "id" not in item or "text" not in item:
        raise CorpusError(f'{path}:{number}: expected an object with "id" and "text".')
    if not _valid_id(item["id"]):
        raise CorpusError(f'{path}:{number}: "id" must be a string or an integer.')
    if not isinstance(item["text"], str):
        raise CorpusError(f'{path}:{number}: "text" must be a string.')
    return Record(item["id"], item["text"])


def read_records(path: str | Path, input_format: InputFormat = "auto") -> Iterator[Record]:
    """Yield the records of a corpus file, in file order.

    Text files are split on ``\\n`` only (a trailing ``\\r`` is dropped), so ids match
    ``wc -l`` line numbers; empty lines are texts too (embedded as the empty text). Blank
    lines in JSONL are skipped.

    Raises:
        CorpusError: the file is not UTF-8, or a JSONL line is malformed.
        OSError: the file cannot be read.
    """
    path = Path(path)
    jsonl = detect_format(path, input_format) == "jsonl"
    number = 0
    try:
        with path.open(encoding="utf-8", newline="\n") as handle:
            for number, raw in enumerate(handle, start=1):
                line = raw.removesuffix("\n").removesuffix("\r")
                if not jsonl:
                    yield Record(number - 1, line)
                elif line.strip():
                    yield _jsonl_record(line, number, path)
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path}:{number + 1}: not UTF-8 text ({exc.reason}).") from exc


class VectorFile:
    """An output JSONL file opened for appending, knowing which ids it already holds."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.ids: set[RecordId] = set()
        self.dimension: int | None = None
        self.dropped_tail = False
        self._scan()
        self._handle: TextIO = self.path.open("a", encoding="utf-8", newline="\n")

    def _scan(self) -> None:
        """Collect the ids of complete lines; cut off a truncated last line."""
        if not self.path.exists():
            return
        good_end = 0
        with self.path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.endswith(b"\n"):
                    break  # the unfinished last write of a killed run
                good_end += len(raw)
                if raw.strip():
                    self._add_line(raw, number)
            size = handle.seek(0, os.SEEK_END)
        if good_end < size:
            os.truncate(self.path, good_end)
            self.dropped_tail = True

    def _add_line(self, raw: bytes, number: int) -> None:
        try:
            item = json.loads(raw)
            record_id, vector = item["id"], item["embedding"]
        except (ValueError, TypeError, KeyError) as exc:
            raise CorpusError(
                f"{self.path}:{number}: not an embedding line; is this the output of another"
                " program? Choose another --output."
            ) from exc
        if not _valid_id(record_id) or not isinstance(vector, list):
            raise CorpusError(f"{self.path}:{number}: not an embedding line.")
        self.ids.add(record_id)
        if self.dimension is None:
            self.dimension = len(vector)

    def write(self, records: list[tuple[RecordId, list[float]]]) -> None:
        """Append one line per record in a single write, and flush it to the file."""
        if not records:
            return
        dimension = len(records[0][1])
        if self.dimension is not None and dimension != self.dimension:
            raise CorpusError(
                f"{self.path} holds {self.dimension}-dimensional vectors but this model gives"
                f" {dimension}: vectors of different models cannot be mixed; choose another"
                " --output."
            )
        self.dimension = dimension
        lines = "".join(
            json.dumps({"id": record_id, "embedding": vector}, separators=(",", ":")) + "\n"
            for record_id, vector in records
        )
        with _sigint_deferred():  # Ctrl-C lands after the write: never half a line
            self._handle.write(lines)
            self._handle.flush()
        self.ids.update(record_id for record_id, _ in records)

    def close(self) -> None:
        self._handle.close()


class CorpusJob:
    """Embed a corpus file into a JSONL vector file, resuming what an earlier run left.

    After :meth:`run` (or after it raised), the counters say what happened: ``total`` texts in
    the input, ``skipped`` (already in the output), ``written`` by this run, ``failed_ids`` of
    the group that failed, ``dropped_tail`` (a truncated line was cut off) and ``foreign``
    (ids in the output that are not in the input).
    """

    def __init__(
        self,
        embedder: Embedder,
        input_path: str | Path,
        output_path: str | Path,
        *,
        input_format: InputFormat = "auto",
        query: bool = False,
        show_progress: bool = True,
    ) -> None:
        self.embedder = embedder
        self.input_path = Path(input_path)
        self.output_path = Path(output_path)
        self.input_format = input_format
        self.query = query
        self.show_progress = show_progress
        self.total = 0
        self.skipped = 0
        self.written = 0
        self.foreign = 0
        self.dropped_tail = False
        self.failed_ids: list[RecordId] = []

    def _check_input(self) -> set[RecordId]:
        """Read the whole input once before any request: count it, reject duplicate ids."""
        ids: set[RecordId] = set()
        for record in read_records(self.input_path, self.input_format):
            if record.id in ids:
                raise CorpusError(f"{self.input_path}: the id {record.id!r} appears twice.")
            ids.add(record.id)
        return ids

    def _groups(self, done: set[RecordId]) -> Iterator[list[Record]]:
        group: list[Record] = []
        for record in read_records(self.input_path, self.input_format):
            if record.id in done:
                continue
            group.append(record)
            if len(group) >= self.embedder.batch_size * self.embedder.config.max_concurrency:
                yield group
                group = []
        if group:
            yield group

    def run(self) -> None:
        """Embed every text whose id is not in the output yet.

        Raises:
            CorpusError: unusable input or output file (nothing is sent).
            AIMLAPIError: a group failed; its finished vectors were written first and
                ``failed_ids`` names the rest.
        """
        if self.output_path.exists() and self.input_path.resolve() == self.output_path.resolve():
            raise CorpusError("--output must not be the input file.")
        input_ids = self._check_input()
        self.total = len(input_ids)
        output = VectorFile(self.output_path)
        self.dropped_tail = output.dropped_tail
        done = output.ids & input_ids
        self.skipped = len(done)
        self.foreign = len(output.ids - input_ids)
        progress = tqdm(
            total=self.total,
            initial=self.skipped,
            unit="text",
            desc="Embedding",
            disable=not self.show_progress,
        )
        try:
            for group in self._groups(done):
                self._embed_group(group, output)
                progress.update(len(group))
        finally:
            progress.close()
            output.close()

    def _embed_group(self, group: list[Record], output: VectorFile) -> None:
        texts = [record.text for record in group]
        try:
            vectors: list[list[float] | None] = list(
                self.embedder.embed(texts, as_queries=self.query)
            )
        except AIMLAPIError as error:
            if error.embeddings is None:
                self.failed_ids = [record.id for record in group]
                raise
            vectors = error.embeddings
            self.failed_ids = [r.id for r, v in zip(group, vectors, strict=True) if v is None]
            self._write(group, vectors, output)
            raise
        self._write(group, vectors, output)

    def _write(
        self, group: list[Record], vectors: list[list[float] | None], output: VectorFile
    ) -> None:
        finished = [(r.id, v) for r, v in zip(group, vectors, strict=True) if v is not None]
        output.write(finished)
        self.written += len(finished)
