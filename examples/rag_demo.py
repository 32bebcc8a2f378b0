"""RAG quickstart: a LangChain retriever and a LlamaIndex index over examples/corpus.jsonl.

Both frameworks embed the same 20 passages with this package's adapters, then answer a few
questions with their top passages (retrieval only: no LLM, no other key needed), and the
script prints what the embeddings cost.

Which backend:
  * AIMLAPI_API_KEY set (or a base URL given): the AI/ML API (or that OpenAI-compatible
    server). If the server refuses the model (the AI/ML API lists BAAI/bge-base-en-v1.5 as
    deprecated since 2026-03-30), the adapters switch to the local model (fallback="local").
  * Otherwise: the local backend, BAAI/bge-base-en-v1.5 in-process (the first run downloads
    the model files from Hugging Face into the cache).

Run:  make demo        or   .venv/bin/python examples/rag_demo.py --help
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from langchain_core.vectorstores import InMemoryVectorStore
from llama_index.core import VectorStoreIndex
from llama_index.core.schema import TextNode

from aimlapi_bge import DEFAULT_BASE_URL, DEFAULT_MODEL, AIMLAPIError, FallbackWarning, Usage
from langchain_aimlapi_bge import AIMLBGEEmbeddings
from llama_index_aimlapi_bge import AIMLBGEEmbedding

CORPUS = Path(__file__).with_name("corpus.jsonl")
TOP_K = 2
QUESTIONS = (
    "What volcano buried Pompeii and Herculaneum?",
    "How do honeybees tell hive mates where flowers are?",
    "How did Fleming discover penicillin?",
    "What causes ocean tides?",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="RAG quickstart over examples/corpus.jsonl with LangChain and LlamaIndex.",
        epilog="Environment: AIMLAPI_API_KEY (API mode), AIMLAPI_BASE_URL, AIMLAPI_BGE_CACHE_DIR.",
    )
    parser.add_argument(
        "--backend",
        choices=("api", "local"),
        help="force a backend (default: api when a key or base URL is set, else local)",
    )
    parser.add_argument(
        "--base-url", help="OpenAI-compatible endpoint (default: $AIMLAPI_BASE_URL)"
    )
    parser.add_argument(
        "--local-model-path", help="local backend: a directory with ONNX model + tokenizer files"
    )
    parser.add_argument("--cache-dir", help="local backend: model cache directory")
    return parser.parse_args(argv)


def choose_backend(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """Adapter settings for this run, and a sentence saying which backend they select."""
    local = {"local_model_path": args.local_model_path, "cache_dir": args.cache_dir}
    has_key = bool(os.environ.get("AIMLAPI_API_KEY") or os.environ.get("AIML_API_KEY"))
    base_url = args.base_url or os.environ.get("AIMLAPI_BASE_URL")
    backend = args.backend or ("api" if has_key or base_url else "local")
    if backend == "api":
        where = base_url or DEFAULT_BASE_URL
        key = "with the key from the environment" if has_key else "without a key"
        return (
            {"base_url": args.base_url, "fallback": "local", **local},
            f"API backend: {where} {key} (falls back to the local model if the model is refused)",
        )
    source = (
        f"model files from {args.local_model_path}"
        if args.local_model_path
        else f"{DEFAULT_MODEL} from the model cache; the first run downloads it (about 440 MB)"
        " from Hugging Face"
    )
    reason = "" if args.backend else " (no AIMLAPI_API_KEY set)"
    return {"backend": "local", **local}, f"local backend{reason}: {source}"


def load_corpus() -> list[dict[str, str]]:
    with CORPUS.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def describe_usage(name: str, usage: Usage) -> str:
    return (
        f"{name}: {usage.requests} requests, {usage.texts} texts, {usage.prompt_tokens} tokens,"
        f" {usage.credits_used:g} credits"
    )


def run(settings: dict[str, Any]) -> None:
    passages = load_corpus()
    text_of = {passage["id"]: passage["text"] for passage in passages}

    lc_embeddings = AIMLBGEEmbeddings(**settings)
    store = InMemoryVectorStore.from_texts(
        [p["text"] for p in passages],
        embedding=lc_embeddings,
        metadatas=[{"id": p["id"]} for p in passages],
    )
    lc_retriever = store.as_retriever(search_kwargs={"k": TOP_K})

    li_embeddings = AIMLBGEEmbedding(**settings)
    index = VectorStoreIndex(
        nodes=[TextNode(id_=p["id"], text=p["text"]) for p in passages],
        embed_model=li_embeddings,
    )
    li_retriever = index.as_retriever(similarity_top_k=TOP_K)

    print(f"Indexed {len(passages)} passages from {CORPUS.name} in both frameworks.\n")
    for number, question in enumerate(QUESTIONS, start=1):
        lc_ids = [doc.metadata["id"] for doc in lc_retriever.invoke(question)]
        li_hits = li_retriever.retrieve(question)
        print(f"Q{number}. {question}")
        print(f"    LangChain  retriever: {', '.join(lc_ids)}")
        print(
            "    LlamaIndex retriever: "
            + ", ".join(f"{hit.node.node_id} ({hit.score:.3f})" for hit in li_hits)
        )
        print(f"    Top passage: {text_of[lc_ids[0]]}\n")

    print(describe_usage("Usage, LangChain embeddings ", lc_embeddings.usage))
    print(describe_usage("Usage, LlamaIndex embeddings", li_embeddings.usage))
    used = {lc_embeddings.embedder.backend, li_embeddings.embedder.backend}
    print(f"Backend used: {', '.join(sorted(used))}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings, description = choose_backend(args)
    print(f"aimlapi-bge RAG demo, {description}")
    failure: Exception | None = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FallbackWarning)
        try:
            run(settings)
        except (AIMLAPIError, ImportError) as error:
            failure = error
    for warning in caught:
        if issubclass(warning.category, FallbackWarning):
            print(f"rag_demo: note: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    if failure is not None:
        message = failure.message if isinstance(failure, AIMLAPIError) else str(failure)
        print(f"rag_demo: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
