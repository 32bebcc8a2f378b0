"""The local backend: BAAI/bge-base-en-v1.5 in-process on ONNX Runtime.

Same vectors as the service: BAAI's own full-precision export (``onnx/model.onnx`` in the
``BAAI/bge-base-en-v1.5`` Hugging Face repository, about 436 MB), the [CLS] row of the last
hidden state, L2-normalised, texts truncated at the tokenizer's ``model_max_length`` (512 for
bge). fastembed's built-in ``"BAAI/bge-base-en-v1.5"`` entry is a different file (Qdrant's
quantised ``model_optimized.onnx``, about 218 MB) whose vectors differ slightly, so this module
fetches BAAI's file itself (through fastembed's Hugging Face helper) and runs it with its own
ONNX Runtime session.

Where the files come from, in order:

1. ``local_model_path``: a directory holding ``onnx/model.onnx`` (or ``model.onnx``),
   ``tokenizer.json`` and ``tokenizer_config.json`` (plus ``special_tokens_map.json`` and
   ``config.json`` when the model has them); nothing is downloaded.
2. the cache directory (``cache_dir``, env ``AIMLAPI_BGE_CACHE_DIR``, else
   :func:`default_cache_dir`: ``$HF_HOME/hub`` when ``HF_HOME`` is set, else the user cache
   directory, e.g. ``~/.cache/aimlapi-bge`` on Linux), in Hugging Face's cache layout; works
   offline once filled.
3. one download attempt from Hugging Face into that cache (not with ``HF_HUB_OFFLINE=1``).
   fastembed's own loader would retry three times with 3 s, 9 s and 27 s pauses before its
   generic error; one attempt and :class:`~aimlapi_bge.errors.LocalModelUnavailableError`
   naming the ways out is kinder to someone who is offline.

How a call runs (issue 14): the texts of the whole call are tokenised once (fastembed's
tokenizer settings: truncation at ``model_max_length``), sorted by token count, and cut into
ONNX runs of at most :data:`BATCH_TOKENS` padded tokens and :data:`MAX_BATCH_TEXTS` texts, a
run ending early where the next text would pad the run's shorter texts by more than
:data:`PADDING_PER_RUN` tokens in all (so ten short queries never ride along with a 130-token
passage); one ONNX run at a time, with ONNX Runtime's intra-op threads set to the machine's
cores. The token counts for usage come from that same encoding.
Vectors go back in input order.

``local_precision="int8"`` runs a dynamically quantised copy of the graph
(``onnxruntime.quantization.quantize_dynamic``, int8 weights): several times faster on CPUs,
vectors close to but not equal to fp32's. The copy is made once, beside the model
(``onnx/model.int8-<fingerprint>.onnx``), or in the cache directory when the model's directory
is read-only, and reused afterwards.

The model loads on first use, once per process for each model file and precision (instances
share it).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from aimlapi_bge.extras import install_hint

try:
    import onnxruntime as ort
    import platformdirs
    from fastembed import TextEmbedding
    from fastembed.common.preprocessor_utils import load_tokenizer
    from huggingface_hub.utils.tqdm import are_progress_bars_disabled, enable_progress_bars
except ImportError as exc:
    raise ImportError(
        f"The local backend needs fastembed (ONNX Runtime): {install_hint('local')}"
    ) from exc

from aimlapi_bge.config import EmbedderConfig
from aimlapi_bge.decoding import BatchResult
from aimlapi_bge.errors import ConfigurationError, LocalModelUnavailableError

__all__ = [
    "BATCH_TOKENS",
    "HF_REPO",
    "MAX_BATCH_TEXTS",
    "MODEL_FILE",
    "LocalBackend",
    "default_cache_dir",
    "find_cached_model",
    "quantised_model",
]

HF_REPO = "BAAI/bge-base-en-v1.5"
MODEL_FILE = "onnx/model.onnx"
DIMENSION = 768
#: Padded tokens per ONNX run at most (texts x longest text of the run, after the global
#: sort). Measured on bge-base's architecture (docs/local-backend-performance.md), the cost
#: per token does not fall past a few hundred tokens a run and rises for wide runs of long
#: texts, while memory grows with the run; 2048 holds four 512-token texts.
BATCH_TOKENS = 2048
#: Texts per ONNX run at most (short queries would otherwise make very wide batches).
MAX_BATCH_TEXTS = 256
#: Padding tokens a run may carry in all. Past that, one more run (about 12 ms of fixed cost
#: on 2 cores, the time of ~13 tokens) costs less than the padding.
PADDING_PER_RUN = 32
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
#: The model files accepted, in order of preference (root-level for optimum exports).
MODEL_FILES = (MODEL_FILE, "model.onnx")
PRECISIONS = ("fp32", "int8")
_BGE_BASE = re.compile(r"(^|/)bge-base-en-v1\.5$", re.IGNORECASE)
_OFF = {"", "0", "false", "no", "off"}
_APP_NAME = "aimlapi-bge"

_load_lock = threading.Lock()

Progress = Callable[[int], object]


def default_cache_dir() -> str:
    """Where model files are cached when neither ``cache_dir`` nor ``AIMLAPI_BGE_CACHE_DIR`` is set.

    ``$HF_HOME/hub`` (Hugging Face's own cache, shared with other tools) when ``HF_HOME`` is set,
    else the user cache directory (``platformdirs.user_cache_dir("aimlapi-bge")``, e.g.
    ``~/.cache/aimlapi-bge`` on Linux): persistent, unlike the temp directory.
    """
    hf_home = os.environ.get("HF_HOME", "").strip()
    if hf_home:
        return os.path.join(os.path.expanduser(hf_home), "hub")
    return str(platformdirs.user_cache_dir(_APP_NAME, appauthor=False))


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _missing(directory: Path, model_files: tuple[str, ...]) -> list[str]:
    missing = [name for name in TOKENIZER_FILES if not (directory / name).is_file()]
    if not any((directory / name).is_file() for name in model_files):
        missing.insert(0, " or ".join(model_files))
    return missing


def _fetch(cache_dir: str, *, local_files_only: bool) -> Path:
    """fastembed's single-attempt Hugging Face fetch (cache only, or one download)."""
    bars_were_disabled = are_progress_bars_disabled()
    try:
        path = TextEmbedding.download_files_from_huggingface(
            HF_REPO,
            cache_dir=cache_dir,
            extra_patterns=[MODEL_FILE],
            local_files_only=local_files_only,
        )
    finally:
        if not bars_were_disabled and are_progress_bars_disabled():
            enable_progress_bars()  # fastembed turns them off for cache lookups
    return Path(path)


def find_cached_model(cache_dir: str | None = None) -> Path | None:
    """The cached snapshot directory of BAAI/bge-base-en-v1.5's full-precision files, if complete.

    Looks in ``cache_dir`` (default: :func:`default_cache_dir`) without touching the network.
    """
    directory = cache_dir or default_cache_dir()
    if not Path(directory).is_dir():
        return None
    try:
        path = _fetch(directory, local_files_only=True)
    except Exception:  # fastembed/huggingface_hub raise several types for "not cached"
        return None
    return None if _missing(path, (MODEL_FILE,)) else path


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in _OFF


# --- int8 ----------------------------------------------------------------------------------------


def _fingerprint(model_path: Path) -> str:
    stat = model_path.stat()
    key = f"{model_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _writable(directory: Path) -> bool:
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-"):
            return True
    except OSError:
        return False


def quantised_model(model_path: Path, cache_dir: str) -> Path:
    """The int8 copy of ``model_path`` (dynamic quantisation), made once and reused.

    Kept beside the model as ``<stem>.int8-<fingerprint>.onnx``, or under
    ``<cache_dir>/int8/`` when the model's directory is read-only. The fingerprint covers the
    fp32 file's path, size and modification time, so a changed model gets a fresh copy.
    """
    fingerprint = _fingerprint(model_path)
    name = f"{model_path.stem}.int8-{fingerprint}.onnx"
    candidates = [model_path.parent / name, Path(cache_dir) / "int8" / name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:  # onnxruntime.quantization needs the onnx package
        raise ConfigurationError(
            "local_precision='int8' needs the onnx package: pip install 'aimlapi-bge[local]'"
        ) from exc
    target = candidates[0] if _writable(model_path.parent) else candidates[1]
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        quantize_dynamic(str(model_path), str(partial), weight_type=QuantType.QInt8)
        os.replace(partial, target)  # atomic: another process sees the whole file or none
    finally:
        partial.unlink(missing_ok=True)
    return target


# --- the model -------------------------------------------------------------------------------


def _session(model_path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = _cores()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(
        str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def _batches(order: list[int], lengths: list[int]) -> Iterator[list[int]]:
    """Cut ``order`` (positions sorted by token count) into ONNX runs.

    A run ends before the text that would take it over :data:`BATCH_TOKENS` padded tokens or
    :data:`MAX_BATCH_TEXTS` texts, or that would pad its shorter texts by more than
    :data:`PADDING_PER_RUN` tokens in all (one more run is cheaper than that much padding).
    """
    batch: list[int] = []
    tokens = 0  # real tokens in ``batch``
    for position in order:
        width = lengths[position]  # the longest so far: the list is sorted
        count = len(batch) + 1
        if batch and (
            count * width > BATCH_TOKENS
            or count > MAX_BATCH_TEXTS
            or count * width - tokens - width > PADDING_PER_RUN
        ):
            yield batch
            batch, tokens = [], 0
        batch.append(position)
        tokens += width
    if batch:
        yield batch


class _LoadedModel:
    """One ONNX Runtime session, its tokenizer, and the lock that serialises its runs."""

    def __init__(self, directory: Path, model_path: Path) -> None:
        tokenizer, _ = load_tokenizer(directory)  # fastembed's settings: truncation, pad token
        padding: dict[str, Any] = tokenizer.padding or {}
        self.pad_id = int(padding.get("pad_id", 0))
        tokenizer.no_padding()  # padding is done per batch, after the global sort
        self.tokenizer = tokenizer
        self.session = _session(model_path)
        self.inputs = {node.name for node in self.session.get_inputs()}
        self.output = self.session.get_outputs()[0].name
        self.lock = threading.Lock()

    def _run(self, rows: list[list[int]]) -> np.ndarray:
        width = max(len(row) for row in rows)
        input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for index, row in enumerate(rows):
            input_ids[index, : len(row)] = row
            mask[index, : len(row)] = 1
        feed = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        with self.lock:
            hidden = self.session.run([self.output], feed)[0]
        cls = np.asarray(hidden[:, 0], dtype=np.float32)
        norms = np.maximum(np.linalg.norm(cls, axis=1, keepdims=True), 1e-12)
        normalised: np.ndarray = cls / norms
        return normalised

    def embed(
        self, texts: list[str], on_progress: Progress | None = None
    ) -> tuple[np.ndarray, list[int]]:
        """Vectors in input order (one row per text) and each text's token count.

        Tokenised once; sorted by token count across all of ``texts``; cut into runs by
        :func:`_batches`; one ONNX run at a time.
        """
        rows = [encoding.ids for encoding in self.tokenizer.encode_batch(texts)]
        lengths = [len(row) for row in rows]
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        vectors: np.ndarray | None = None
        for batch in _batches(order, lengths):
            result = self._run([rows[position] for position in batch])
            if vectors is None:
                vectors = np.empty((len(texts), result.shape[1]), dtype=np.float32)
            vectors[batch] = result
            if on_progress is not None:
                on_progress(len(batch))
        if vectors is None:
            vectors = np.empty((0, DIMENSION), dtype=np.float32)
        return vectors, lengths


_loaded: weakref.WeakValueDictionary[tuple[str, str, str], _LoadedModel] = (
    weakref.WeakValueDictionary()
)


def _load(directory: Path, model_file: str, precision: str, cache_dir: str) -> _LoadedModel:
    key = (str(directory.resolve()), model_file, precision)
    with _load_lock:
        loaded = _loaded.get(key)
        if loaded is None:
            model_path = directory / model_file
            if precision == "int8":
                try:
                    model_path = quantised_model(model_path, cache_dir)
                except ConfigurationError:
                    raise
                except Exception as exc:
                    raise LocalModelUnavailableError(
                        f"Could not make the int8 copy of {directory / model_file} ({exc})."
                    ) from exc
            try:
                loaded = _LoadedModel(directory, model_path)
            except Exception as exc:
                raise LocalModelUnavailableError(
                    f"Could not load the ONNX model and tokenizer in {directory} ({exc})."
                ) from exc
            _loaded[key] = loaded
        return loaded


class LocalBackend:
    """Embeds texts in-process with BAAI/bge-base-en-v1.5 (or ``local_model_path``).

    Construction only checks the settings; the model loads on the first call. Vectors are
    the [CLS] token's last hidden state, L2-normalised; usage counts the tokens the model saw
    and no credits. Safe to call from several threads and event loops at once.

    :meth:`embed_all` takes a whole call (the :class:`~aimlapi_bge.Embedder` hands it every
    distinct text at once); :meth:`embed_batch` embeds one batch the same way.
    """

    name = "local"

    def __init__(self, config: EmbedderConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._model: _LoadedModel | None = None
        self._directory: Path | None = None
        self._model_file = MODEL_FILE
        self.precision = config.local_precision
        self.cache_dir = config.cache_dir or default_cache_dir()
        if config.local_model_path:
            self._directory = Path(config.local_model_path).expanduser()
            self._model_file = self._check_directory(self._directory)
        elif not _BGE_BASE.search(config.model):
            raise ConfigurationError(
                f"The local backend downloads BAAI/bge-base-en-v1.5 only, not {config.model!r}:"
                " pass local_model_path= with the ONNX export of your model."
            )

    @staticmethod
    def _check_directory(directory: Path) -> str:
        missing = _missing(directory, MODEL_FILES)
        if missing:
            raise LocalModelUnavailableError(
                f"local_model_path={str(directory)!r} lacks {', '.join(missing)}. It must hold"
                f" the model as {MODEL_FILE} (or model.onnx) with its tokenizer files, as in"
                f" https://huggingface.co/{HF_REPO}."
            )
        return next(name for name in MODEL_FILES if (directory / name).is_file())

    def _resolve(self) -> Path:
        """Where the model files are: ``local_model_path``, the cache, or a fresh download."""
        if self._directory is not None:
            return self._directory
        cached = find_cached_model(self.cache_dir)
        if cached is not None:
            return cached
        if _offline():
            cause = "HF_HUB_OFFLINE is set, so nothing was downloaded"
        else:
            try:
                Path(self.cache_dir).mkdir(parents=True, exist_ok=True)
                path = _fetch(self.cache_dir, local_files_only=False)
            except Exception as exc:
                cause = f"the download from Hugging Face failed: {type(exc).__name__}: {exc}"
            else:
                missing = _missing(path, (MODEL_FILE,))
                if not missing:
                    return path
                cause = f"the download left {path} without {', '.join(missing)}"
        raise LocalModelUnavailableError(
            f"The local backend needs {HF_REPO}'s full-precision files ({MODEL_FILE}, about"
            f" 436 MB, and the tokenizer files): they are not in cache_dir={self.cache_dir!r} and"
            f" {cause}. Run once with access to huggingface.co to fill the cache (set cache_dir="
            " or AIMLAPI_BGE_CACHE_DIR to keep it somewhere persistent), or copy the files"
            f" (`hf download {HF_REPO} {MODEL_FILE} tokenizer.json tokenizer_config.json"
            " special_tokens_map.json config.json --local-dir DIR`) and pass"
            " local_model_path=DIR."
        )

    def _loaded(self) -> _LoadedModel:
        with self._lock:
            if self._model is None:
                self._model = _load(
                    self._resolve(), self._model_file, self.precision, self.cache_dir
                )
            return self._model

    def embed_all(
        self, texts: list[str], batch_size: int, on_progress: Progress | None = None
    ) -> list[tuple[int, int, BatchResult]]:
        """Embed a whole call at once; the results come back as ``(start, end, result)`` for
        consecutive slices of ``batch_size`` texts in input order (one usage "request" each).

        ``on_progress(n)`` is called after each ONNX run with the number of texts it embedded.
        """
        array, lengths = self._loaded().embed(texts, on_progress)
        results = []
        for start in range(0, len(texts), batch_size):
            end = min(len(texts), start + batch_size)
            result = BatchResult(
                array[start:end].tolist(),
                prompt_tokens=sum(lengths[start:end]),
                credits_used=0.0,
            )
            results.append((start, end, result))
        return results

    def embed_batch(self, texts: list[str]) -> BatchResult:
        """Embed one batch in-process (loading the model on first use)."""
        array, lengths = self._loaded().embed(texts)
        return BatchResult(array.tolist(), prompt_tokens=sum(lengths), credits_used=0.0)

    async def aembed_batch(self, texts: list[str]) -> BatchResult:
        """Embed one batch in a worker thread, leaving the event loop free."""
        return await asyncio.to_thread(self.embed_batch, texts)

    def close(self) -> None:
        """Let go of the model (freed when no other instance uses it; reloads on demand)."""
        with self._lock:
            self._model = None
