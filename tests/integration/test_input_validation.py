"""Bad input never hangs or misaligns: checked before sending, or named in the error.

Policies under test:
* ``[]`` gives ``[]`` without a request;
* a non-string raises TypeError naming its position, before any request;
* empty and whitespace-only texts are sent as ``" "`` (the API rejects ``""``; BERT tokenises
  all of them to ``[CLS] [SEP]``), so every input keeps its own vector in its own place;
* a text beyond the 512-token window raises InputTooLongError naming its position, with every
  other text's vector in ``error.embeddings``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aimlapi_bge import BGE_QUERY_INSTRUCTION, InputTooLongError
from langchain_aimlapi_bge import AIMLBGEEmbeddings
from llama_index_aimlapi_bge import AIMLBGEEmbedding
from support.helpers import embedding_inputs, expected, make
from support.standin import StandInServer, count_tokens


def words(count: int) -> str:
    """A text of ``count`` words: ``count + 2`` tokens with [CLS] and [SEP]."""
    return " ".join(f"w{i % 50}" for i in range(count))


LONG = words(600)
AT_LIMIT = words(510)


def test_token_helpers_match_the_window() -> None:
    assert count_tokens(AT_LIMIT) == 512
    assert count_tokens(LONG) > 512


# --- nothing to embed ------------------------------------------------------------------------


def test_an_empty_list_gives_an_empty_list_without_a_request(standin: StandInServer) -> None:
    embedder = make(standin)
    assert embedder.embed([]) == []
    assert asyncio.run(embedder.aembed([])) == []
    embeddings = AIMLBGEEmbeddings(base_url=standin.url, api_key=standin.api_key)
    assert embeddings.embed_documents([]) == []
    assert asyncio.run(embeddings.aembed_documents([])) == []
    model = AIMLBGEEmbedding(base_url=standin.url, api_key=standin.api_key)
    assert model.get_text_embedding_batch([]) == []
    assert standin.request_count == 0


# --- wrong types -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("texts", "position", "type_name"),
    [
        (["a", "b", None], 2, "NoneType"),
        ([b"bytes"], 0, "bytes"),
        (["a", 42, "c"], 1, "int"),
        (["a", ["nested"]], 1, "list"),
    ],
)
def test_a_non_string_is_named_before_any_request(
    standin: StandInServer, texts: list[Any], position: int, type_name: str
) -> None:
    embedder = make(standin)
    with pytest.raises(TypeError, match=f"position {position} is a {type_name}"):
        embedder.embed(texts)
    with pytest.raises(TypeError, match=f"position {position}"):
        asyncio.run(embedder.aembed(texts))
    assert standin.request_count == 0


def test_a_non_string_among_many_batches_sends_nothing(standin: StandInServer) -> None:
    texts: list[Any] = [f"text {i}" for i in range(50)]
    texts[47] = 3.5
    with pytest.raises(TypeError, match="position 47"):
        make(standin, batch_size=5).embed(texts)
    assert standin.request_count == 0


def test_a_single_string_is_refused_by_the_adapters(standin: StandInServer) -> None:
    embeddings = AIMLBGEEmbeddings(base_url=standin.url, api_key=standin.api_key)
    with pytest.raises(TypeError, match="single str"):
        embeddings.embed_documents("one passage")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="single str"):
        asyncio.run(embeddings.aembed_documents("one passage"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a str"):
        embeddings.embed_query(["a list"])  # type: ignore[arg-type]
    assert standin.request_count == 0


# --- empty and whitespace-only texts -----------------------------------------------------------


def test_empty_and_blank_texts_keep_their_places(standin: StandInServer) -> None:
    texts = ["", "a passage", "   ", "\n\t", "another passage", ""]
    vectors = make(standin).embed(texts)
    assert len(vectors) == len(texts)
    blank = expected([" "])[0]
    assert vectors[0] == vectors[2] == vectors[3] == vectors[5] == blank
    assert vectors[1] == expected(["a passage"])[0]
    assert vectors[4] == expected(["another passage"])[0]
    assert sorted(standin.inputs_seen) == [" ", "a passage", "another passage"]
    assert "" not in standin.inputs_seen


async def test_empty_texts_on_the_async_path_and_the_adapters(standin: StandInServer) -> None:
    embeddings = AIMLBGEEmbeddings(base_url=standin.url, api_key=standin.api_key)
    assert await embeddings.aembed_documents(["", "x"]) == expected([" ", "x"])
    model = AIMLBGEEmbedding(base_url=standin.url, api_key=standin.api_key)
    assert model.get_text_embedding("   ") == expected([" "])[0]
    assert await model.aget_text_embedding_batch(["", "y"]) == expected([" ", "y"])
    assert set(standin.inputs_seen) == {" ", "x", "y"}


def test_an_empty_query_without_instruction_is_sent_as_a_space(standin: StandInServer) -> None:
    assert make(standin, query_instruction="").embed_query("") == expected([" "])[0]
    assert make(standin).embed_query("") == expected([BGE_QUERY_INSTRUCTION])[0]
    assert standin.inputs_seen == [" ", BGE_QUERY_INSTRUCTION]


# --- texts beyond the 512-token window ---------------------------------------------------------


def _check_too_long(error: InputTooLongError, texts: list[str], bad: list[int]) -> None:
    assert error.positions == bad
    assert error.failed_positions == bad
    assert error.embeddings is not None
    assert len(error.embeddings) == len(texts)
    for position, text in enumerate(texts):
        if position in bad:
            assert error.embeddings[position] is None
        else:
            assert error.embeddings[position] == expected([text])[0]
    assert error.embedded_count == len(texts) - len(bad)
    assert "512 tokens" in str(error)
    assert f"position(s) [{', '.join(map(str, bad))}]" in str(error)


def test_a_text_at_the_limit_is_accepted(standin: StandInServer) -> None:
    assert make(standin).embed([AT_LIMIT]) == expected([AT_LIMIT])


def test_a_text_beyond_the_window_is_named_and_nothing_else_is_lost(
    standin: StandInServer,
) -> None:
    texts = ["first", LONG, "third", "fourth"]
    with pytest.raises(InputTooLongError) as caught:
        make(standin).embed(texts)
    _check_too_long(caught.value, texts, [1])
    assert isinstance(caught.value, ValueError)
    assert caught.value.status_code == 400
    assert "must have less than 512 tokens" in str(caught.value)  # the server's own words


async def test_long_texts_across_batches_on_the_async_path(standin: StandInServer) -> None:
    texts = [f"passage {i}" for i in range(10)]
    texts[3] = LONG
    texts[8] = LONG + " more"
    with pytest.raises(InputTooLongError) as caught:
        await make(standin, batch_size=4).aembed(texts)
    _check_too_long(caught.value, texts, [3, 8])
    # Only rejected batches were split; no request was ever resent unchanged.
    sent = embedding_inputs(standin)
    assert len({tuple(batch) for batch in sent}) == len(sent)


def test_a_long_query_is_named(standin: StandInServer) -> None:
    with pytest.raises(InputTooLongError) as caught:
        make(standin).embed_query(LONG)
    assert caught.value.positions == [0]
    assert standin.request_count == 1


def test_the_langchain_adapter_reports_long_texts(standin: StandInServer) -> None:
    embeddings = AIMLBGEEmbeddings(base_url=standin.url, api_key=standin.api_key)
    texts = [LONG, "short one"]
    with pytest.raises(InputTooLongError) as caught:
        embeddings.embed_documents(texts)
    _check_too_long(caught.value, texts, [0])
    with pytest.raises(InputTooLongError) as caught:
        asyncio.run(embeddings.aembed_documents(texts))
    _check_too_long(caught.value, texts, [0])


def test_the_llama_index_adapter_reports_long_texts(standin: StandInServer) -> None:
    model = AIMLBGEEmbedding(base_url=standin.url, api_key=standin.api_key, embed_batch_size=2)
    texts = ["short one", "short two", LONG]
    with pytest.raises(InputTooLongError) as caught:
        model.get_text_embedding_batch(texts)
    _check_too_long(caught.value, texts, [2])
    with pytest.raises(InputTooLongError) as caught:
        asyncio.run(model.aget_text_embedding_batch(texts))
    _check_too_long(caught.value, texts, [2])
    with pytest.raises(InputTooLongError):
        model.get_text_embedding(LONG)
