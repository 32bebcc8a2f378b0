"""Ray Data integration: embed a dataset's text column on every actor of a Ray cluster.

Each actor of ``Dataset.map_batches(BGEEmbedBatches, ...)`` builds one
:class:`~aimlapi_bge.Embedder` and hands it each batch's texts, so batching, bounded concurrency,
retries and error handling are the core's. Actors do not coordinate: the cluster keeps at most
``concurrency × max_concurrency`` requests in flight, and each actor's adaptive limit reacts
only to the 429s it sees itself.

``ray`` is imported only by the functions that need it (``pip install 'aimlapi-bge[ray]'``).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import inspect
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from aimlapi_bge.config import EmbedderConfig, resolve_config
from aimlapi_bge.embedder import Embedder
from aimlapi_bge.usage import Usage

if TYPE_CHECKING:
    import ray.data

__all__ = ["USAGE_COLUMNS", "BGEEmbedBatches", "skip_written", "total_usage", "written_ids"]

#: The columns ``usage_columns=True`` adds (one per :class:`~aimlapi_bge.Usage` field).
USAGE_COLUMNS: Mapping[str, str] = {
    field.name: f"usage_{field.name}" for field in dataclasses.fields(Usage)
}

_OWN_ARGS = ("text_column", "output_column", "as_queries", "usage_columns", "base_urls")
_SETTINGS = (
    {name for name in inspect.signature(resolve_config).parameters if name not in ("environ",)}
    | {field.name for field in dataclasses.fields(EmbedderConfig)}
) - {"settings", "key_note"}


def _check_settings(settings: Mapping[str, Any]) -> None:
    """Raise TypeError naming a keyword the core does not know (with the closest match)."""
    for name in settings:
        if name not in _SETTINGS:
            close = difflib.get_close_matches(name, sorted(_SETTINGS | set(_OWN_ARGS)), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(
                f"BGEEmbedBatches got an unknown setting {name!r}{hint}. Settings: "
                + ", ".join(sorted(_SETTINGS | set(_OWN_ARGS)))
            )


class BGEEmbedBatches:
    """Adds an embedding column to Ray Data batches; a callable class for ``map_batches``.

    Setup:
        .. code-block:: bash

            pip install "aimlapi-bge[ray]"
            export AIMLAPI_API_KEY="your-key"   # on every node, or pass api_key=SecretStr(...)

    Key init args:
        text_column: str
            The column holding the texts. Default ``"text"``.
        output_column: str
            The column the vectors go into (float32, one row each). Default ``"embedding"``.
        as_queries: bool
            Embed the texts as search queries (with the query instruction). Default False.
        usage_columns: bool
            Add ``usage_requests``, ``usage_texts``, ``usage_prompt_tokens``,
            ``usage_credits_used`` and ``usage_rate_limited``: each batch's usage on its
            first row, zeros on the others, so the column sums are the run's totals (see
            :func:`total_usage`). Default False.
        base_urls: Optional[Sequence[str]]
            Several endpoints (self-hosted replicas): actors take them in turn, one each.
        **settings:
            Anything :func:`~aimlapi_bge.resolve_config` accepts: ``api_key``, ``base_url``,
            ``batch_size``, ``max_concurrency``, ``max_retries``, ``timeout``, ``backend``,
            ``local_model_path``, ... An unknown name fails the actor with a TypeError.

    Instantiate:
        .. code-block:: python

            import ray
            from aimlapi_bge.ray import BGEEmbedBatches

            ds = ray.data.read_json("corpus.jsonl")  # rows {"id", "text"}
            ds = ds.map_batches(
                BGEEmbedBatches,
                fn_constructor_kwargs={"batch_size": 64, "max_concurrency": 4},
                concurrency=4,  # actors: at most 4 x 4 = 16 requests in flight
                batch_size=512,
            )
            ds.write_parquet("vectors/")  # id, text, embedding

    The API key is resolved inside each actor (``AIMLAPI_API_KEY`` in its environment, or an
    ``api_key`` argument, best given as a ``pydantic.SecretStr``); it never appears in this
    object's repr. A batch that still fails after the core's retries raises its
    :class:`~aimlapi_bge.AIMLAPIError`, which fails the Ray task.
    """

    def __init__(
        self,
        *,
        text_column: str = "text",
        output_column: str = "embedding",
        as_queries: bool = False,
        usage_columns: bool = False,
        base_urls: Sequence[str] | None = None,
        **settings: Any,
    ) -> None:
        _check_settings(settings)
        if base_urls is not None:
            if isinstance(base_urls, str) or not base_urls:
                raise TypeError("base_urls must be a non-empty list of URLs")
            if "base_url" in settings:
                raise TypeError("give base_url or base_urls, not both")
            settings = {**settings, "base_url": _pick_base_url(list(base_urls))}
        if isinstance(settings.get("api_key"), str):
            settings["api_key"] = SecretStr(settings["api_key"])
        self.text_column = text_column
        self.output_column = output_column
        self.as_queries = as_queries
        self.usage_columns = usage_columns
        self.embedder = Embedder(resolve_config(**settings))
        self._lock = threading.Lock()
        self._dimension: int | None = None

    def __repr__(self) -> str:
        config = self.embedder.config
        return (
            f"BGEEmbedBatches(model={config.model!r}, base_url={config.base_url!r},"
            f" backend={self.embedder.backend!r}, text_column={self.text_column!r},"
            f" output_column={self.output_column!r}, as_queries={self.as_queries})"
        )

    def __call__(self, batch: Any) -> Any:
        """Return ``batch`` (a dict of numpy arrays or a pandas DataFrame) with the vectors
        added, row for row."""
        import numpy as np

        if self.text_column not in batch:
            raise KeyError(
                f"The batch has no column {self.text_column!r} (columns: {list(batch.keys())});"
                " set text_column="
            )
        column = batch[self.text_column]
        texts = [str(text) if isinstance(text, str) else text for text in column]
        with self._lock:  # one batch at a time per actor: the in-flight bound and usage hold
            self.embedder.reset_usage()
            try:
                vectors = self.embedder.embed(texts, as_queries=self.as_queries)
            except TypeError as exc:
                raise TypeError(f"{exc} (column {self.text_column!r}{_ids_hint(batch)})") from exc
            usage = self.embedder.reset_usage()
        if vectors:
            array = np.asarray(vectors, dtype=np.float32)
            self._dimension = array.shape[1]
        else:  # an empty batch (a block filtered to nothing): same width as the others
            array = np.empty((0, self._dimension or 0), dtype=np.float32)
        is_frame = hasattr(batch, "iloc")
        if is_frame:
            batch = batch.copy()
            batch[self.output_column] = list(array)
        else:
            batch = dict(batch)
            batch[self.output_column] = array
        if self.usage_columns:
            for name, column_name in USAGE_COLUMNS.items():
                value = getattr(usage, name)
                values = np.zeros(
                    len(texts), dtype=np.float64 if isinstance(value, float) else np.int64
                )
                if len(texts):
                    values[0] = value
                batch[column_name] = values
        return batch


def _ids_hint(batch: Any) -> str:
    if "id" not in batch:
        return ""
    import numpy as np

    ids = [value.item() if isinstance(value, np.generic) else value for value in batch["id"]]
    return f"; this batch holds ids {ids[0]!r} to {ids[-1]!r}" if ids else ""


def _pick_base_url(base_urls: list[str]) -> str:
    """The next of ``base_urls`` in turn for this actor (a counter actor per URL list), or the
    first when not running inside Ray."""
    import ray

    if not ray.is_initialized():
        return base_urls[0]
    name = "aimlapi-bge-base-urls-" + hashlib.sha256("\n".join(base_urls).encode()).hexdigest()[:16]
    counter = _Counter.options(  # type: ignore[attr-defined]
        name=name, get_if_exists=True, num_cpus=0
    ).remote()
    index: int = ray.get(counter.next.remote())
    return base_urls[index % len(base_urls)]


class _CounterImpl:
    def __init__(self) -> None:
        self.value = -1

    def next(self) -> int:
        self.value += 1
        return self.value


class _LazyRemote:
    """``ray.remote(_CounterImpl)``, built on first use so importing this module needs no Ray."""

    _remote: Any = None

    def options(self, **options: Any) -> Any:
        if self._remote is None:
            import ray

            type(self)._remote = ray.remote(_CounterImpl)
        return self._remote.options(**options)


_Counter = _LazyRemote()


def total_usage(dataset: ray.data.Dataset) -> Usage:
    """Sum the usage columns of an embedded dataset (``usage_columns=True``) into a Usage.

    Give it what was written (``ray.data.read_parquet(out)``) or a materialized dataset: a lazy
    dataset would be embedded again to compute the sums.
    """
    sums = dataset.sum(list(USAGE_COLUMNS.values()))
    values = sums if isinstance(sums, Mapping) else {next(iter(USAGE_COLUMNS.values())): sums}
    fields: dict[str, Any] = {}
    for name, column in USAGE_COLUMNS.items():
        value = values.get(f"sum({column})", values.get(column)) or 0
        fields[name] = float(value) if name == "credits_used" else int(value)
    return Usage(**fields)


def written_ids(path: str | Path, id_column: str = "id") -> set[Any]:
    """The ids in the parquet files under ``path`` (an empty set if there are none)."""
    import pyarrow.parquet as pq

    root = Path(path)
    ids: set[Any] = set()
    for file in sorted(root.rglob("*.parquet")) if root.exists() else []:
        ids.update(pq.read_table(file, columns=[id_column]).column(id_column).to_pylist())
    return ids


def skip_written(
    dataset: ray.data.Dataset, path: str | Path, id_column: str = "id"
) -> ray.data.Dataset:
    """``dataset`` without the rows whose id already is in the parquet files under ``path``.

    Resuming after a failed run: embed ``skip_written(ds, out)`` and append to ``out``, and
    every id ends up written exactly once.
    """
    done = written_ids(path, id_column)
    if not done:
        return dataset
    return dataset.map_batches(_DropWritten(done, id_column), batch_format="pyarrow")


class _DropWritten:
    """Filters pyarrow batches down to the rows whose id is not in ``done``."""

    def __init__(self, done: Iterable[Any], column: str) -> None:
        self.done = list(done)
        self.column = column

    def __call__(self, table: Any) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc

        ids = table[self.column]
        written = pa.array(self.done).cast(ids.type)
        return table.filter(pc.invert(pc.is_in(ids, value_set=written)))
