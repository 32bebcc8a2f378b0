"""Ray Data: ``map_batches(BGEEmbedBatches)`` on a local two-CPU Ray instance (issue 12).

One Ray instance serves the whole module (on 127.0.0.1 only, no dashboard, no usage stats);
its actors are separate processes that reach the stand-in, running in this process, over
loopback.
"""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Read when ray is imported: no usage reports, and a node on 127.0.0.1 instead of the address of
# the network interface (the single-machine mode Ray uses on macOS and Windows).
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
import numpy as np
import pyarrow.parquet as pq
import ray
import ray.data
from pydantic import SecretStr

from aimlapi_bge import ServiceError
from aimlapi_bge.ray import BGEEmbedBatches, skip_written, total_usage, written_ids
from support.helpers import SECRET, expected
from support.standin import StandInServer, count_tokens
from support.tiny_model import reference_vectors

pytestmark = pytest.mark.ray

# Actors mostly wait on HTTP: a quarter CPU each leaves CPUs for the read and write tasks.
ACTOR_CPUS = 0.25
ROOT = Path(__file__).resolve().parents[2]
ROWS = [{"id": i, "text": f"passage {i} about topic {i % 37}"} for i in range(2000)]
# What Ray's own processes (and through them the actors) start with.
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "HF_HUB_OFFLINE": "1",
}


@pytest.fixture(scope="module")
def ray_context() -> Iterator[Any]:
    saved = {name: os.environ.get(name) for name in RAY_ENV}
    os.environ.update(RAY_ENV)
    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    data_context = ray.data.DataContext.get_current()
    data_context.enable_progress_bars = False
    data_context.wait_for_min_actors_s = 120  # every actor is up before batches are handed out
    try:
        assert context.address_info["node_ip_address"] == "127.0.0.1"
        yield context
    finally:
        ray.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def embed(
    rows: list[dict[str, Any]], *, actors: int = 2, batch_size: int = 250, **settings: Any
) -> list[dict[str, Any]]:
    """Rows through map_batches(BGEEmbedBatches), as taken back by the driver."""
    map_args = {"num_cpus": ACTOR_CPUS, **(settings.pop("map_args", None) or {})}
    preserve_order = settings.pop("preserve_order", False)
    options = ray.data.DataContext.get_current().execution_options
    kept, options.preserve_order = options.preserve_order, preserve_order
    try:
        dataset = ray.data.from_items(rows).map_batches(
            BGEEmbedBatches,
            fn_constructor_kwargs=settings,
            compute=ray.data.ActorPoolStrategy(size=actors),
            batch_size=batch_size,
            **map_args,
        )
        return dataset.take_all()
    finally:
        options.preserve_order = kept


