"""LlamaIndex at scale without a cluster: ``IngestionPipeline(num_workers=2)`` runs its
transformations, the embedding adapter included, in two spawned processes (issue 12). The
adapters also travel through Ray's serializer (cloudpickle) and come back working.
"""

from __future__ import annotations

from pathlib import Path

import llama_index.core
import pytest
from llama_index.core import Document
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from pydantic import SecretStr

from langchain_aimlapi_bge import AIMLBGEEmbeddings
from llama_index_aimlapi_bge import AIMLBGEEmbedding
from support.helpers import SECRET, expected
from support.standin import StandInServer

pytestmark = pytest.mark.ray

LLAMA_STATIC = Path(llama_index.core.__file__).parent / "_static"
TEXTS = [f"passage {i} about topic {i % 7}" for i in range(24)]


def test_ingestion_pipeline_with_two_worker_processes(
    standin: StandInServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The spawned workers unpickle the splitter's tiktoken encoding, which loads its file from
    # TIKTOKEN_CACHE_DIR or else downloads it: point them at the copy llama-index ships, and any
    # stray HTTP request at a dead loopback port.
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(LLAMA_STATIC / "tiktoken_cache"))
    monkeypatch.setenv("NLTK_DATA", str(LLAMA_STATIC / "nltk_cache"))
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    model = AIMLBGEEmbedding(
        base_url=standin.url, api_key=standin.api_key, embed_batch_size=5, max_concurrency=2
    )
    pipeline = IngestionPipeline(transformations=[SentenceSplitter(chunk_size=256), model])
    nodes = pipeline.run(documents=[Document(text=text) for text in TEXTS], num_workers=2)
    assert sorted(node.get_content() for node in nodes) == sorted(TEXTS)
    for node in nodes:
        assert node.embedding == expected([node.get_content()])[0]
    assert sorted(standin.inputs_seen) == sorted(TEXTS)
    assert all(len(r.body["input"]) <= 5 for r in standin.embedding_requests)


@pytest.mark.parametrize(
    "adapter",
    [AIMLBGEEmbedding, AIMLBGEEmbeddings],
)
def test_adapters_survive_cloudpickle_and_rebuild_their_client(adapter: type) -> None:
    from ray import cloudpickle

    with StandInServer(api_key=SECRET) as server:
        fields = {"embed_batch_size" if adapter is AIMLBGEEmbedding else "batch_size": 3}
        original = adapter(base_url=server.url, api_key=SecretStr(SECRET), **fields)
        embed = "get_text_embedding_batch" if adapter is AIMLBGEEmbedding else "embed_documents"
        getattr(original, embed)(TEXTS[:2])  # a used client, with open connections
        payload = cloudpickle.dumps(original)
        restored = cloudpickle.loads(payload)
        assert getattr(restored, embed)(TEXTS[:7]) == expected(TEXTS[:7])
    assert restored.api_key.get_secret_value() == SECRET
    assert SECRET not in repr(restored)
    assert all(len(r.body["input"]) <= 3 for r in server.embedding_requests)
