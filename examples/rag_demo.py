"""RAG demo: a Chroma index over examples/corpus.jsonl, queried by LangChain and LlamaIndex.

One Chroma collection holds the passages' vectors; a LangChain retriever and a LlamaIndex
retriever both answer a few questions from it (retrieval only: no LLM, no other key needed).

Indexing is incremental, with the frameworks' own tools: LlamaIndex's ``IngestionPipeline``
(persisted docstore and cache, ``DocstoreStrategy.UPSERTS``) by default, or LangChain's
indexing API (``index()`` with a SQLite ``SQLRecordManager``) with ``--indexer langchain``.
A second run embeds only the questions; edit a passage and the next run embeds that passage
alone; remove one and its vector goes. The script prints what it embedded and skipped, and what the embeddings cost.

Which embeddings backend:
  * AIMLAPI_API_KEY set (or a base URL given): the AI/ML API (or that OpenAI-compatible
    server). If the server refuses the model or cannot be reached, the adapters switch to
    the local model (fallback="local").
  * Otherwise: the local backend, BAAI/bge-base-en-v1.5 in-process (the first run downloads
    the model files from Hugging Face into the cache).

Where the vectors live: an embedded Chroma store in --store (default .demo/ in the
repository), or a Chroma server with --chroma-url (``chroma run --path DIR``).

Run:  make demo        or   .venv/bin/python examples/rag_demo.py --help
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")  # before chromadb is imported

from pydantic import ValidationError

from aimlapi_bge import (
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    AIMLAPIError,
    AuthenticationError,
    ConfigurationError,
    FallbackWarning,
    InsufficientCreditsError,
    LocalModelUnavailableError,
    ModelNotAvailableError,
    ServiceError,
    Usage,
)
from aimlapi_bge.models import retired_on

EXAMPLES = Path(__file__).resolve().parent
CORPUS = EXAMPLES / "corpus.jsonl"
DEFAULT_STORE = EXAMPLES.parent / ".demo"
COLLECTION = "aimlapi-bge-demo"
TOP_K = 2
QUESTIONS = (
    "What volcano buried Pompeii and Herculaneum?",
    "How do honeybees tell hive mates where flowers are?",
    "How did Fleming discover penicillin?",
    "What causes ocean tides?",
)
STANDIN_ROUTE = (
    "To try the demo without a key and without downloading the model, use the stand-in"
    " server: run `make standin` in one shell, then"
    " `AIMLAPI_BASE_URL=http://127.0.0.1:8765/v1 AIMLAPI_API_KEY=standin-key make demo`"
    " in another."
)


class DemoError(Exception):
    """A problem outside the embeddings library (corpus file, Chroma), said in one paragraph."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="RAG demo over examples/corpus.jsonl: a Chroma index read by LangChain and"
        " LlamaIndex, re-indexed incrementally.",
        epilog="Environment: AIMLAPI_API_KEY (API mode), AIMLAPI_BASE_URL,"
        " AIMLAPI_BGE_CACHE_DIR (local model cache), HF_HUB_OFFLINE=1 (never download).",
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
    parser.add_argument(
        "--max-retries",
        type=int,
        help="API backend: retries per request before giving up (default: the library's, 4)",
    )
    parser.add_argument(
        "--store",
        type=Path,
        default=DEFAULT_STORE,
        help="directory for the embedded Chroma store and the indexing state (default: .demo/)",
    )
    parser.add_argument(
        "--chroma-url",
        help="use a Chroma server (e.g. http://127.0.0.1:8000, started with `chroma run --path"
        " DIR`) instead of the embedded store; --store then keeps only the indexing state",
    )
    parser.add_argument(
        "--indexer",
        choices=("llama-index", "langchain"),
        default="llama-index",
        help="which framework writes the index: LlamaIndex IngestionPipeline (default) or"
        " LangChain index(); each has its own collection, and both frameworks query it",
    )
    parser.add_argument(
        "--collection",
        default=COLLECTION,
        help="collection name prefix; the indexer's name is appended (default: %(default)s)",
    )
    parser.add_argument(
        "--corpus", type=Path, default=CORPUS, help="JSON lines {id, text} (default: %(default)s)"
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="drop the collection and its state first"
    )
    return parser.parse_args(argv)


