"""Corpus files in, vector files out: the job behind ``aimlapi-bge embed --input``.

Input is a text file (one text per line; the id is the 0-based line number) or JSONL (one
object per line with ``id`` and ``text``). Output is JSONL, one ``{"id": ..., "embedding":
[...]}`` line per text. Texts are embedded in groups of ``batch_size × max_concurrency`` (one
:meth:`~aimlapi_bge.Embedder.embed` call each, so every request slot is busy), and each finished
group is appended and flushed at once: a killed run loses at most the groups in flight.

A rerun resumes (:class:`CorpusJob`): it reads the ids already in the output, cuts off a
truncated last line left by a killed run, and embeds only the texts whose ids are missing, so
no vector is written twice. The settings that decide the vectors (model, backend, endpoint,
documents or queries) are recorded next to the output in ``<output>.meta.json`` before its
first line; a rerun with other settings is refused rather than mixing two kinds of vector.

:class:`StreamJob` is the same without resume, for pipes (``-i - -o -``).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from tqdm.auto import tqdm

from aimlapi_bge import __version__
from aimlapi_bge.embedder import Embedder
from aimlapi_bge.errors import AIMLAPIError

__all__ = [
    "META_SUFFIX",
    "CorpusError",
    "CorpusJob",
    "Record",
    "RecordId",
    "StreamJob",
    "detect_format",
    "meta_path",
    "output_settings",
    "read_records",
]

RecordId = int | str
InputFormat = Literal["auto", "text", "jsonl"]
_JSONL_SUFFIXES = (".jsonl", ".ndjson")
META_SUFFIX = ".meta.json"
META_FORMAT = 1

# The recorded settings, in message order, with the command-line flag that sets each one.
_SETTING_FLAGS = {
    "model": "--model",
    "backend": "--backend",
    "base_url": "--base-url",
    "local_model_path": "--local-model-path",
    "mode": "--query",
    "query_instruction": "query instruction",
}


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


def _looks_like_jsonl(line: str) -> bool:
    """True when ``line`` is a JSON object with ``id`` and ``text`` (a JSONL corpus line)."""
    try:
        item = json.loads(line)
    except ValueError:
        return False
    return isinstance(item, dict) and "id" in item and "text" in item


def _valid_id(value: object) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _jsonl_record(line: str, number: int, name: str) -> Record:
    try:
        item = json.loads(line)
    except ValueError as exc:
        raise CorpusError(f"{name}:{number}: not valid JSON ({exc}).") from exc
    if not isinstance(item, dict) or "id" not in item or "text" not in item:
        raise CorpusError(f'{name}:{number}: expected an object with "id" and "text".')
    if not _valid_id(item["id"]):
        raise CorpusError(f'{name}:{number}: "id" must be a string or an integer.')
    if not isinstance(item["text"], str):
        raise CorpusError(f'{name}:{number}: "text" must be a string.')
    return Record(item["id"], item["text"])


def _parse(lines: Iterable[str], jsonl: bool, name: str) -> Iterator[Record]:
    number = 0
    try:
        for number, raw in enumerate(lines, start=1):
            line = raw.removesuffix("\n").removesuffix("\r")
            if not jsonl:
                yield Record(number - 1, line)
            elif line.strip():
                yield _jsonl_record(line, number, name)
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{name}:{number + 1}: not UTF-8 text ({exc.reason}).") from exc


def read_records(path: str | Path, input_format: InputFormat = "auto") -> Iterator[Record]:
    """Yield the records of a corpus file, in file order.

    Text files are split on ``\\n`` only (a trailing ``\\r`` is dropped), so ids match
    ``wc -l`` line numbers; empty lines are texts too (embedded as the empty text). Blank
    lines in JSONL are skipped.

    Raises:
        CorpusError: the file cannot be opened, is not UTF-8, or a JSONL line is malformed.
    """
    path = Path(path)
    jsonl = detect_format(path, input_format) == "jsonl"
    try:
        handle = path.open(encoding="utf-8", newline="\n")
    except OSError as exc:
        raise CorpusError(f"--input {path}: cannot read it ({exc.strerror or exc}).") from exc
    with handle:
        yield from _parse(handle, jsonl, str(path))


def read_stream(
    stream: TextIO, input_format: InputFormat = "auto", name: str = "<stdin>"
) -> Iterator[Record]:
    """Yield the records of a text stream read once, line by line (standard input).

    ``"auto"`` reads JSONL when the first non-blank line is an object with ``id`` and
    ``text``, plain text otherwise.
    """
    lines = iter(stream)
    peeked: list[str] = []
    jsonl = input_format == "jsonl"
    if input_format == "auto":
        try:
            for line in lines:
                peeked.append(line)
                if line.strip():
                    jsonl = _looks_like_jsonl(line)
                    break
        except UnicodeDecodeError as exc:
            raise CorpusError(f"{name}:{len(peeked) + 1}: not UTF-8 text ({exc.reason}).") from exc

    def chained() -> Iterator[str]:
        yield from peeked
        yield from lines

    yield from _parse(chained(), jsonl, name)


def meta_path(output_path: str | Path) -> Path:
    """Where the settings of ``output_path`` are recorded: ``<output>.meta.json``."""
    path = Path(output_path)
    return path.with_name(path.name + META_SUFFIX)


def output_settings(embedder: Embedder, *, query: bool) -> dict[str, Any]:
    """The settings that decide the vectors an embedder writes (recorded with an output)."""
    config = embedder.config
    local = config.backend == "local"
    settings: dict[str, Any] = {
        "model": config.model,
        "backend": config.backend,
        "base_url": None if local else config.base_url,
        "local_model_path": (
            str(Path(config.local_model_path).expanduser().resolve())
            if local and config.local_model_path
            else None
        ),
        "mode": "queries" if query else "documents",
    }
    if query:
        settings["query_instruction"] = config.query_instruction
    return settings


def _show(name: str, value: object) -> str:
    if name == "mode":
        return "--query (queries)" if value == "queries" else "no --query (documents)"
    flag = _SETTING_FLAGS.get(name, name)
    if value is None:
        return f"no {flag}"
    return f"{flag} {value}" if flag.startswith("--") else f"{flag} {value!r}"


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    names = [*_SETTING_FLAGS, *sorted(set(old) | set(new))]
    differ: list[str] = []
    for name in dict.fromkeys(names):
        if name in ("format", "written_by"):
            continue
        if name == "query_instruction" and old.get("mode") != new.get("mode"):
            continue
        if old.get(name) != new.get(name):
            differ.append(f"{_show(name, old.get(name))} then, {_show(name, new.get(name))} now")
    return differ


class _OutputMeta:
    """The ``<output>.meta.json`` sidecar: read, compare, write atomically."""

    def __init__(self, output_path: Path) -> None:
        self.path = meta_path(output_path)
        self.output_path = output_path

    def read(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CorpusError(f"cannot read {self.path}: {exc.strerror or exc}.") from exc
        try:
            recorded = json.loads(text)
        except ValueError:
            recorded = None
        if not isinstance(recorded, dict) or not isinstance(recorded.get("settings"), dict):
            raise CorpusError(
                f"{self.path} is not aimlapi-bge metadata, so the settings {self.output_path}"
                " was written with are unknown. Choose another --output, or delete the"
                " metadata file to resume with a warning."
            )
        settings: dict[str, Any] = recorded["settings"]
        return settings

    def write(self, settings: dict[str, Any]) -> None:
        record = {"format": META_FORMAT, "written_by": f"aimlapi-bge {__version__}"}
        text = json.dumps({**record, "settings": settings}, indent=2) + "\n"
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with temporary.open("w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise CorpusError(
                f"cannot write {self.path} (the settings record next to --output):"
                f" {exc.strerror or exc}."
            ) from exc


def _open_output(path: Path) -> TextIO:
    """Open ``path`` for appending, or raise a CorpusError saying why it cannot be used."""
    if path.is_dir():
        raise CorpusError(f"--output {path} is a directory; give a file name.")
    parent = path.parent
    if not parent.is_dir():
        raise CorpusError(f"--output {path}: the directory {parent} does not exist.")
    try:
        return path.open("a", encoding="utf-8", newline="\n")
    except OSError as exc:
        reason = "permission denied" if exc.errno in (errno.EACCES, errno.EPERM) else None
        raise CorpusError(
            f"--output {path}: cannot write there ({reason or exc.strerror or exc})."
        ) from exc


class VectorFile:
    """An output JSONL file opened for appending, knowing which ids it already holds."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.ids: set[RecordId] = set()
        self.dimension: int | None = None
        self.dropped_tail = False
        self.created = not self.path.exists()
        self._handle: TextIO = _open_output(self.path)
        try:
            self._scan()
        except BaseException:
            self._handle.close()
            raise

    def _scan(self) -> None:
        """Collect the ids of complete lines; cut off a truncated last line."""
        good_end = 0
        try:
            handle = self.path.open("rb")
        except OSError as exc:
            raise CorpusError(
                f"--output {self.path}: cannot read it back to resume ({exc.strerror or exc})."
            ) from exc
        with handle:
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
        _write_lines(self._handle, records)
        self.ids.update(record_id for record_id, _ in records)

    def close(self) -> None:
        self._handle.close()