def by_id(rows: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    table = {row["id"]: row for row in rows}
    assert len(table) == len(rows), "an id was returned twice"
    return table


def assert_exact(rows: list[dict[str, Any]], source: list[dict[str, Any]]) -> None:
    table = by_id(rows)
    assert sorted(table) == sorted(row["id"] for row in source)
    texts = [row["text"] for row in source]
    want = np.asarray(expected(texts), dtype=np.float32)
    got = np.stack([np.asarray(table[row["id"]]["embedding"]) for row in source])
    assert got.dtype == np.float32 and got.shape == (len(source), 768)
    np.testing.assert_array_equal(got, want)


def test_2000_rows_through_two_actors_exact_bounded_and_counted(ray_context: Any) -> None:
    with StandInServer(api_key=SECRET, latency=0.01) as server:
        rows = embed(
            ROWS,
            api_key=SecretStr(SECRET),
            base_url=server.url,
            batch_size=20,
            max_concurrency=3,
            usage_columns=True,
            preserve_order=True,
        )
    assert_exact(rows, ROWS)
    # With Ray's preserve_order, rows come back exactly as they went in: nothing inside a batch
    # (or between batches) was reordered by the actors.
    assert [row["id"] for row in rows] == [row["id"] for row in ROWS]
    assert server.peak_in_flight <= 2 * 3
    assert server.rejected_in_flight == 0
    requests = server.embedding_requests
    assert all(len(r.body["input"]) <= 20 for r in requests)
    assert sorted(server.inputs_seen) == sorted(row["text"] for row in ROWS)
    usage = total_usage(ray.data.from_items(rows))
    assert usage.requests == len(requests)
    assert usage.texts == len(ROWS)
    assert usage.prompt_tokens == sum(count_tokens(row["text"]) for row in ROWS)
    assert usage.credits_used == sum(server.credits_for(r.body["input"]) for r in requests)


def test_the_explicit_key_never_reaches_rays_logs(ray_context: Any) -> None:
    # The test above ran actors with SECRET as api_key; this one adds a failing run, whose
    # traceback Ray does log. Neither may leave the key in the session's log files.
    failing = StandInServer(api_key=SECRET, fail_on_text={ROWS[3]["text"]: 400})
    with failing as server, pytest.raises(Exception, match="Injected fault 400"):
        embed(ROWS[:10], api_key=SecretStr(SECRET), base_url=server.url, max_retries=0)
    logs = Path(ray_context.address_info["session_dir"]) / "logs"
    files = {path: path.read_bytes() for path in logs.rglob("*") if path.is_file()}
    assert any(b"Injected fault 400" in content for content in files.values()), "no log read"
    assert [str(path) for path, content in files.items() if SECRET.encode() in content] == []
    assert SECRET not in repr(BGEEmbedBatches(api_key=SECRET, base_url="http://127.0.0.1:9/v1"))


def test_a_batch_that_fails_for_good_raises_and_a_rerun_writes_each_id_once(
    ray_context: Any, tmp_path: Path
) -> None:
    source = ROWS[:400]
    out = tmp_path / "vectors"
    doomed = source[333]["text"]
    with StandInServer(fail_on_text={doomed: 500}) as server:
        dataset = ray.data.from_items(source, override_num_blocks=4).map_batches(
            BGEEmbedBatches,
            fn_constructor_kwargs={
                "base_url": server.url,
                "api_key": server.api_key,
                "max_retries": 0,
            },
            compute=ray.data.ActorPoolStrategy(size=2),
            batch_size=100,
            num_cpus=ACTOR_CPUS,
        )
        # The driver gets Ray's wrapper; the core's error, type and message, is in its text.
        with pytest.raises(Exception, match=r"ServiceError: The server failed with 500"):
            dataset.write_parquet(str(out))
        before = written_ids(out)
        assert source[333]["id"] not in before and len(before) < len(source)

        server.settings.fail_on_text.clear()
        skip_written(ray.data.from_items(source), out).map_batches(
            BGEEmbedBatches,
            fn_constructor_kwargs={"base_url": server.url, "api_key": server.api_key},
            compute=ray.data.ActorPoolStrategy(size=2),
            batch_size=100,
            num_cpus=ACTOR_CPUS,
        ).write_parquet(str(out))
    table = pq.read_table(out).to_pylist()
    assert_exact(table, source)
    resent = [text for text in server.inputs_seen if text != doomed]
    assert len(resent) - len(set(resent)) <= len(source) - len(before)


def test_ray_retries_a_failed_batch_when_told_to(ray_context: Any) -> None:
    source = ROWS[:300]
    data_context = ray.data.DataContext.get_current()
    data_context.actor_task_retry_on_errors = [ServiceError]
    try:
        with StandInServer() as server:
            server.inject(503)  # the first request fails; the core does not retry (max_retries=0)
            rows = embed(
                source,
                base_url=server.url,
                api_key=server.api_key,
                max_retries=0,
                map_args={"max_task_retries": 2},
            )
    finally:
        data_context.actor_task_retry_on_errors = False
    assert_exact(rows, source)


def test_base_urls_give_each_actor_its_own_replica(ray_context: Any) -> None:
    source = ROWS[:800]
    with StandInServer(api_key=None) as first, StandInServer(api_key=None) as second:
        rows = embed(source, base_urls=[first.url, second.url], batch_size=100)
    assert_exact(rows, source)
    assert first.embedding_requests and second.embedding_requests
    assert sorted(first.inputs_seen + second.inputs_seen) == sorted(r["text"] for r in source)


def test_pandas_batches_and_queries(ray_context: Any) -> None:
    source = ROWS[:50]
    with StandInServer() as server:
        dataset = ray.data.from_items(source).map_batches(
            BGEEmbedBatches,
            fn_constructor_kwargs={
                "base_url": server.url,
                "api_key": server.api_key,
                "as_queries": True,
                "query_instruction": "Q: ",
                "text_column": "text",
                "output_column": "vector",
            },
            compute=ray.data.ActorPoolStrategy(size=1),
            batch_size=16,
            num_cpus=ACTOR_CPUS,
            batch_format="pandas",
        )
        rows = dataset.take_all()
    assert [row["id"] for row in sorted(rows, key=lambda r: r["id"])] == [r["id"] for r in source]
    table = by_id(rows)
    got = np.stack([np.asarray(table[r["id"]]["vector"]) for r in source])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(
        got, np.asarray(expected(["Q: " + r["text"] for r in source]), np.float32)
    )


def test_the_local_backend_runs_through_map_batches(ray_context: Any, tiny_model_dir: Path) -> None:
    source = [
        {"id": i, "text": t}
        for i, t in enumerate(
            ["Laura is a DJ.", "the cat sat on the mat", "", "paris in france"] * 5
        )
    ]
    rows = embed(
        source, actors=1, batch_size=8, backend="local", local_model_path=str(tiny_model_dir)
    )
    table = by_id(rows)
    got = np.stack([np.asarray(table[r["id"]]["embedding"]) for r in source])
    np.testing.assert_allclose(
        got, reference_vectors(tiny_model_dir, [r["text"] for r in source]), atol=1e-5
    )


def test_a_misspelt_setting_fails_the_actor_with_a_clear_error(ray_context: Any) -> None:
    with pytest.raises(
        Exception, match=r"unknown setting 'batchsize' \(did you mean 'batch_size'\?\)"
    ):
        embed(ROWS[:10], actors=1, base_url="http://127.0.0.1:9/v1", batchsize=10)


def test_the_example_runs_against_the_cluster_and_resumes(
    ray_context: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(row) + "\n" for row in ROWS[:300]))
    out = tmp_path / "out"
    with StandInServer() as server:
        # A second driver process joins the cluster (--address); the actors get the endpoint
        # and key from it, not from their own environment.
        env = {
            **os.environ,
            "AIMLAPI_BASE_URL": server.url,
            "AIMLAPI_API_KEY": server.api_key or "",
        }
        args = ["--input", str(corpus), "--output", str(out)]
        address = ["--address", ray_context.address_info["address"]]
        command = [sys.executable, str(ROOT / "examples" / "ray_embed.py"), *address, *args]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert "300 vectors in" in done.stdout
        assert "requests" in done.stdout and server.embedding_requests
        first_requests = len(server.embedding_requests)

        # A rerun (here in this process, on the running cluster) finds every id written.
        monkeypatch.setenv("AIMLAPI_BASE_URL", server.url)
        monkeypatch.setenv("AIMLAPI_API_KEY", server.api_key or "")
        example = runpy.run_path(str(ROOT / "examples" / "ray_embed.py"))
        assert example["main"](args) == 0
        assert len(server.embedding_requests) == first_requests
    assert_exact(pq.read_table(out).to_pylist(), ROWS[:300])


def test_llama_index_ray_ingestion_pipeline_embeds_every_node(ray_context: Any) -> None:
    from llama_index.core import Document
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.ingestion.ray import RayIngestionPipeline, RayTransformComponent

    from llama_index_aimlapi_bge import AIMLBGEEmbedding

    texts = [row["text"] for row in ROWS[:40]]
    actor = {
        "batch_size": 10,
        "compute": ray.data.ActorPoolStrategy(size=1),
        "num_cpus": ACTOR_CPUS,
    }
    with StandInServer(api_key=SECRET) as server:
        pipeline = RayIngestionPipeline(
            transformations=[
                RayTransformComponent(SentenceSplitter, map_batches_kwargs=actor, chunk_size=256),
                RayTransformComponent(
                    AIMLBGEEmbedding,
                    map_batches_kwargs=actor,
                    base_url=server.url,
                    api_key=SecretStr(SECRET),
                    embed_batch_size=4,
                    max_concurrency=2,
                ),
            ]
        )
        nodes = pipeline.run(documents=[Document(text=text) for text in texts])
    assert sorted(node.get_content() for node in nodes) == sorted(texts)
    for node in nodes:
        assert node.embedding == expected([node.get_content()])[0]
    assert server.peak_in_flight <= 2
