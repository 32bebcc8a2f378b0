"""Progress bars: tqdm on stderr, per batch, on sync and async paths; off by default."""

from __future__ import annotations

import asyncio
import re

import pytest

from langchain_aimlapi_bge import AIMLBGEEmbeddings
from llama_index_aimlapi_bge import AIMLBGEEmbedding
from support.helpers import expected, make
from support.standin import StandInServer

TEXTS = [f"passage {i}" for i in range(6)]


def counts_shown(stderr: str) -> list[str]:
    """The distinct ``n/total`` counters tqdm drew, in order (closing redraws the last one)."""
    return list(dict.fromkeys(re.findall(r"(\d+/\d+) \[", stderr)))


def langchain(server: StandInServer, **settings: object) -> AIMLBGEEmbeddings:
    return AIMLBGEEmbeddings(
        base_url=server.url, api_key=server.api_key, batch_size=2, max_concurrency=1, **settings
    )


def llama_index(server: StandInServer) -> AIMLBGEEmbedding:
    return AIMLBGEEmbedding(
        base_url=server.url, api_key=server.api_key, embed_batch_size=2, max_concurrency=1
    )


def test_langchain_sync_bar_advances_per_batch(
    standin: StandInServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert langchain(standin, show_progress_bar=True).embed_documents(TEXTS) == expected(TEXTS)
    err = capsys.readouterr().err
    assert "Embedding" in err
    assert counts_shown(err) == ["0/6", "2/6", "4/6", "6/6"]


async def test_langchain_async_bar_advances_per_batch(
    standin: StandInServer, capsys: pytest.CaptureFixture[str]
) -> None:
    model = langchain(standin, show_progress_bar=True)
    assert await model.aembed_documents(TEXTS) == expected(TEXTS)
    assert counts_shown(capsys.readouterr().err) == ["0/6", "2/6", "4/6", "6/6"]


def test_llama_index_sync_batch_honours_show_progress(
    standin: StandInServer, capsys: pytest.CaptureFixture[str]
) -> None:
    model = llama_index(standin)
    assert model.get_text_embedding_batch(TEXTS, show_progress=True) == expected(TEXTS)
    assert counts_shown(capsys.readouterr().err)[-1] == "6/6"


async def test_llama_index_async_batch_honours_show_progress(
    standin: StandInServer, capsys: pytest.CaptureFixture[str]
) -> None:
    model = llama_index(standin)
    assert await model.aget_text_embedding_batch(TEXTS, show_progress=True) == expected(TEXTS)
    assert counts_shown(capsys.readouterr().err)[-1] == "6/6"


def test_core_bar_counts_with_concurrent_batches(capsys: pytest.CaptureFixture[str]) -> None:
    texts = [f"text {i}" for i in range(40)]
    with StandInServer(latency=0.02) as server:
        assert make(server, batch_size=4, max_concurrency=4).embed(texts, show_progress=True)
    shown = counts_shown(capsys.readouterr().err)
    assert shown[-1] == "40/40"
    assert all(int(count.split("/")[0]) % 4 == 0 for count in shown)


def test_no_output_by_default(standin: StandInServer, capsys: pytest.CaptureFixture[str]) -> None:
    langchain(standin).embed_documents(TEXTS)
    asyncio.run(langchain(standin).aembed_documents(TEXTS))
    model = llama_index(standin)
    model.get_text_embedding_batch(TEXTS)
    asyncio.run(model.aget_text_embedding_batch(TEXTS))
    make(standin).embed(TEXTS)
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == ""