def _write_lines(handle: TextIO, records: list[tuple[RecordId, list[float]]]) -> None:
    lines = "".join(
        json.dumps({"id": record_id, "embedding": vector}, separators=(",", ":")) + "\n"
        for record_id, vector in records
    )
    with _sigint_deferred():  # Ctrl-C lands after the write: never half a line
        handle.write(lines)
        handle.flush()


class _Job:
    """What file and stream jobs share: grouping, embedding a group, the counters."""

    def __init__(self, embedder: Embedder, *, query: bool, show_progress: bool) -> None:
        self.embedder = embedder
        self.query = query
        self.show_progress = show_progress
        self.total = 0
        self.skipped = 0
        self.written = 0
        self.failed_ids: list[RecordId] = []

    @property
    def group_size(self) -> int:
        return self.embedder.batch_size * self.embedder.config.max_concurrency

    def _grouped(self, records: Iterable[Record]) -> Iterator[list[Record]]:
        group: list[Record] = []
        for record in records:
            group.append(record)
            if len(group) >= self.group_size:
                yield group
                group = []
        if group:
            yield group

    def _embed_group(self, group: list[Record], write: Any) -> None:
        """Embed ``group``; pass the finished (id, vector) pairs to ``write``, even on failure."""
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
            self._write(group, vectors, write)
            raise
        self._write(group, vectors, write)

    def _write(self, group: list[Record], vectors: list[list[float] | None], write: Any) -> None:
        finished = [(r.id, v) for r, v in zip(group, vectors, strict=True) if v is not None]
        write(finished)
        self.written += len(finished)


