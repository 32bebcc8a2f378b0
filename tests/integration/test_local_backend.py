"""The local backend end to end on a tiny model the tests build.

Files → tokenizer → ONNX session → [CLS] pooling → L2 normalisation → Embedder → adapters, checked
against a numpy reimplementation of the tiny graph. No download anywhere: pytest-socket blocks the
network, so a test that passes here passed offline. One test compares the real model with the
AI/ML API's published vector when the real files are cached.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import numpy as np
import pytest

from aimlapi_bge import (
    BGE_QUERY_INSTRUCTION,
    ConfigurationError,
    Embedder,
    LocalModelUnavailableError,
    resolve_config,
)
from aimlapi_bge.local import HF_REPO, MODEL_FILE, default_cache_dir, find_cached_model
from langchain_aimlapi_bge import AIMLBGEEmbeddings
from llama_index_aimlapi_bge import AIMLBGEEmbedding
from support.isolation import import_error_with
from support.tiny_model import (
    MAX_LENGTH,
    WORDS,
    install_in_hf_cache,
    reference_vectors,
    token_ids,
)

TEXTS = [
    "Laura is a DJ.",
    "Paris is the capital of France, on the river Seine.",
    "the cat sat on the mat",
    "zebra quux 42",
    "",
    "   ",
]
# Read before conftest's autouse fixture clears AIMLAPI_* variables for each test.
REAL_CACHE_DIR = os.environ.get("AIMLAPI_BGE_CACHE_DIR") or default_cache_dir()
PUBLISHED = Path(__file__).resolve().parents[1] / "data" / "published_laura.json"


def local(model_dir: Path, **settings: object) -> Embedder:
    return Embedder(resolve_config(backend="local", local_model_path=str(model_dir), **settings))


def assert_vectors(actual: list[list[float]], expected: np.ndarray) -> None:
    array = np.array(actual)
    assert array.shape == expected.shape
    np.testing.assert_allclose(array, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(array, axis=1), 1.0, atol=1e-6)


def test_vectors_are_the_cls_row_normalised(tiny_model_dir: Path) -> None:
    embedder = local(tiny_model_dir)
    vectors = embedder.embed(TEXTS)
    assert embedder.backend == "local"
    assert_vectors(vectors, reference_vectors(tiny_model_dir, TEXTS))
    assert len({tuple(np.round(v, 6)) for v in vectors[:4]}) == 4  # distinct texts differ


def test_empty_and_whitespace_texts_get_the_empty_text_vector(tiny_model_dir: Path) -> None:
    empty, blank, space = local(tiny_model_dir).embed(["", "\n\t", " "])
    assert empty == blank == space
    assert_vectors([empty], reference_vectors(tiny_model_dir, [""]))


def test_batch_equals_one_by_one(tiny_model_dir: Path) -> None:
    embedder = local(tiny_model_dir, batch_size=4)
    texts = [f"{'music plays ' * (i % 5)}record {i}" for i in range(11)]
    together = embedder.embed(texts)
    one_by_one = [embedder.embed([text])[0] for text in texts]
    np.testing.assert_allclose(together, one_by_one, atol=1e-6)
    assert_vectors(together, reference_vectors(tiny_model_dir, texts))


def test_long_text_gives_the_vector_of_its_truncation(tiny_model_dir: Path) -> None:
    single_tokens = [word for word in WORDS if word.isalpha()]
    words = [single_tokens[i % len(single_tokens)] for i in range(3 * MAX_LENGTH)]
    long_text = " ".join(words)
    assert len(token_ids(tiny_model_dir, long_text)) == MAX_LENGTH  # [CLS] + 30 words + [SEP]
    kept = MAX_LENGTH - 2
    embedder = local(tiny_model_dir)
    long_vector, cut_vector, shorter_vector = embedder.embed(
        [long_text, " ".join(words[:kept]), " ".join(words[: kept - 1])]
    )
    np.testing.assert_allclose(long_vector, cut_vector, atol=1e-6)
    assert not np.allclose(long_vector, shorter_vector, atol=1e-3)
    embedder.reset_usage()
    embedder.embed([long_text])
    assert embedder.usage.prompt_tokens == MAX_LENGTH


def test_query_instruction_is_applied_to_queries_only(tiny_model_dir: Path) -> None:
    embedder = local(tiny_model_dir)
    query = "who is laura?"
    assert_vectors(
        [embedder.embed_query(query)],
        reference_vectors(tiny_model_dir, [BGE_QUERY_INSTRUCTION + query]),
    )
    assert_vectors(embedder.embed([query]), reference_vectors(tiny_model_dir, [query]))
    plain = local(tiny_model_dir, query_instruction="")
    assert_vectors([plain.embed_query(query)], reference_vectors(tiny_model_dir, [query]))


def test_usage_counts_the_tokens_the_model_saw_and_no_credits(tiny_model_dir: Path) -> None:
    embedder = local(tiny_model_dir, batch_size=2)
    texts = TEXTS[:4]
    embedder.embed(texts)
    embedder.embed_query("where is paris?")
    usage = embedder.usage
    query = BGE_QUERY_INSTRUCTION + "where is paris?"
    assert usage.prompt_tokens == sum(len(token_ids(tiny_model_dir, t)) for t in [*texts, query])
    assert usage.requests == 3
    assert usage.texts == 5
    assert usage.credits_used == 0.0
    assert usage.rate_limited == 0


def test_threads_and_async_tasks_share_one_model(tiny_model_dir: Path) -> None:
    embedder = local(tiny_model_dir, batch_size=2, max_concurrency=4)
    texts = [f"the dog runs in park number {i}" for i in range(20)]
    expected = reference_vectors(tiny_model_dir, texts)
    assert_vectors(embedder.embed(texts), expected)
    assert_vectors(asyncio.run(embedder.aembed(texts)), expected)
    assert_vectors(asyncio.run(embedder.aembed(texts)), expected)  # a second event loop
    query = asyncio.run(embedder.aembed_query("dog"))
    assert_vectors([query], reference_vectors(tiny_model_dir, [BGE_QUERY_INSTRUCTION + "dog"]))


def test_langchain_adapter_runs_the_local_model(tiny_model_dir: Path) -> None:
    embeddings = AIMLBGEEmbeddings(backend="local", local_model_path=str(tiny_model_dir))
    texts = TEXTS[:3]
    assert_vectors(embeddings.embed_documents(texts), reference_vectors(tiny_model_dir, texts))
    assert_vectors(
        [embeddings.embed_query("laura")],
        reference_vectors(tiny_model_dir, [BGE_QUERY_INSTRUCTION + "laura"]),
    )
    assert_vectors(
        asyncio.run(embeddings.aembed_documents(texts)), reference_vectors(tiny_model_dir, texts)
    )
    assert embeddings.usage.credits_used == 0.0
    assert embeddings.api_key is None


def test_llama_index_adapter_runs_the_local_model(tiny_model_dir: Path) -> None:
    embedding = AIMLBGEEmbedding(backend="local", local_model_path=str(tiny_model_dir))
    texts = TEXTS[:3]
    expected = reference_vectors(tiny_model_dir, texts)
    assert_vectors(embedding.get_text_embedding_batch(texts), expected)
    assert_vectors([embedding.get_text_embedding(texts[0])], expected[:1])
    assert_vectors(
        [embedding.get_query_embedding("laura")],
        reference_vectors(tiny_model_dir, [BGE_QUERY_INSTRUCTION + "laura"]),
    )
    assert_vectors(asyncio.run(embedding.aget_text_embedding_batch(texts)), expected)


def test_environment_variable_selects_the_local_backend(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIMLAPI_BGE_BACKEND", "local")
    embeddings = AIMLBGEEmbeddings(local_model_path=str(tiny_model_dir))  # and no key anywhere
    assert embeddings.embedder.backend == "local"
    assert_vectors(
        embeddings.embed_documents(["Laura is a DJ."]),
        reference_vectors(tiny_model_dir, ["Laura is a DJ."]),
    )


@pytest.mark.parametrize("offline", [False, True])
def test_cached_model_loads_with_no_network(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: bool
) -> None:
    install_in_hf_cache(tiny_model_dir, tmp_path, HF_REPO)
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("AIMLAPI_BGE_CACHE_DIR", str(tmp_path))  # the cache dir from the env
    embedder = Embedder(resolve_config(backend="local"))
    assert_vectors(embedder.embed(TEXTS[:2]), reference_vectors(tiny_model_dir, TEXTS[:2]))


def test_missing_files_fail_fast_with_the_ways_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    cache = tmp_path / "cache"
    embedder = Embedder(resolve_config(backend="local", cache_dir=str(cache)))  # cheap: no load
    with pytest.raises(LocalModelUnavailableError) as info:
        embedder.embed(["Laura is a DJ."])
    message = str(info.value)
    assert isinstance(info.value, ConfigurationError)
    assert f"cache_dir={str(cache)!r}" in message
    assert "download from Hugging Face failed" in message
    assert "local_model_path=" in message
    assert MODEL_FILE in message
    assert info.value.failed_positions == [0]


def test_offline_mode_skips_the_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    embedder = Embedder(resolve_config(backend="local", cache_dir=str(tmp_path)))
    with pytest.raises(LocalModelUnavailableError, match="HF_HUB_OFFLINE is set"):
        embedder.embed(["x"])


def test_incomplete_local_model_path_is_refused_at_construction(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "onnx").mkdir()
    (tmp_path / MODEL_FILE).write_bytes((tiny_model_dir / MODEL_FILE).read_bytes())
    with pytest.raises(LocalModelUnavailableError, match=r"lacks tokenizer\.json"):
        local(tmp_path)


def test_model_files_that_do_not_load_raise_a_clear_error(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (tmp_path / name).write_bytes((tiny_model_dir / name).read_bytes())
    (tmp_path / "model.onnx").write_bytes(b"not an onnx graph")  # root-level file accepted too
    embedder = local(tmp_path)
    with pytest.raises(LocalModelUnavailableError, match="Could not load the ONNX model"):
        embedder.embed(["x"])


def test_other_models_need_a_local_model_path() -> None:
    with pytest.raises(ConfigurationError, match="local_model_path"):
        Embedder(resolve_config(backend="local", model="BAAI/bge-small-en-v1.5"))


def test_import_without_fastembed_names_the_extra() -> None:
    message = import_error_with(["fastembed"], "import aimlapi_bge.local")
    assert "pip install 'aimlapi-bge[local]'" in message


@pytest.mark.real_model
def test_real_model_matches_the_published_api_vector() -> None:
    if find_cached_model(REAL_CACHE_DIR) is None:
        pytest.skip(
            f"{HF_REPO}'s full-precision files ({MODEL_FILE} and tokenizer) are not cached in"
            f" {REAL_CACHE_DIR}: run once online with backend='local' (or set"
            " AIMLAPI_BGE_CACHE_DIR to a filled cache) to compare with the published vector."
        )
    published = json.loads(PUBLISHED.read_text())
    embedder = Embedder(resolve_config(backend="local", cache_dir=REAL_CACHE_DIR))
    (vector,) = embedder.embed([published["input"]])
    cosine = float(np.dot(vector, published["embedding"]))
    assert len(vector) == 768
    assert cosine >= 0.999, cosine
    assert embedder.usage.prompt_tokens == published["prompt_tokens"]  # 7, as the API reported
    embedder.embed(["word " * 1000])  # truncated at 512 tokens, not an error
    assert embedder.usage.prompt_tokens == published["prompt_tokens"] + 512
