"""Throughput side by side: aimlapi-bge against the raw openai SDK and the usual integrations.

Starts the stand-in AI/ML API in a separate process, behaving like a rate-limited service
(latency per request, at most ``--max-batch`` texts per request, at most ``--max-in-flight``
requests at once, 429 with ``Retry-After`` beyond), and embeds the same N texts with:

1. the optimum baseline: raw ``openai.AsyncOpenAI().embeddings.create``, batches of B, at most
   K in flight (``asyncio.Semaphore``);
2. aimlapi-bge: LangChain ``AIMLBGEEmbeddings`` and LlamaIndex ``AIMLBGEEmbedding``, async
   and sync;
3. peers: ``langchain_openai.OpenAIEmbeddings`` and LlamaIndex ``OpenAILikeEmbedding``, at
   batch size B and at their own defaults; ``langchain_aimlapi.AimlapiEmbeddings`` when it is
   installed.

Every path runs ``--rounds`` times, interleaved; the table shows medians and ratios, and every
result is checked against the stand-in's vectors. Then: the per-call overhead of
``embed_query`` against a zero-latency stand-in versus a raw SDK call (p50), the import time of
each adapter module, and the memory held while embedding ``--memory-texts`` short texts.

Run: ``python bench/throughput.py`` (or ``make bench``); ``--quick`` for a smoke run,
``--help`` for the knobs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import openai

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the stand-in is test support
from support.standin import standin_vector

MODEL = "BAAI/bge-base-en-v1.5"
KEY = "bench-key"  # the key bench/standin_server.py requires
SERVER_SCRIPT = Path(__file__).with_name("standin_server.py")
Vectors = list[list[float]]
Run = Callable[[list[str]], Awaitable[Vectors]]

_VOCABULARY = (
    "river bank loan music festival paris france city data model vector search query "
    "passage answer index memory network server client batch request latency energy "
    "solar wind power grid storage market price history science ocean forest mountain "
    "road"
)


def make_texts(count: int) -> list[str]:
    """Distinct short passages (12 to 30 words), the same for every client."""
    rng = random.Random(5)
    words = _VOCABULARY.split()
    return [
        f"Passage {i}: " + " ".join(rng.choices(words, k=rng.randint(12, 30))) + "."
        for i in range(count)
    ]


# --- the server process ---------------------------------------------------------------------


class ServerProcess:
    """``bench/standin_server.py`` in a child process; ``stats()`` reads and resets its counters."""

    def __init__(self, **options: object) -> None:
        command = [sys.executable, str(SERVER_SCRIPT)]
        for name, value in options.items():
            if value is not None:
                command += [f"--{name.replace('_', '-')}", str(value)]
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._process.stdout is not None
        self.url = self._process.stdout.readline().strip()
        if not self.url:
            raise RuntimeError("the stand-in server did not start")

    def stats(self) -> dict[str, int]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write("stats\n")
        self._process.stdin.flush()
        stats: dict[str, int] = json.loads(self._process.stdout.readline())
        return stats

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=10)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the clients --------------------------------------------------------------------------


@dataclass
class Candidate:
    """One client path: how to build it, what to compare it with."""

    name: str
    run: Run
    group: str  # "floor", "baseline", "ours" or "peer"
    mode: str  # "async" or "sync"
    family: str  # "core", "langchain" or "llama-index"
    rounds: int | None = None  # None: --rounds
    times: list[float] = field(default_factory=list)
    stats: list[dict[str, int]] = field(default_factory=list)
    error: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None


def _sync(function: Callable[[list[str]], Vectors]) -> Run:
    async def run(texts: list[str]) -> Vectors:
        return function(texts)

    return run


def baseline_path(url: str, batch: int, concurrency: int) -> Run:
    """Raw AsyncOpenAI: batches of ``batch``, at most ``concurrency`` in flight."""
    clients: dict[asyncio.AbstractEventLoop, openai.AsyncOpenAI] = {}

    async def run(texts: list[str]) -> Vectors:
        loop = asyncio.get_running_loop()
        client = clients.setdefault(loop, openai.AsyncOpenAI(base_url=url, api_key=KEY))
        semaphore = asyncio.Semaphore(concurrency)

        async def one(chunk: list[str]) -> Vectors:
            async with semaphore:
                response = await client.embeddings.create(model=MODEL, input=chunk)
            return [item.embedding for item in sorted(response.data, key=lambda d: d.index)]

        chunks = [texts[i : i + batch] for i in range(0, len(texts), batch)]
        parts = await asyncio.gather(*(one(chunk) for chunk in chunks))
        return [vector for part in parts for vector in part]

    return run


def transport_floor_path(url: str, batch: int, concurrency: int) -> Run:
    """Raw HTTP (httpx2, the SDK's transport), same batches and bound, bodies read but never
    decoded: what moving the bytes costs here, a floor no client can beat."""
    clients: dict[asyncio.AbstractEventLoop, httpx2.AsyncClient] = {}

    async def run(texts: list[str]) -> Vectors:
        loop = asyncio.get_running_loop()
        client = clients.setdefault(
            loop,
            httpx2.AsyncClient(
                base_url=url, headers={"authorization": f"Bearer {KEY}"}, timeout=60
            ),
        )
        semaphore = asyncio.Semaphore(concurrency)

        async def one(chunk: list[str]) -> None:
            async with semaphore:
                response = await client.post("/embeddings", json={"model": MODEL, "input": chunk})
            response.raise_for_status()

        await asyncio.gather(*(one(texts[i : i + batch]) for i in range(0, len(texts), batch)))
        return []

    return run


def our_paths(url: str, batch: int, concurrency: int) -> list[Candidate]:
    from langchain_aimlapi_bge import AIMLBGEEmbeddings
    from llama_index_aimlapi_bge import AIMLBGEEmbedding

    common: dict[str, Any] = {"base_url": url, "api_key": KEY, "max_concurrency": concurrency}
    lc_async = AIMLBGEEmbeddings(batch_size=batch, **common)
    lc_sync = AIMLBGEEmbeddings(batch_size=batch, **common)
    li_async = AIMLBGEEmbedding(embed_batch_size=batch, **common)
    li_sync = AIMLBGEEmbedding(embed_batch_size=batch, **common)
    return [
        Candidate("aimlapi-bge LangChain", lc_async.aembed_documents, "ours", "async", "langchain"),
        Candidate(
            "aimlapi-bge LangChain", _sync(lc_sync.embed_documents), "ours", "sync", "langchain"
        ),
        Candidate(
            "aimlapi-bge LlamaIndex",
            li_async.aget_text_embedding_batch,
            "ours",
            "async",
            "llama-index",
        ),
        Candidate(
            "aimlapi-bge LlamaIndex",
            _sync(li_sync.get_text_embedding_batch),
            "ours",
            "sync",
            "llama-index",
        ),
    ]


def peer_paths(url: str, batch: int, defaults_rounds: int) -> tuple[list[Candidate], list[str]]:
    """The other integrations (at batch size ``batch`` and at their defaults) and notes."""
    paths: list[Candidate] = []
    notes: list[str] = []
    try:
        from langchain_openai import OpenAIEmbeddings
    except ImportError:
        notes.append("langchain-openai is not installed (pip install -e '.[bench]').")
    else:
        notes.append(
            "langchain-openai at its defaults (check_embedding_ctx_length=True) tokenizes with"
            " tiktoken, which downloads its cl100k_base table on first use (this machine has no"
            " internet), and then sends token-id arrays, which the AI/ML API does not accept;"
            " its default chunk_size=1000 is also above the server's item cap."
        )
        common: dict[str, Any] = {"model": MODEL, "base_url": url, "api_key": KEY}
        same = {"check_embedding_ctx_length": False, "chunk_size": batch}
        for label, kwargs, rounds in (
            (f"langchain-openai chunk_size={batch}", same, None),
            ("langchain-openai defaults", {}, defaults_rounds),
        ):
            paths.append(
                Candidate(
                    label,
                    OpenAIEmbeddings(**common, **kwargs).aembed_documents,
                    "peer",
                    "async",
                    "langchain",
                    rounds,
                )
            )
            paths.append(
                Candidate(
                    label,
                    _sync(OpenAIEmbeddings(**common, **kwargs).embed_documents),
                    "peer",
                    "sync",
                    "langchain",
                    rounds,
                )
            )
    try:
        from llama_index.embeddings.openai_like import OpenAILikeEmbedding
    except ImportError:
        notes.append("llama-index-embeddings-openai-like is not installed.")
    else:
        like: dict[str, Any] = {"model_name": MODEL, "api_base": url, "api_key": KEY}
        for label, extra, rounds in (
            (f"OpenAILikeEmbedding embed_batch_size={batch}", {"embed_batch_size": batch}, None),
            ("OpenAILikeEmbedding defaults", {}, defaults_rounds),
        ):
            paths.append(
                Candidate(
                    label,
                    OpenAILikeEmbedding(**like, **extra).aget_text_embedding_batch,
                    "peer",
                    "async",
                    "llama-index",
                    rounds,
                )
            )
            paths.append(
                Candidate(
                    label,
                    _sync(OpenAILikeEmbedding(**like, **extra).get_text_embedding_batch),
                    "peer",
                    "sync",
                    "llama-index",
                    rounds,
                )
            )
    try:
        from langchain_aimlapi import AimlapiEmbeddings  # type: ignore[import-not-found]
    except ImportError:
        notes.append(
            "langchain-aimlapi (AimlapiEmbeddings) is not measured: it requires langchain-core"
            " ^0.3 (<0.4), so it cannot be installed alongside langchain-core 1.x. Its"
            " embed_documents sends one request per text, one after another, so N texts take"
            " at least N × the latency."
        )
    else:
        aimlapi = AimlapiEmbeddings(model=MODEL, base_url=url, api_key=KEY)
        paths.append(
            Candidate("langchain-aimlapi", aimlapi.aembed_documents, "peer", "async", "langchain")
        )
        paths.append(
            Candidate(
                "langchain-aimlapi", _sync(aimlapi.embed_documents), "peer", "sync", "langchain"
            )
        )
    return paths, notes


# --- measuring ------------------------------------------------------------------------------


def check_vectors(vectors: Sequence[Sequence[float]], texts: list[str], dimension: int) -> None:
    """Raise ValueError unless the result is complete and matches the stand-in."""
    if len(vectors) != len(texts):
        raise ValueError(f"{len(vectors)} vectors for {len(texts)} texts")
    for position in {0, len(texts) // 3, len(texts) // 2, len(texts) - 1}:
        expected = standin_vector(texts[position], dimension)
        if not np.allclose(vectors[position], expected, atol=1e-6):
            raise ValueError(f"wrong vector at position {position}")


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


async def measure_rounds(
    paths: list[Candidate],
    texts: list[str],
    server: ServerProcess,
    rounds: int,
    batch: int,
    dimension: int,
) -> None:
    """Run every path ``rounds`` times (interleaved), recording times and server counters.

    Each path first embeds one batch untimed, so no round pays for imports, client setup or
    a first connection.
    """
    for path in paths:
        try:
            await path.run(texts[:batch])
        except Exception as exc:
            path.error = f"{_describe(exc)} (warm-up)"
    server.stats()
    for round_ in range(rounds):
        for path in paths:
            if path.error is not None or round_ >= (path.rounds or rounds):
                continue
            gc.collect()
            server.stats()
            start = time.perf_counter()
            try:
                vectors = await path.run(texts)
                elapsed = time.perf_counter() - start
                if path.group != "floor":
                    check_vectors(vectors, texts, dimension)
            except Exception as exc:
                path.error = f"{_describe(exc)} (after {time.perf_counter() - start:.1f} s)"
                path.stats.append(server.stats())
                continue
            del vectors
            path.times.append(elapsed)
            path.stats.append(server.stats())
            print(f"  round {round_ + 1}: {path.name} {path.mode}: {elapsed:.2f} s", flush=True)


async def query_overhead(url: str, calls: int) -> list[tuple[str, float]]:
    """p50 seconds per call of one query, raw SDK versus ours, sync and async."""
    from langchain_aimlapi_bge import AIMLBGEEmbeddings
    from llama_index_aimlapi_bge import AIMLBGEEmbedding

    sync_client = openai.OpenAI(base_url=url, api_key=KEY)
    async_client = openai.AsyncOpenAI(base_url=url, api_key=KEY)
    lc = AIMLBGEEmbeddings(base_url=url, api_key=KEY)
    li = AIMLBGEEmbedding(base_url=url, api_key=KEY)
    query = "what is the capital of France?"

    async def raw_async() -> object:
        return (await async_client.embeddings.create(model=MODEL, input=[query])).data[0].embedding

    async def raw_sync() -> object:
        return sync_client.embeddings.create(model=MODEL, input=[query]).data[0].embedding

    async def lc_sync() -> object:
        return lc.embed_query(query)

    async def li_sync() -> object:
        return li.get_query_embedding(query)

    candidates: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("raw openai.OpenAI embeddings.create (sync)", raw_sync),
        ("aimlapi-bge LangChain embed_query", lc_sync),
        ("aimlapi-bge LlamaIndex get_query_embedding", li_sync),
        ("raw openai.AsyncOpenAI embeddings.create", raw_async),
        ("aimlapi-bge LangChain aembed_query", lambda: lc.aembed_query(query)),
        ("aimlapi-bge LlamaIndex aget_query_embedding", lambda: li.aget_query_embedding(query)),
    ]
    samples: dict[str, list[float]] = {name: [] for name, _ in candidates}
    for _ in range(20):  # warm up connections and caches
        for _, call in candidates:
            await call()
    for _ in range(calls):  # interleaved, so drift hits every candidate alike
        for name, call in candidates:
            start = time.perf_counter()
            await call()
            samples[name].append(time.perf_counter() - start)
    await async_client.close()
    sync_client.close()
    return [(name, statistics.median(samples[name])) for name, _ in candidates]


def import_times(modules: Sequence[str], repeats: int = 3) -> list[tuple[str, float | None]]:
    """Seconds to import each module in a fresh interpreter (``-X importtime``, best of N)."""
    results: list[tuple[str, float | None]] = []
    for module in modules:
        best: float | None = None
        for _ in range(repeats):
            done = subprocess.run(
                [sys.executable, "-X", "importtime", "-c", f"import {module}"],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                break
            for line in done.stderr.splitlines():
                parts = [part.strip() for part in line.split("|")]
                if len(parts) == 3 and parts[2] == module:
                    seconds = int(parts[1]) / 1e6
                    best = seconds if best is None else min(best, seconds)
        results.append((module, best))
    return results


@dataclass
class MemoryResult:
    texts: int
    dimension: int
    mode: str
    seconds: float
    held: int  # bytes still allocated after the call: the result
    peak: int  # bytes at the peak during the call


def memory_model(dimension: int) -> str:
    return "BAAI/bge-base-en-v1.5" if dimension == 768 else f"bench/embed-{dimension}"


def measure_memory(url: str, texts: list[str], dimension: int) -> list[MemoryResult]:
    """Traced memory while embedding ``texts``: what the result holds versus the peak."""
    from aimlapi_bge import Embedder, resolve_config

    results: list[MemoryResult] = []
    # bge-base-en-v1.5 answers 768 values; a smaller stand-in dimension serves another model.
    embedder = Embedder(resolve_config(base_url=url, api_key=KEY, model=memory_model(dimension)))
    embedder.embed(texts)  # the server computes every vector once, outside the measurement
    for mode in ("sync", "async"):
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        start = time.perf_counter()
        vectors = embedder.embed(texts) if mode == "sync" else asyncio.run(embedder.aembed(texts))
        seconds = time.perf_counter() - start
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        check_vectors(vectors, texts, dimension)
        del vectors
        results.append(
            MemoryResult(len(texts), dimension, mode, seconds, current - before, peak - before)
        )
    return results


# --- reporting ------------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = []
    for package in ("openai", "langchain-openai", "llama-index-core", "orjson"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions.append(f"{package} {metadata.version(package)}")
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()},"
        f" {platform.system()}; {', '.join(versions)}"
    )


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.1f}×" if a and b else "–"


def results_table(paths: list[Candidate], count: int) -> list[str]:
    """The main table, then one footnote per failing path."""
    baseline = next(p.median for p in paths if p.group == "baseline")
    lines = [
        "| Client | Path | Median (s) | Texts/s | Speed-up vs raw SDK | Requests | 429s |"
        " Peak in flight |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    footnotes: list[str] = []
    for path in paths:
        stats = path.stats[-1] if path.stats else {}
        counters = (
            f"{stats.get('requests', '–')} | {stats.get('rejected', '–')} |"
            f" {stats.get('peak_in_flight', '–')}"
        )
        if path.error is not None:
            footnotes.append(f"{len(footnotes) + 1}. {path.name}, {path.mode}: {path.error}")
        median = path.median
        if median is None:
            lines.append(
                f"| {path.name} | {path.mode} | fails ({len(footnotes)}) | | | {counters} |"
            )
            continue
        runs = f" ({len(path.times)} run{'s' if len(path.times) > 1 else ''})"
        lines.append(
            f"| {path.name} | {path.mode} | {median:.2f}{runs if path.rounds else ''} |"
            f" {count / median:,.0f} | {_ratio(baseline, median)} | {counters} |"
        )
    return [*lines, "", *footnotes] if footnotes else lines


def target_rows(
    paths: list[Candidate], overhead: list[tuple[str, float]]
) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for every target of the issue."""
    rows: list[tuple[str, str, bool | None]] = []
    baseline = next(p.median for p in paths if p.group == "baseline")
    ours = {(p.family, p.mode): p for p in paths if p.group == "ours"}
    for (_, mode), path in ours.items():
        if mode == "async" and path.median and baseline:
            speedup = baseline / path.median
            rows.append((f"{path.name} async ≥ 3× raw SDK", f"{speedup:.1f}×", speedup >= 3))
    for family in ("langchain", "llama-index"):
        a, s = ours.get((family, "async")), ours.get((family, "sync"))
        if a and s and a.median and s.median:
            ratio = s.median / a.median
            rows.append((f"{a.name} sync ≤ 1.15× async", f"{ratio:.2f}×", ratio <= 1.15))
    wanted = {"langchain-openai": 5.0, "OpenAILikeEmbedding": 2.0}
    for path in paths:
        if path.group != "peer":
            continue
        need = next((v for k, v in wanted.items() if path.name.startswith(k)), None)
        mine = ours.get((path.family, path.mode))
        if need is None or mine is None or not mine.median:
            continue
        target = f"{mine.name} {path.mode} ≥ {need:g}× {path.name}"
        if path.median is None:
            rows.append((target, "peer fails (see table)", None))
        else:
            ratio = path.median / mine.median
            rows.append((target, f"{ratio:.1f}×", ratio >= need))
    p50 = dict(overhead)
    for raw, mine_names in (
        (
            "raw openai.OpenAI embeddings.create (sync)",
            ("aimlapi-bge LangChain embed_query", "aimlapi-bge LlamaIndex get_query_embedding"),
        ),
        (
            "raw openai.AsyncOpenAI embeddings.create",
            ("aimlapi-bge LangChain aembed_query", "aimlapi-bge LlamaIndex aget_query_embedding"),
        ),
    ):
        for name in mine_names:
            if raw in p50 and name in p50:
                ratio = p50[name] / p50[raw]
                rows.append((f"{name} ≤ 1.2× a raw SDK call", f"{ratio:.2f}×", ratio <= 1.2))
    return rows


def report(
    args: argparse.Namespace,
    paths: list[Candidate],
    notes: list[str],
    overhead: list[tuple[str, float]],
    imports: list[tuple[str, float | None]],
    memory: list[MemoryResult],
) -> str:
    batches = -(-args.texts // args.batch_size)
    floor = -(-batches // args.concurrency) * args.latency
    out = [
        f"Machine: {machine()}.",
        "",
        f"Settings: {args.texts:,} texts (12-30 words each), batch size B={args.batch_size},"
        f" K={args.concurrency} in flight; stand-in server in its own process: {args.latency * 1000:g} ms"
        f" per request, at most {args.max_batch} texts per request, at most {args.max_in_flight}"
        f" requests in flight (429 with Retry-After: {args.retry_after:g} s beyond), 768-dimensional"
        f" float vectors as JSON; {args.rounds} interleaved rounds, medians. Latency floor"
        f" ⌈{batches}/{args.concurrency}⌉ × {args.latency:g} s = {floor:.2f} s.",
        "",
        *results_table(paths, args.texts),
        "",
    ]
    out += [f"- {note}" for note in notes]
    if notes:
        out.append("")
    if overhead:
        out += [
            f"Per-call overhead, one query against a zero-latency stand-in (p50 of {args.calls} calls):",
            "",
            "| Call | p50 (ms) |",
            "|---|---:|",
            *(f"| {name} | {seconds * 1000:.2f} |" for name, seconds in overhead),
            "",
        ]
    if imports:
        out += [
            "Import time in a fresh interpreter (`python -X importtime`, best of 3):",
            "",
            "| Module | Import (ms) |",
            "|---|---:|",
            *(
                f"| `{module}` | {'not installed' if s is None else f'{s * 1000:.0f}'} |"
                for module, s in imports
            ),
            "",
        ]
    if memory:
        out += [
            "Memory (tracemalloc) while embedding short texts against a zero-latency stand-in:",
            "",
            "| Texts | Dim | Path | Time (s) | Result held (MB) | Peak (MB) | Peak − result (MB) |",
            "|---:|---:|---|---:|---:|---:|---:|",
            *(
                f"| {m.texts:,} | {m.dimension} | {m.mode} | {m.seconds:.1f} | {m.held / 1e6:.1f}"
                f" | {m.peak / 1e6:.1f} | {(m.peak - m.held) / 1e6:.1f} |"
                for m in memory
            ),
            "",
        ]
    rows = target_rows(paths, overhead)
    if rows:
        out += ["Targets:", "", "| Target | Measured | Met |", "|---|---:|:---:|"]
        out += [
            f"| {target} | {measured} | {'–' if met is None else ('yes' if met else '**no**')} |"
            for target, measured, met in rows
        ]
        out.append("")
    return "\n".join(out)


# --- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Embedding throughput side by side against a rate-limited stand-in API."
    )
    parser.add_argument("--texts", "-n", type=int, default=4000, help="N texts (4000)")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per request (0.2)")
    parser.add_argument("--batch-size", "-b", type=int, default=128, help="B per request (128)")
    parser.add_argument("--concurrency", "-k", type=int, default=8, help="K in flight (8)")
    parser.add_argument("--max-batch", type=int, default=128, help="server's batch cap (128)")
    parser.add_argument("--max-in-flight", type=int, default=8, help="server's 429 cap (8)")
    parser.add_argument("--retry-after", type=float, default=1.0, help="Retry-After, s (1)")
    parser.add_argument("--rounds", "-r", type=int, default=3, help="rounds per path (3)")
    parser.add_argument(
        "--defaults-rounds", type=int, default=1, help="rounds for peers at defaults (1)"
    )
    parser.add_argument("--calls", type=int, default=200, help="calls for the overhead p50")
    parser.add_argument("--memory-texts", type=int, default=100_000, help="0 skips memory")
    parser.add_argument("--memory-dimension", type=int, default=64)
    parser.add_argument("--no-peers", action="store_true", help="skip the other integrations")
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--output", type=Path, help="also write the markdown report here")
    args = parser.parse_args(argv)
    if args.quick:
        args.texts, args.rounds, args.calls = min(args.texts, 1000), 1, 50
        args.memory_texts = min(args.memory_texts, 10_000)
    return args


async def throughput(
    args: argparse.Namespace, server: ServerProcess
) -> tuple[list[Candidate], list[str]]:
    texts = make_texts(args.texts)
    paths = [
        Candidate(
            "transport floor: raw httpx, bodies not decoded",
            transport_floor_path(server.url, args.batch_size, args.concurrency),
            "floor",
            "async",
            "core",
        ),
        Candidate(
            f"raw openai.AsyncOpenAI, B={args.batch_size}, K={args.concurrency}",
            baseline_path(server.url, args.batch_size, args.concurrency),
            "baseline",
            "async",
            "core",
        ),
        *our_paths(server.url, args.batch_size, args.concurrency),
    ]
    notes: list[str] = []
    if not args.no_peers:
        peers, notes = peer_paths(server.url, args.batch_size, args.defaults_rounds)
        paths += peers
    print("warming the server's vector cache ...", flush=True)
    await paths[0].run(texts)  # the transport floor: no decoding, quickest
    await measure_rounds(paths, texts, server, args.rounds, args.batch_size, 768)
    return paths, notes


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.getLogger("llama_index").setLevel(logging.ERROR)  # one line per retried 429
    print(f"# aimlapi-bge throughput: {machine()}", flush=True)
    with ServerProcess(
        latency=args.latency,
        max_batch=args.max_batch,
        max_in_flight=args.max_in_flight,
        retry_after=args.retry_after,
    ) as server:
        paths, notes = asyncio.run(throughput(args, server))
    with ServerProcess(latency=0) as fast:
        print("per-call overhead ...", flush=True)
        overhead = asyncio.run(query_overhead(fast.url, args.calls))
    memory: list[MemoryResult] = []
    if args.memory_texts:
        print("memory ...", flush=True)
        with ServerProcess(
            latency=0, dimension=args.memory_dimension, model=memory_model(args.memory_dimension)
        ) as small:
            memory = measure_memory(small.url, make_texts(args.memory_texts), args.memory_dimension)
    print("import times ...", flush=True)
    imports = import_times(
        [
            "aimlapi_bge",
            "langchain_aimlapi_bge",
            "llama_index_aimlapi_bge",
            "openai",
            "langchain_openai",
            "llama_index.embeddings.openai_like",
        ]
    )
    text = report(args, paths, notes, overhead, imports, memory)
    print()
    print(text)
    if args.output is not None:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