class CorpusJob(_Job):
    """Embed a corpus file into a JSONL vector file, resuming what an earlier run left.

    After :meth:`run` (or after it raised), the counters say what happened: ``total`` texts in
    the input, ``skipped`` (already in the output), ``written`` by this run, ``failed_ids`` of
    the group that failed, ``dropped_tail`` (a truncated line was cut off), ``foreign`` (ids in
    the output that are not in the input) and ``unrecorded`` (the output had vectors but no
    metadata: it was adopted with this run's settings, and ``warn`` was called with a message
    saying so; without ``warn``, a :class:`UserWarning` is emitted).
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
        warn: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(embedder, query=query, show_progress=show_progress)
        self.warn = warn
        self.input_path = Path(input_path)
        self.output_path = Path(output_path)
        self.input_format = input_format
        self.foreign = 0
        self.dropped_tail = False
        self.unrecorded = False

    def _check_input(self) -> set[RecordId]:
        """Read the whole input once before any request: count it, reject duplicate ids."""
        ids: set[RecordId] = set()
        for record in read_records(self.input_path, self.input_format):
            if record.id in ids:
                raise CorpusError(f"{self.input_path}: the id {record.id!r} appears twice.")
            ids.add(record.id)
        return ids

    def _check_settings(self, output: VectorFile) -> None:
        """Refuse an output written with other settings; record ours before the first line."""
        meta = _OutputMeta(self.output_path)
        settings = output_settings(self.embedder, query=self.query)
        recorded = meta.read()
        if output.ids and recorded is not None:
            differ = _differences(recorded, settings)
            if differ:
                raise CorpusError(
                    f"{self.output_path} was written with other settings ({meta.path}): "
                    + "; ".join(differ)
                    + ". Vectors made with different settings cannot be mixed: rerun with the"
                    " earlier settings to resume, or choose another --output."
                )
            return
        self.unrecorded = bool(output.ids)
        if recorded != settings:
            meta.write(settings)
        if self.unrecorded:
            shown = ", ".join(
                _show(name, value) for name, value in settings.items() if value is not None
            )
            message = (
                f"{self.output_path} holds vectors but no {meta.path.name} (written by an older"
                " aimlapi-bge), so the settings it was made with cannot be checked: resuming it"
                f" with this run's settings ({shown}), now recorded in {meta.path.name}. Resume"
                " an unrecorded output only with the flags it was started with."
            )
            if self.warn is None:
                warnings.warn(message, UserWarning, stacklevel=3)
            else:
                self.warn(message)

    def run(self) -> None:
        """Embed every text whose id is not in the output yet.

        Raises:
            CorpusError: unusable input or output file, or an output written with other
                settings (nothing is sent).
            AIMLAPIError: a group failed; its finished vectors were written first and
                ``failed_ids`` names the rest.
        """
        if self.output_path.exists() and self.input_path.resolve() == self.output_path.resolve():
            raise CorpusError("--output must not be the input file.")
        input_ids = self._check_input()
        self.total = len(input_ids)
        output = VectorFile(self.output_path)
        try:
            self.dropped_tail = output.dropped_tail
            try:
                self._check_settings(output)
            except CorpusError:
                if output.created:  # leave no empty file behind for nothing
                    output.close()
                    self.output_path.unlink(missing_ok=True)
                raise
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
                records = read_records(self.input_path, self.input_format)
                for group in self._grouped(r for r in records if r.id not in done):
                    self._embed_group(group, output.write)
                    progress.update(len(group))
            finally:
                progress.close()
        finally:
            output.close()


class StreamJob(_Job):
    """Embed records read once from a stream into JSONL written to a stream (no resume).

    Each group is written and flushed as soon as it is embedded; an input error (a malformed
    line, a repeated id) stops the job before that line's group is sent.
    """

    def __init__(
        self,
        embedder: Embedder,
        records: Iterable[Record],
        sink: TextIO,
        *,
        query: bool = False,
        show_progress: bool = True,
        total: int | None = None,
    ) -> None:
        super().__init__(embedder, query=query, show_progress=show_progress)
        self.records = records
        self.sink = sink
        self.expected_total = total

    def _unique(self, name: str) -> Iterator[Record]:
        seen: set[RecordId] = set()
        for record in self.records:
            if record.id in seen:
                raise CorpusError(f"{name}: the id {record.id!r} appears twice.")
            seen.add(record.id)
            self.total += 1
            yield record

    def run(self, name: str = "<stdin>") -> None:
        """Embed every record and write its line; see :meth:`CorpusJob.run` for errors."""
        progress = tqdm(
            total=self.expected_total,
            unit="text",
            desc="Embedding",
            disable=not self.show_progress,
        )
        try:
            for group in self._grouped(self._unique(name)):
                self._embed_group(group, lambda records: _write_lines(self.sink, records))
                progress.update(len(group))
        finally:
            progress.close()
