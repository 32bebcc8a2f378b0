"""The local backend as fast as the CPU allows (issue 14), on the tiny model the tests build.

A whole call is tokenised once, sorted by token count across the call, batched by a token
budget and run one ONNX call at a time; the vectors must equal a one-text-at-a-time run, in
input order. Also: the int8 copy, the default cache directory, and the ``verify-local`` and
``compare`` commands. Speed itself is measured in bench/local.py, not here.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import platformdirs
import pytest
from onnx import TensorProto, helper, numpy_helper

import aimlapi_bge.local as local_module
from aimlapi_bge import Embedder, resolve_config
from aimlapi_bge.cli import EXIT_FAILED, EXIT_OK, main
from aimlapi_bge.errors import ConfigurationError
from aimlapi_bge.local import LocalBackend, default_cache_dir, quantised_model
from langchain_aimlapi_bge import AIMLBGEEmbeddings
from llama_index_aimlapi_bge import AIMLBGEEmbedding
from support import tiny_model
from support.standin import StandInServer, standin_vector
from support.tiny_model import MAX_LENGTH, WORDS, reference_vectors, token_ids

PUBLISHED = Path(__file__).resolve().parents[1] / "data" / "published_laura.json"
_SINGLE = [word for word in WORDS if word.isalpha()]


def mixed_texts() -> list[str]:
    """Short, medium and truncated texts, an empty one, and duplicates, in no length order."""
    texts = []
    for i in range(23):
        words = (i * 7) % (2 * MAX_LENGTH) + 1  # 1 .. 64 words: some beyond MAX_LENGTH tokens
        texts.append(" ".join(_SINGLE[(i + k) % len(_SINGLE)] for k in range(words)))
    texts += ["", "Laura is a DJ.", texts[3], "zebra quux 42", texts[10], "Laura is a DJ."]
    return texts


def local(model_dir: Path, **settings: Any) -> Embedder:
    return Embedder(resolve_config(backend="local", local_model_path=str(model_dir), **settings))


@pytest.fixture
def onnx_runs(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The token counts of the texts in each ONNX run, in run order."""
    runs: list[list[int]] = []
    original = local_module._LoadedModel._run

    def spy(self: Any, rows: list[list[int]]) -> np.ndarray:
        runs.append([len(row) for row in rows])
        return original(self, rows)

    monkeypatch.setattr(local_module._LoadedModel, "_run", spy)
    return runs


@pytest.fixture
def model_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny model (the int8 copy is written beside the model)."""
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))


@pytest.fixture
def model_768(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tiny model with 768-dimensional vectors, as bge-base's (a different model all the same)."""
    monkeypatch.setattr(tiny_model, "HIDDEN", 768)
    return tiny_model.build_tiny_model(tmp_path / "model-768")


# --- whole-call sorting and token budgets ---------------------------------------------------------


@pytest.mark.parametrize("budget", [40, local_module.BATCH_TOKENS])
def test_whole_call_equals_one_text_at_a_time(
    tiny_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    onnx_runs: list[list[int]],
    budget: int,
) -> None:
    monkeypatch.setattr(local_module, "BATCH_TOKENS", budget)
    texts = mixed_texts()
    embedder = local(tiny_model_dir, batch_size=4)
    together = embedder.embed(texts)
    runs_for_the_call = list(onnx_runs)
    one_by_one = [embedder.embed([text])[0] for text in texts]

    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    np.testing.assert_allclose(together, reference_vectors(tiny_model_dir, texts), atol=1e-5)
    assert together[3] == together[25] and together[3] is not together[25]  # a duplicate
    # Sorted across the whole call (not per batch of 4), every run within the budget.
    lengths = [length for run in runs_for_the_call for length in run]
    distinct = len(set(texts))
    assert len(lengths) == distinct
    assert lengths == sorted(lengths)
    assert all(len(run) * max(run) <= max(budget, max(run)) for run in runs_for_the_call)
    padding = [len(run) * max(run) - sum(run) for run in runs_for_the_call]
    assert max(padding) <= local_module.PADDING_PER_RUN
    if budget == 40:
        assert len(runs_for_the_call) > distinct // 4  # the budget, not batch_size, cuts


def test_a_small_call_of_similar_lengths_is_one_onnx_run(
    tiny_model_dir: Path, onnx_runs: list[list[int]]
) -> None:
    texts = [f"music plays record {i}" for i in range(9)] + ["music plays", "music"]
    vectors = local(tiny_model_dir, batch_size=2).embed(texts)
    assert len(onnx_runs) == 1
    np.testing.assert_allclose(vectors, reference_vectors(tiny_model_dir, texts), atol=1e-5)


async def test_async_whole_call_equals_one_text_at_a_time(tiny_model_dir: Path) -> None:
    texts = mixed_texts()
    embedder = local(tiny_model_dir, batch_size=3)
    vectors = await embedder.aembed(texts)
    np.testing.assert_allclose(vectors, reference_vectors(tiny_model_dir, texts), atol=1e-5)