def choose_backend(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """Adapter settings for this run, and a sentence saying which backend they select."""
    local: dict[str, Any] = {"local_model_path": args.local_model_path, "cache_dir": args.cache_dir}
    if args.max_retries is not None:
        local["max_retries"] = args.max_retries
    has_key = bool(os.environ.get("AIMLAPI_API_KEY") or os.environ.get("AIML_API_KEY"))
    base_url = args.base_url or os.environ.get("AIMLAPI_BASE_URL")
    backend = args.backend or ("api" if has_key or base_url else "local")
    if backend == "api":
        where = base_url or DEFAULT_BASE_URL
        key = "with the key from the environment" if has_key else "without a key"
        return (
            {"base_url": args.base_url, "fallback": "local", **local},
            f"API backend: {where} {key} (falls back to the local model if the API refuses the model or cannot be reached)",
        )
    source = (
        f"model files from {args.local_model_path}"
        if args.local_model_path
        else f"{DEFAULT_MODEL} from the model cache; the first run downloads it (about 440 MB)"
        " from Hugging Face"
    )
    reason = "" if args.backend else " (no AIMLAPI_API_KEY set)"
    return {"backend": "local", **local}, f"local backend{reason}: {source}"


def load_corpus(path: Path) -> list[dict[str, str]]:
    """The passages of a JSON-lines file, each ``{"id": ..., "text": ...}``."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise DemoError(
            f"Cannot read the corpus {path} ({error.strerror}): pass --corpus FILE."
        ) from None
    passages: list[dict[str, str]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            passages.append({"id": str(row["id"]), "text": str(row["text"])})
        except (ValueError, KeyError, TypeError):
            raise DemoError(
                f'{path}, line {number}: expected a JSON object with "id" and "text".'
            ) from None
    return passages


def describe_usage(name: str, usage: Usage) -> str:
    return (
        f"{name}: {usage.requests} requests, {usage.texts} texts, {usage.prompt_tokens} tokens,"
        f" {usage.credits_used:g} credits"
    )


# --- Chroma ------------------------------------------------------------------------------


def chroma_client(args: argparse.Namespace) -> tuple[Any, str]:
    """A Chroma client (embedded in --store, or the --chroma-url server) and where it points."""
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    if not args.chroma_url:
        path = args.store / "chroma"
        return chromadb.PersistentClient(path=str(path), settings=settings), f"embedded, {path}"
    url = urlsplit(args.chroma_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise DemoError(f"--chroma-url {args.chroma_url!r} is not an http(s) URL.")
    port = url.port or (443 if url.scheme == "https" else 8000)
    try:
        client = chromadb.HttpClient(
            host=url.hostname, port=port, ssl=url.scheme == "https", settings=settings
        )
        client.heartbeat()
    except Exception as error:
        raise DemoError(
            f"No Chroma server answered at {args.chroma_url} ({error}). Start one with"
            " `chroma run --path DIR --host 127.0.0.1 --port 8000`, or leave out --chroma-url"
            " to use the embedded store in --store."
        ) from None
    return client, f"server, {args.chroma_url}"


def state_dir(args: argparse.Namespace, collection: str) -> Path:
    """Where the indexer's state for this collection lives (per Chroma location)."""
    if not args.chroma_url:
        where = "embedded"
    else:
        url = urlsplit(args.chroma_url)
        where = re.sub(r"[^\w.-]+", "_", f"server-{url.hostname}-{url.port or 8000}")
    store: Path = args.store
    return store / "state" / where / collection


def open_collection(client: Any, name: str, rebuild: bool) -> Any:
    """The demo's collection, cosine space; vectors always come from this package's adapters."""
    if rebuild and name in {c if isinstance(c, str) else c.name for c in client.list_collections()}:
        client.delete_collection(name)
    return client.get_or_create_collection(
        name,
        configuration={"hnsw": {"space": "cosine"}},
        metadata={"hnsw:space": "cosine", "embedding_model": DEFAULT_MODEL},
        embedding_function=None,
    )


# --- incremental indexing ----------------------------------------------------------------


@dataclass
class IndexReport:
    """What one indexing run did, passage by passage."""

    tool: str
    embedded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    removed: int = 0
    from_cache: int = 0

    def lines(self) -> list[str]:
        out = [f"Indexing with {self.tool}:"]
        out.append(
            f"  embedded {len(self.embedded)} new or changed passages: "
            + (", ".join(self.embedded) or "-")
        )
        out.append(
            f"  skipped {len(self.skipped)} unchanged passages: " + (", ".join(self.skipped) or "-")
        )
        if self.from_cache:
            out.append(f"  ({self.from_cache} of them from the IngestionPipeline cache, not sent)")
        if self.removed:
            out.append(f"  removed {self.removed} stale vectors (changed or deleted passages)")
        return out


def index_with_llama_index(
    passages: list[dict[str, str]], collection: Any, embed_model: Any, state: Path
) -> IndexReport:
    """LlamaIndex IngestionPipeline: persisted docstore and cache, Chroma as the store.

    Each passage is one node whose id and source document are the passage id, so a changed
    passage replaces its vector (ChromaVectorStore deletes by ``document_id``).
    """
    from llama_index.core.ingestion import DocstoreStrategy, IngestionCache, IngestionPipeline
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
    from llama_index.core.storage.docstore import SimpleDocumentStore
    from llama_index.vector_stores.chroma import ChromaVectorStore

    vector_store = ChromaVectorStore(chroma_collection=collection)
    pipeline = IngestionPipeline(
        transformations=[embed_model],
        vector_store=vector_store,
        docstore=SimpleDocumentStore(),
        docstore_strategy=DocstoreStrategy.UPSERTS,
        cache=IngestionCache(),
    )
    if (state / "docstore.json").is_file():
        pipeline.load(str(state))
    docstore = pipeline.docstore
    assert docstore is not None  # the one above, or the one loaded from the state
    if collection.count() == 0 or not docstore.get_all_document_hashes():
        # State and collection must agree: start both afresh if either is empty.
        docstore = pipeline.docstore = SimpleDocumentStore()
        existing = collection.get(include=[])["ids"]
        if existing:
            collection.delete(ids=existing)
    nodes = [
        TextNode(
            id_=p["id"],
            text=p["text"],
            metadata={"passage": p["id"]},
            excluded_embed_metadata_keys=["passage"],
            excluded_llm_metadata_keys=["passage"],
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=p["id"])},
        )
        for p in passages
    ]
    # Passages gone from the corpus. (UPSERTS_AND_DELETE would do this, but its docstore
    # deletion fails for nodes that are their own source document, as these are.)
    wanted = {p["id"] for p in passages}
    for gone in set(docstore.get_all_document_hashes().values()) - wanted:
        docstore.delete_ref_doc(gone, raise_error=False)
        vector_store.delete(gone)
    processed = pipeline.run(nodes=nodes)
    state.mkdir(parents=True, exist_ok=True)
    pipeline.persist(str(state))
    changed = {node.ref_doc_id for node in processed}
    return IndexReport(
        "LlamaIndex IngestionPipeline (docstore + cache in " + str(state) + ")",
        embedded=[p["id"] for p in passages if p["id"] in changed],
        skipped=[p["id"] for p in passages if p["id"] not in changed],
    )


