"""The local backend: BAAI/bge-base-en-v1.5 in-process on ONNX Runtime, through fastembed.

Same vectors as the service: BAAI's own full-precision export (``onnx/model.onnx`` in the
``BAAI/bge-base-en-v1.5`` Hugging Face repository, about 436 MB), the [CLS] row of the last
hidden state, L2-normalised, texts truncated at the tokenizer's ``model_max_length`` (512 for
bge). fastembed's built-in ``"BAAI/bge-base-en-v1.5"`` entry is a different file (Qdrant's
quantised ``model_optimized.onnx``, about 218 MB) whose vectors differ slightly, so this module
registers BAAI's file with fastembed under a name of its own (:data:`REGISTERED_NAME`).

Where the files come from, in order:

1. ``local_model_path``: a directory holding ``onnx/model.onnx`` (or ``model.onnx``),
   ``tokenizer.json`` and ``tokenizer_config.json`` (plus ``special_tokens_map.json`` and
   ``config.json`` when the model has them); nothing is downloaded.
2. the cache directory (``cache_dir``, env ``AIMLAPI_BGE_CACHE_DIR``, else fastembed's default:
   ``FASTEMBED_CACHE_PATH`` or ``<tmp>/fastembed_cache``), in Hugging Face's cache layout;
   works offline once filled.
3. one download attempt from Hugging Face into that cache (not with ``HF_HUB_OFFLINE=1``).
   fastembed's own loader would retry three times with 3 s, 9 s and 27 s pauses before its
   generic error; one attempt and :class:`~aimlapi_bge.errors.LocalModelUnavailableError`
   naming the ways out is kinder to someone who is offline.

The model loads on first use, once per process for each model directory (instances share
it), and its ONNX runs are serialised: ONNX Runtime already spreads one run over every core.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import threading
import weakref
from pathlib import Path

from aimlapi_bge.extras import install_hint

try:
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType
    from huggingface_hub.utils.tqdm import are_progress_bars_disabled, enable_progress_bars
except ImportError as exc:
    raise ImportError(
        f"The local backend needs fastembed (ONNX Runtime): {install_hint('local')}"
    ) from exc

from aimlapi_bge.config import EmbedderConfig
from aimlapi_bge.decoding import BatchResult
from aimlapi_bge.errors import ConfigurationError, LocalModelUnavailableError

__all__ = [
    "HF_REPO",
    "MODEL_FILE",
    "REGISTERED_NAME",
    "LocalBackend",
    "default_cache_dir",
    "find_cached_model",
]

HF_REPO = "BAAI/bge-base-en-v1.5"
MODEL_FILE = "onnx/model.onnx"
REGISTERED_NAME = "aimlapi-bge/BAAI-bge-base-en-v1.5-fp32"
DIMENSION = 768
#: Texts per ONNX run. Each batch is padded to its longest text, so the backend sorts a batch by
#: length and runs it in slices this size: bounded memory, little padding.
ONNX_BATCH = 32
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
# The names fastembed registers for each accepted model file (root-level for optimum exports).
_REGISTERED_NAMES = {
    MODEL_FILE: REGISTERED_NAME,
    "model.onnx": "aimlapi-bge/local-bge-model.onnx",
}
_BGE_BASE = re.compile(r"(^|/)bge-base-en-v1\.5$", re.IGNORECASE)
_OFF = {"", "0", "false", "no", "off"}

_registry_lock = threading.Lock()
_load_lock = threading.Lock()


def default_cache_dir() -> str:
    """fastembed's default cache directory: ``FASTEMBED_CACHE_PATH``, else ``<tmp>/fastembed_cache``."""
    return os.environ.get("FASTEMBED_CACHE_PATH") or os.path.join(
        tempfile.gettempdir(), "fastembed_cache"
    )


def _register(model_file: str) -> str:
    """Register BAAI's full-precision file with fastembed (its registry is process-global)."""
    name = _REGISTERED_NAMES[model_file]
    with _registry_lock:
        known = {entry["model"].lower() for entry in TextEmbedding.list_supported_models()}
        if name.lower() not in known:
            TextEmbedding.add_custom_model(
                model=name,
                pooling=PoolingType.CLS,
                normalization=True,
                sources=ModelSource(hf=HF_REPO),
                dim=DIMENSION,
                model_file=model_file,
                description=f"{HF_REPO} layout ({model_file}), [CLS] pooling, normalised",
                license="mit",
                size_in_gb=0.44,
            )
    return name


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


class _LoadedModel:
    """One fastembed model and the lock that serialises its ONNX runs."""

    def __init__(self, model: TextEmbedding) -> None:
        self.model = model
        self.lock = threading.Lock()

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """Vectors in input order and the tokens the model saw ([CLS]/[SEP] included)."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        by_length = [texts[i] for i in order]
        with self.lock:
            arrays = list(self.model.embed(by_length, batch_size=ONNX_BATCH))
            tokens = self.model.token_count(by_length, batch_size=ONNX_BATCH)
        vectors: list[list[float]] = [[] for _ in texts]
        for position, array in zip(order, arrays, strict=True):
            vectors[position] = array.tolist()
        return vectors, tokens


_loaded: weakref.WeakValueDictionary[tuple[str, str], _LoadedModel] = weakref.WeakValueDictionary()


def _load(directory: Path, model_file: str, cache_dir: str) -> _LoadedModel:
    key = (str(directory.resolve()), model_file)
    with _load_lock:
        loaded = _loaded.get(key)
        if loaded is None:
            try:
                model = TextEmbedding(
                    model_name=_register(model_file),
                    cache_dir=cache_dir,
                    specific_model_path=str(directory),
                )
            except Exception as exc:
                raise LocalModelUnavailableError(
                    f"Could not load the ONNX model and tokenizer in {directory} ({exc})."
                ) from exc
            loaded = _LoadedModel(model)
            _loaded[key] = loaded
        return loaded


class LocalBackend:
    """Embeds batches in-process with BAAI/bge-base-en-v1.5 (or ``local_model_path``).

    Construction only checks the settings; the model loads on the first batch. Vectors are
    the [CLS] token's last hidden state, L2-normalised; usage counts the tokens the model saw
    and no credits. Safe to call from several threads and event loops at once.
    """

    name = "local"

    def __init__(self, config: EmbedderConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._model: _LoadedModel | None = None
        self._directory: Path | None = None
        self._model_file = MODEL_FILE
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
        missing = _missing(directory, tuple(_REGISTERED_NAMES))
        if missing:
            raise LocalModelUnavailableError(
                f"local_model_path={str(directory)!r} lacks {', '.join(missing)}. It must hold"
                f" the model as {MODEL_FILE} (or model.onnx) with its tokenizer files, as in"
                f" https://huggingface.co/{HF_REPO}."
            )
        return next(name for name in _REGISTERED_NAMES if (directory / name).is_file())

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
                self._model = _load(self._resolve(), self._model_file, self.cache_dir)
            return self._model

    def embed_batch(self, texts: list[str]) -> BatchResult:
        """Embed one batch in-process (loading the model on first use)."""
        vectors, tokens = self._loaded().embed(texts)
        return BatchResult(vectors, prompt_tokens=tokens, credits_used=0.0)

    async def aembed_batch(self, texts: list[str]) -> BatchResult:
        """Embed one batch in a worker thread, leaving the event loop free."""
        return await asyncio.to_thread(self.embed_batch, texts)

    def close(self) -> None:
        """Let go of the model (freed when no other instance uses it; reloads on demand)."""
        with self._lock:
            self._model = None