def test_usage_counts_tokens_from_the_single_encoding(tiny_model_dir: Path) -> None:
    texts = mixed_texts()
    distinct = list(dict.fromkeys(" " if not t.strip() else t for t in texts))
    embedder = local(tiny_model_dir, batch_size=4)
    embedder.embed(texts)
    usage = embedder.usage
    assert usage.prompt_tokens == sum(len(token_ids(tiny_model_dir, t)) for t in distinct)
    assert usage.texts == len(distinct)
    assert usage.requests == -(-len(distinct) // 4)  # one per batch_size slice, as before
    assert any(len(token_ids(tiny_model_dir, t)) == MAX_LENGTH for t in distinct)  # truncated


def test_progress_bar_reaches_the_total(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = [f"music plays record {i}" for i in range(9)]
    local(tiny_model_dir, batch_size=2).embed(texts, show_progress=True)
    err = capsys.readouterr().err
    assert "9/9" in err and "10/9" not in err and "18/9" not in err


# --- int8 --------------------------------------------------------------------------------------


def test_int8_is_made_once_beside_the_model_and_close_to_fp32(
    model_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = mixed_texts()[:12]
    fp32 = np.array(local(model_copy).embed(texts))
    int8 = np.array(local(model_copy, local_precision="int8").embed(texts))
    (copy,) = (model_copy / "onnx").glob("model.int8-*.onnx")
    assert onnx.load(str(copy)).graph.node  # a real graph
    assert any(
        "Integer" in n.op_type or "Quant" in n.op_type for n in onnx.load(str(copy)).graph.node
    )
    difference = float(np.max(np.abs(int8 - fp32)))
    assert 1e-6 < difference < 0.1, difference
    cosines = np.sum(int8 * fp32, axis=1)
    assert np.all(cosines > 0.99), cosines

    made = copy.stat().st_mtime_ns

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("quantised again")

    monkeypatch.setattr("onnxruntime.quantization.quantize_dynamic", refuse)
    assert quantised_model(model_copy / "onnx" / "model.onnx", str(model_copy)) == copy
    assert copy.stat().st_mtime_ns == made


def test_int8_goes_to_the_cache_dir_when_the_model_dir_is_read_only(
    model_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_module, "_writable", lambda directory: False)
    cache = tmp_path / "cache"
    vectors = local(model_copy, local_precision="int8", cache_dir=str(cache)).embed(["laura"])
    assert len(vectors[0]) == tiny_model.HIDDEN
    assert list((cache / "int8").glob("model.int8-*.onnx"))
    assert not list((model_copy / "onnx").glob("*int8*"))


def test_precision_is_validated_and_reaches_the_core_from_every_entry(model_copy: Path) -> None:
    with pytest.raises(
        ConfigurationError, match="local_precision must be one of 'fp32', 'int8', got 'int4'"
    ):
        resolve_config(backend="local", local_precision="int4")
    path = str(model_copy)
    chain = AIMLBGEEmbeddings(backend="local", local_model_path=path, local_precision="int8")
    index = AIMLBGEEmbedding(backend="local", local_model_path=path, local_precision="int8")
    assert chain.embedder.config.local_precision == "int8"
    assert index.embedder.config.local_precision == "int8"
    assert (
        AIMLBGEEmbeddings(backend="local", local_model_path=path).embedder.config.local_precision
        == "fp32"
    )
    np.testing.assert_allclose(
        chain.embed_documents(["laura"]), index.get_text_embedding_batch(["laura"]), atol=1e-6
    )


# --- the default cache directory ---------------------------------------------------------------


def backend_cache(**settings: Any) -> str:
    return LocalBackend(resolve_config(backend="local", **settings)).cache_dir


def test_cache_dir_setting_and_environment_variable_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("AIMLAPI_BGE_CACHE_DIR", str(tmp_path / "env"))
    assert backend_cache() == str(tmp_path / "env")
    assert backend_cache(cache_dir=str(tmp_path / "arg")) == str(tmp_path / "arg")


def test_hf_home_means_the_hugging_face_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert default_cache_dir() == str(tmp_path / "hf" / "hub")
    assert backend_cache() == str(tmp_path / "hf" / "hub")


def test_default_is_the_user_cache_dir_never_the_temp_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("FASTEMBED_CACHE_PATH", str(Path(tempfile.gettempdir()) / "fastembed_cache"))
    chosen = backend_cache()
    assert chosen == platformdirs.user_cache_dir("aimlapi-bge", appauthor=False)
    assert not chosen.startswith(tempfile.gettempdir())


def test_default_follows_xdg_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert backend_cache() == str(tmp_path / "xdg" / "aimlapi-bge")


# --- verify-local ------------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return code, out, err


def field(out: str, name: str) -> str:
    match = re.search(rf"^{re.escape(name)}:\s*(.*)$", out, re.MULTILINE)
    assert match, out
    return match.group(1)


def test_verify_local_fails_on_a_model_of_another_dimension(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "verify-local", "--local-model-path", tiny_model_dir)
    assert code == EXIT_FAILED
    assert "16 (the published vector has 768)" in field(out, "dimension")
    assert out.rstrip().endswith("FAIL")


def test_verify_local_reports_a_low_cosine_and_fails(
    model_768: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "verify-local", "--local-model-path", model_768)
    assert code == EXIT_FAILED
    cosine = float(field(out, "cosine").split()[0])
    assert -1.0 <= cosine < 0.9
    assert out.rstrip().endswith("FAIL")


def _constant_model(directory: Path, tiny: Path, vector: list[float]) -> Path:
    """A model whose every token's hidden state is ``vector`` (so [CLS] pooling gives it)."""
    shutil.copytree(tiny, directory)
    ints = TensorProto.INT64
    inputs = [
        helper.make_tensor_value_info(name, ints, ["batch", "sequence"])
        for name in ("input_ids", "attention_mask", "token_type_ids")
    ]
    output = helper.make_tensor_value_info(
        "last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", len(vector)]
    )
    initializers = [
        numpy_helper.from_array(np.array(vector, dtype=np.float32), "vector"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axis"),
    ]
    nodes = [
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask", "axis"], ["column"]),
        helper.make_node("Mul", ["column", "vector"], ["last_hidden_state"]),
    ]
    graph = helper.make_graph(nodes, "constant", inputs, [output], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(directory / "onnx" / "model.onnx"))
    return directory


def test_verify_local_passes_when_the_vector_matches(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    published = json.loads(PUBLISHED.read_text())["embedding"]
    model = _constant_model(tmp_path / "constant", tiny_model_dir, published)
    code, out, _ = run(capsys, "verify-local", "--local-model-path", model)
    assert code == EXIT_OK
    assert float(field(out, "cosine").split()[0]) > 0.99999
    assert out.rstrip().endswith("PASS")


def test_the_published_vector_ships_with_the_package() -> None:
    from aimlapi_bge.cli import _published

    shipped, tested = _published(), json.loads(PUBLISHED.read_text())
    assert shipped["embedding"] == tested["embedding"]
    assert shipped["input"] == "Laura is a DJ."


# --- compare -----------------------------------------------------------------------------------


def test_compare_stand_in_with_the_local_backend(
    standin: StandInServer,
    model_768: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AIMLAPI_API_KEY", standin.api_key or "")
    corpus = tmp_path / "corpus.txt"
    lines = ["Laura is a DJ.", "the cat sat on the mat", "paris in france", "dog runs in park"]
    corpus.write_text("\n".join(lines) + "\n")
    code, out, _ = run(
        capsys, "compare", "--input", corpus, "--a", standin.url, "--b", "local",
        "--local-model-path", model_768,
    )  # fmt: skip
    assert code == EXIT_OK
    assert field(out, "n") == "4"
    local_vectors = np.array(local(model_768).embed(lines))
    expected = [
        float(np.dot(standin_vector(t), v)) for t, v in zip(lines, local_vectors, strict=True)
    ]
    assert float(field(out, "min cosine")) == pytest.approx(min(expected), abs=1e-6)
    assert float(field(out, "median cosine")) == pytest.approx(float(np.median(expected)), abs=1e-6)
    worst = int(np.argmin(expected))
    assert field(out, "worst ids").startswith(f"{worst} (")
    assert standin.request_count >= 1


def test_compare_identical_endpoints_gives_cosine_one(
    standin: StandInServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AIMLAPI_API_KEY", standin.api_key or "")
    corpus = tmp_path / "corpus.jsonl"
    records = [{"id": f"doc-{i}", "text": f"passage number {i} about music"} for i in range(10)]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records))
    code, out, _ = run(
        capsys, "compare", "-i", corpus, "--a", standin.url, "--b", standin.url + "/",
        "--sample", "6", "--seed", "3",
    )  # fmt: skip
    assert code == EXIT_OK
    assert field(out, "n") == "6"
    assert field(out, "min cosine") == "1.000000"
    assert field(out, "median cosine") == "1.000000"
    assert '"doc-' in field(out, "worst ids")


def test_compare_refuses_a_side_that_is_neither(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("laura\n")
    with pytest.raises(SystemExit) as info:
        main(["compare", "-i", str(corpus), "--a", "local", "--b", "ftp://example.invalid"])
    assert info.value.code == 2
    assert "http(s) base URL" in capsys.readouterr().err


def test_compare_fp32_with_int8_shows_the_drift(
    model_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(mixed_texts()[:8]) + "\n")
    code, out, _ = run(
        capsys, "compare", "-i", corpus, "--a", "local", "--b", "local:int8",
        "--local-model-path", model_copy,
    )  # fmt: skip
    assert code == EXIT_OK
    assert 0.99 < float(field(out, "min cosine")) < 0.999999
    assert list((model_copy / "onnx").glob("model.int8-*.onnx"))
