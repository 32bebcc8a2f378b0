"""``BGEEmbedBatches`` called directly, as a Ray actor calls it, on the local tiny model: no Ray
instance and no socket (issue 12)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import SecretStr

from aimlapi_bge.ray import USAGE_COLUMNS, BGEEmbedBatches
from support.helpers import SECRET
from support.tiny_model import HIDDEN, reference_vectors

TEXTS = ["Laura is a DJ.", "the cat sat on the mat", "", "Laura is a DJ.", "paris in france"]


def local(model_dir: Path, **kwargs: object) -> BGEEmbedBatches:
    return BGEEmbedBatches(backend="local", local_model_path=str(model_dir), **kwargs)


def test_dict_batches_get_a_float32_matrix_row_for_row(tiny_model_dir: Path) -> None:
    batch = {"id": np.arange(len(TEXTS)), "text": np.array(TEXTS, dtype=object)}
    out = local(tiny_model_dir, batch_size=2)(batch)
    assert list(out) == ["id", "text", "embedding"]
    assert out["embedding"].dtype == np.float32 and out["embedding"].shape == (5, HIDDEN)
    np.testing.assert_allclose(
        out["embedding"], reference_vectors(tiny_model_dir, TEXTS), atol=1e-6
    )
    assert out["id"].tolist() == list(range(5)) and "embedding" not in batch


def test_pandas_batches_stay_frames_and_queries_get_the_instruction(tiny_model_dir: Path) -> None:
    frame = pd.DataFrame({"id": [7, 8], "body": ["the cat", "the dog"]})
    embed = local(tiny_model_dir, text_column="body", output_column="v", as_queries=True)
    out = embed(frame)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["id", "body", "v"]
    want = reference_vectors(
        tiny_model_dir,
        [embed.embedder.config.query_instruction + t for t in ["the cat", "the dog"]],
    )
    np.testing.assert_allclose(np.stack(out["v"].tolist()), want, atol=1e-6)
    assert "v" not in frame


def test_usage_columns_sum_to_the_batch_usage(tiny_model_dir: Path) -> None:
    embed = local(tiny_model_dir, batch_size=2, usage_columns=True)
    out = embed({"text": np.array(TEXTS, dtype=object)})
    assert int(out["usage_requests"].sum()) == 2  # 4 distinct texts, 2 per batch
    assert int(out["usage_texts"].sum()) == 4
    assert out["usage_prompt_tokens"][0] > 0 and not out["usage_prompt_tokens"][1:].any()
    assert set(USAGE_COLUMNS.values()) <= set(out)
    assert embed.embedder.usage.requests == 0  # each batch's usage went into its rows


def test_a_misspelt_setting_is_named_with_the_closest_match() -> None:
    with pytest.raises(
        TypeError, match=r"unknown setting 'max_concurency' \(did you mean 'max_concurrency'\?\)"
    ):
        BGEEmbedBatches(base_url="http://127.0.0.1:9/v1", max_concurency=4)
    with pytest.raises(TypeError, match="base_url or base_urls"):
        BGEEmbedBatches(base_url="http://127.0.0.1:9/v1", base_urls=["http://127.0.0.1:8/v1"])
    with pytest.raises(TypeError, match="non-empty list"):
        BGEEmbedBatches(base_urls="http://127.0.0.1:8/v1")


def test_a_bad_text_names_the_column_and_the_ids(tiny_model_dir: Path) -> None:
    batch = {"id": np.array(["a", "b", "c"]), "text": np.array(["ok", None, "ok"], dtype=object)}
    with pytest.raises(TypeError, match=r"position 1 is a NoneType.*column 'text'.*'a' to 'c'"):
        local(tiny_model_dir)(batch)
    with pytest.raises(KeyError, match="no column 'body'"):
        local(tiny_model_dir, text_column="body")(batch)


def test_the_key_stays_out_of_the_repr() -> None:
    for key in (SECRET, SecretStr(SECRET), SECRET + "\n"):
        embed = BGEEmbedBatches(api_key=key, base_url="http://127.0.0.1:9/v1")
        assert SECRET not in repr(embed) and SECRET not in str(vars(embed))
        assert embed.embedder.config.api_key is not None
        assert embed.embedder.config.api_key.get_secret_value().strip() == SECRET


def test_an_empty_batch_comes_back_empty_with_the_same_width(tiny_model_dir: Path) -> None:
    embed = local(tiny_model_dir, usage_columns=True)
    embed({"text": np.array(["the cat"], dtype=object)})
    out = embed({"id": np.array([], dtype=np.int64), "text": np.array([], dtype=object)})
    assert out["embedding"].shape == (0, HIDDEN) and out["embedding"].dtype == np.float32
    assert len(out["usage_requests"]) == 0