def index_with_langchain(
    passages: list[dict[str, str]], client: Any, name: str, embeddings: Any, state: Path
) -> IndexReport:
    """LangChain's indexing API: ``index()`` with a SQLite record manager, Chroma as the store.

    Documents are keyed by a SHA-256 of their content and metadata; ``cleanup="full"`` deletes
    what this run did not index: changed passages' old vectors and removed passages.
    """
    from langchain_chroma import Chroma
    from langchain_classic.indexes import SQLRecordManager
    from langchain_core.documents import Document
    from langchain_core.indexing import index

    state.mkdir(parents=True, exist_ok=True)
    records = SQLRecordManager(
        f"chroma/{name}", db_url=f"sqlite:///{state / 'langchain-records.sqlite'}"
    )
    records.create_schema()
    store = Chroma(client=client, collection_name=name, embedding_function=embeddings)
    collection = client.get_collection(name)
    before = set(records.list_keys())
    if collection.count() == 0 or not before:
        # State and collection must agree: start both afresh if either is empty.
        records.delete_keys(list(before))
        existing = collection.get(include=[])["ids"]
        if existing:
            collection.delete(ids=existing)
        before = set()
    documents = [Document(page_content=p["text"], metadata={"passage": p["id"]}) for p in passages]
    index(
        documents,
        records,
        store,
        cleanup="full",
        source_id_key="passage",
        key_encoder="sha256",
    )
    embedded = [p["id"] for p in passages if set(records.list_keys(group_ids=[p["id"]])) - before]
    return IndexReport(
        "LangChain index() (record manager " + str(state / "langchain-records.sqlite") + ")",
        embedded=embedded,
        skipped=[p["id"] for p in passages if p["id"] not in embedded],
    )


# --- the run -----------------------------------------------------------------------------


def run(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    from langchain_chroma import Chroma
    from llama_index.core import VectorStoreIndex
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from langchain_aimlapi_bge import AIMLBGEEmbeddings
    from llama_index_aimlapi_bge import AIMLBGEEmbedding

    passages = load_corpus(args.corpus)
    text_of = {passage["id"]: passage["text"] for passage in passages}
    client, where = chroma_client(args)
    name = f"{args.collection}-{args.indexer}"
    collection = open_collection(client, name, args.rebuild)
    state = state_dir(args, name)
    if args.rebuild:
        shutil.rmtree(state, ignore_errors=True)

    lc_embeddings = AIMLBGEEmbeddings(**settings)
    li_embeddings = AIMLBGEEmbedding(**settings)
    count_before = collection.count()
    if args.indexer == "llama-index":
        report = index_with_llama_index(passages, collection, li_embeddings, state)
        report.from_cache = len(report.embedded) - li_embeddings.usage.texts
    else:
        report = index_with_langchain(passages, client, name, lc_embeddings, state)
    report.removed = count_before + len(report.embedded) - collection.count()
    print(f"Chroma ({where}): collection {name!r}, cosine space, {collection.count()} vectors.")
    print("\n".join(report.lines()) + "\n")

    # Both frameworks read the same collection: the vectors stored above.
    lc_retriever = Chroma(
        client=client, collection_name=name, embedding_function=lc_embeddings
    ).as_retriever(search_kwargs={"k": TOP_K})
    li_retriever = VectorStoreIndex.from_vector_store(
        ChromaVectorStore(chroma_collection=collection), embed_model=li_embeddings
    ).as_retriever(similarity_top_k=TOP_K)

    for number, question in enumerate(QUESTIONS, start=1):
        lc_ids = [doc.metadata["passage"] for doc in lc_retriever.invoke(question)]
        li_hits = li_retriever.retrieve(question)
        print(f"Q{number}. {question}")
        print(f"    LangChain  retriever: {', '.join(lc_ids)}")
        print(
            "    LlamaIndex retriever: "
            + ", ".join(f"{hit.node.metadata['passage']} ({hit.score:.3f})" for hit in li_hits)
        )
        print(f"    Top passage: {text_of[lc_ids[0]]}\n")

    print(describe_usage("Usage, LangChain embeddings ", lc_embeddings.usage))
    print(describe_usage("Usage, LlamaIndex embeddings", li_embeddings.usage))
    used = {lc_embeddings.embedder.backend, li_embeddings.embedder.backend}
    print(f"Backend used: {', '.join(sorted(used))}")


# --- failures, said once, at the end -----------------------------------------------------


def api_url(args: argparse.Namespace) -> str:
    return args.base_url or os.environ.get("AIMLAPI_BASE_URL") or DEFAULT_BASE_URL


def diagnose_api(args: argparse.Namespace) -> AIMLAPIError | None:
    """After a fallback, ask the API once more (no retries, no fallback) what went wrong."""
    from aimlapi_bge import Embedder, resolve_config

    try:
        Embedder(resolve_config(base_url=args.base_url, max_retries=0, timeout=10.0)).embed(
            ["ping"]
        )
    except AIMLAPIError as error:
        return error
    return None


_KEYWORDS = {
    "local_model_path=": "--local-model-path ",
    "cache_dir=": "--cache-dir ",
    "base_url=": "--base-url ",
    "backend='local'": "--backend local",
    "pass api_key=": "set AIMLAPI_API_KEY",
}


def as_cli(message: str) -> str:
    """The library's message, with its Python keywords replaced by the demo's flags."""
    for keyword, flag in _KEYWORDS.items():
        message = message.replace(keyword, flag)
    return message


def api_problem(error: AIMLAPIError, url: str) -> str:
    """The API-side problem in a sentence naming the settings to change."""
    said = f" (the server said: {error.server_message})" if error.server_message else ""
    has_key = bool(os.environ.get("AIMLAPI_API_KEY") or os.environ.get("AIML_API_KEY"))
    if isinstance(error, AuthenticationError) and not has_key:
        return f"The API at {url} needs a key{said}: set AIMLAPI_API_KEY."
    if isinstance(error, AuthenticationError):
        return (
            f"The API at {url} refused the key{said}: check the key in AIMLAPI_API_KEY (the"
            " whole key, for this service, nothing around it)."
        )
    if isinstance(error, ModelNotAvailableError):
        note = (
            f" (the AI/ML API lists it as deprecated since {retired_on(DEFAULT_MODEL)})"
            if (urlsplit(url).hostname or "").endswith("aimlapi.com")
            else ""
        )
        return (
            f"The API at {url} does not serve {DEFAULT_MODEL}{said}: the model has been retired"
            f" there{note}, or --base-url / AIMLAPI_BASE_URL points at the wrong server."
        )
    if isinstance(error, InsufficientCreditsError):
        return f"The API at {url} refused the request: the account has no credits left{said}."
    if isinstance(error, ServiceError):
        return (
            f"The API at {url} could not be reached or kept failing: check the network and"
            " AIMLAPI_BASE_URL (or --base-url)."
        )
    if isinstance(error, ConfigurationError):
        return (
            f"The endpoint {url} does not work as an embeddings API{said}: check --base-url or"
            " AIMLAPI_BASE_URL (an OpenAI-compatible base URL, usually ending in /v1)."
        )
    return f"The API at {url} failed: {as_cli(error.message)}"


def local_problem(args: argparse.Namespace, error: AIMLAPIError, suggest_api: bool = True) -> str:
    """The local backend's problem, in the demo's flags."""
    if args.local_model_path:
        return f"The local model cannot be used: {as_cli(error.message)}"
    cache = args.cache_dir or os.environ.get("AIMLAPI_BGE_CACHE_DIR") or "the default cache"
    offline = (
        " and HF_HUB_OFFLINE is set, so nothing was downloaded"
        if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")
        else " and the download from Hugging Face failed"
    )
    return (
        f"The local model's files ({DEFAULT_MODEL}, about 440 MB) are not in {cache}"
        f" (--cache-dir or AIMLAPI_BGE_CACHE_DIR){offline}. Run once with access to"
        " huggingface.co to fill the cache, or pass --local-model-path DIR with the files"
        + (", or set AIMLAPI_API_KEY to use the API instead." if suggest_api else ".")
    )


def explain(failure: BaseException, args: argparse.Namespace, fell_back: bool) -> str:
    """One paragraph: what the user's real problem is, and what to change."""
    if isinstance(failure, DemoError):
        return str(failure)
    if isinstance(failure, ImportError):
        missing = failure.name or str(failure)
        return (
            f"A package the demo needs is not installed ({missing}). Run `make demo`, which"
            " installs everything, or `pip install 'aimlapi-bge[chroma,local]'`."
        )
    assert isinstance(failure, AIMLAPIError)
    url = api_url(args)
    if isinstance(failure, LocalModelUnavailableError):
        if fell_back:
            cause = diagnose_api(args)
            first = (
                api_problem(cause, url)
                if cause is not None
                else f"The API at {url} failed during the run."
            )
            return (
                f"{first} The demo then switched to the local model, which is not available"
                f" either. {local_problem(args, failure, suggest_api=False)} {STANDIN_ROUTE}"
            )
        return f"{local_problem(args, failure)} {STANDIN_ROUTE}"
    if isinstance(failure, ConfigurationError) and "backend" in choose_backend(args)[0]:
        return f"The local backend's settings cannot work: {as_cli(failure.message)}"
    return f"{api_problem(failure, url)} {STANDIN_ROUTE}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings, description = choose_backend(args)
    print(f"aimlapi-bge RAG demo, {description}")
    failure: BaseException | None = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FallbackWarning)
        try:
            run(args, settings)
        except (AIMLAPIError, ImportError, DemoError) as error:
            failure = error
        except ValidationError as error:  # an adapter refused its settings
            causes = [e.get("ctx", {}).get("error") for e in error.errors()]
            failure = next(
                (c for c in causes if isinstance(c, AIMLAPIError)), DemoError(str(error))
            )
    fell_back = False
    for warning in caught:
        if issubclass(warning.category, FallbackWarning):
            fell_back = True
            print(f"rag_demo: note: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    if failure is not None:
        sys.stdout.flush()
        print(f"\nrag_demo: error: {explain(failure, args, fell_back)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
