"""The ``aimlapi-bge`` command line: embed texts or a corpus file, check a key and a model.

.. code-block:: bash

    aimlapi-bge embed "Laura is a DJ." "Paris is in France."      # JSON list of vectors
    aimlapi-bge embed --input corpus.jsonl --output vectors.jsonl  # resumable file job
    aimlapi-bge check                                              # key, model, dimension, latency
    aimlapi-bge verify-local                                       # local model vs the published vector
    aimlapi-bge compare --input corpus.jsonl --a local --b http://127.0.0.1:8080/v1

Results go to stdout, messages to stderr; expected failures end with a one-line message and a
documented exit code (see ``EPILOG``), never a traceback. The API key is read from the
environment only (command-line arguments are visible to other users in ``ps``) and is never
printed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from aimlapi_bge import __version__
from aimlapi_bge.config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT,
    resolve_config,
)
from aimlapi_bge.corpus import CorpusError, CorpusJob, Record, RecordId, read_records
from aimlapi_bge.embedder import Embedder, describe
from aimlapi_bge.errors import (
    AIMLAPIError,
    AuthenticationError,
    ConfigurationError,
    InsufficientCreditsError,
    InvalidInputError,
    ModelNotAvailableError,
)

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_MODEL",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_MODEL = 4
EXIT_INTERRUPTED = 130

CHECK_TEXT = "Laura is a DJ."

EPILOG = """\
environment:
  AIMLAPI_API_KEY      API key (AIML_API_KEY also works); never taken from the command line
  AIMLAPI_BASE_URL     endpoint (default https://api.aimlapi.com/v1); the key from the
                       environment goes only to *.aimlapi.com, loopback or this URL
  AIMLAPI_BGE_BACKEND  api or local (default api)
  AIMLAPI_BGE_CACHE_DIR  where the local backend caches model files

exit codes:
  0    success
  1    the service or the run failed (server error, rate limit, rejected text, bad
       answer); vectors already finished stay in --output
  2    usage: bad arguments, unreadable or malformed input file, unusable output file
  3    key or configuration: no key, key refused (401), no credits (403), key would go to
       an untrusted host, invalid --base-url, local backend or model files unavailable
  4    model not served (404); BAAI/bge-base-en-v1.5 is deprecated on the AI/ML API
       since 2026-03-30: use --backend local or a self-hosted server
  130  interrupted (Ctrl-C); rerun the same command to resume
"""


EMBED_DESCRIPTION = """\
Embed TEXT arguments and print a JSON list of vectors, or embed --input into --output.

--input is a text file (one text per line; id = 0-based line number) or a .jsonl file
(objects with "id" and "text"). --output gets one JSONL line {"id": ..., "embedding": [...]}
per text. Each finished group of batch-size x max-concurrency texts is written at once; after
an interruption, rerun the same command: it skips the ids already in --output, cuts off a
truncated last line, and never writes an id twice.
"""

CHECK_DESCRIPTION = f"""\
Send one text ({CHECK_TEXT!r}) and report the settings, whether the key is accepted, whether
the model is served, the vector dimension and the latency. When the model is refused, it says
why and how to keep the same vectors (--backend local, or a self-hosted server).
"""


VERIFY_DESCRIPTION = f"""\
Embed {CHECK_TEXT!r} with the local model and print its cosine to the vector the AI/ML API
published for that text (bge-base-en-v1.5, before the model was retired there). Passes at a
cosine of {{threshold}} or more: exit status 0 on pass, 1 on fail (3 when the model cannot load).
"""

COMPARE_DESCRIPTION = """\
Embed a sample of --input with two backends and print how close their vectors are: the number
of texts, the minimum and median cosine, and the ids of the least similar texts. A side is
"local" (the in-process model; --local-model-path, --cache-dir, --local-precision apply;
"local:int8" and "local:fp32" choose the precision for that side) or an http(s) base URL of an OpenAI-compatible endpoint (the key comes from the environment, under
the usual rules: *.aimlapi.com, loopback or $AIMLAPI_BASE_URL only). --input is a text file (one
text per line; id = 0-based line number) or a .jsonl file (objects with "id" and "text").
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's layout."""


def _bounded(kind: Callable[[str], float], minimum: float, strict: bool) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = kind(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            expected = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"not {expected}: {value!r}")
        if number < minimum or (strict and number == minimum):
            relation = "greater than" if strict else "at least"
            raise argparse.ArgumentTypeError(f"must be {relation} {minimum:g}, got {value}")
        return number

    return parse


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("model and endpoint (shared by all commands)")
    group.add_argument(
        "--model", metavar="NAME", default=DEFAULT_MODEL, help="default: %(default)s"
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        help="OpenAI-compatible endpoint (default: $AIMLAPI_BASE_URL, else"
        " https://api.aimlapi.com/v1)",
    )
    group.add_argument(
        "--backend",
        choices=("api", "local"),
        help="api: HTTP requests; local: the model in-process, extra [local]"
        " (default: $AIMLAPI_BGE_BACKEND, else api)",
    )
    group.add_argument(
        "--batch-size",
        metavar="N",
        type=_bounded(int, 1, strict=False),
        default=DEFAULT_BATCH_SIZE,
        help="texts per request (default: %(default)s)",
    )
    group.add_argument(
        "--max-concurrency",
        metavar="N",
        type=_bounded(int, 1, strict=False),
        default=DEFAULT_MAX_CONCURRENCY,
        help="requests in flight at most (default: %(default)s)",
    )
    group.add_argument(
        "--max-retries",
        metavar="N",
        type=_bounded(int, 0, strict=False),
        default=DEFAULT_MAX_RETRIES,
        help="retries of 429/5xx/timeouts, with backoff (default: %(default)s)",
    )
    group.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_bounded(float, 0, strict=True),
        default=DEFAULT_TIMEOUT,
        help="seconds per request attempt (default: %(default)g)",
    )
    group.add_argument(
        "--local-model-path",
        metavar="DIR",
        help="local backend: a directory with the ONNX model and tokenizer files",
    )
    group.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="local backend: model cache directory (default: $AIMLAPI_BGE_CACHE_DIR)",
    )
    group.add_argument(
        "--local-precision",
        choices=("fp32", "int8"),
        default="fp32",
        help="local backend: fp32 (default, the service's vectors) or int8 (dynamic"
        " quantisation: faster, vectors close but not equal)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """The ``aimlapi-bge`` argument parser (``embed`` and ``check`` subcommands)."""
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="aimlapi-bge",
        description="BAAI/bge-base-en-v1.5 embeddings through the AI/ML API, or in-process.",
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    embed = commands.add_parser(
        "embed",
        parents=[common],
        formatter_class=_Formatter,
        epilog=EPILOG,
        help="embed TEXT arguments (JSON to stdout) or a corpus file (JSONL, resumable)",
        description=EMBED_DESCRIPTION,
    )
    embed.add_argument("texts", nargs="*", metavar="TEXT", help="texts to embed")
    embed.add_argument(
        "-i", "--input", type=Path, metavar="FILE", help="corpus file (.txt or .jsonl)"
    )
    embed.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="JSONL vector file (with --input)"
    )
    embed.add_argument(
        "--input-format",
        choices=("auto", "text", "jsonl"),
        default="auto",
        help="auto: .jsonl/.ndjson are JSONL, anything else text (default: %(default)s)",
    )
    embed.add_argument(
        "--query",
        action="store_true",
        help="embed as search queries (prefixed with the model's query instruction)",
    )
    embed.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    embed.set_defaults(handler=_embed, parser=embed)

    check = commands.add_parser(
        "check",
        parents=[common],
        formatter_class=_Formatter,
        epilog=EPILOG,
        help="check the key and that the model is served; show dimension and latency",
        description=CHECK_DESCRIPTION,
    )
    check.set_defaults(handler=_check, parser=check)
    _add_continuity_commands(commands)
    return parser


# --- continuity tools: verify-local, compare (issue 14) -----------------------------------------

VERIFY_THRESHOLD = 0.999
PUBLISHED_RESOURCE = "published_laura.json"
LOCAL_SIDES = ("local", "local:fp32", "local:int8")


def _local_options() -> argparse.ArgumentParser:
    local = argparse.ArgumentParser(add_help=False)
    group = local.add_argument_group("local model")
    group.add_argument(
        "--model", metavar="NAME", default=DEFAULT_MODEL, help="default: %(default)s"
    )
    group.add_argument(
        "--local-model-path",
        metavar="DIR",
        help="a directory with the ONNX model and tokenizer files (default: the cache)",
    )
    group.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="model cache directory (default: $AIMLAPI_BGE_CACHE_DIR, else the user cache)",
    )
    group.add_argument(
        "--local-precision",
        choices=("fp32", "int8"),
        default="fp32",
        help="fp32 (default) or int8 (dynamic quantisation)",
    )
    return local


def _add_continuity_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    local = _local_options()
    verify = commands.add_parser(
        "verify-local",
        parents=[local],
        formatter_class=_Formatter,
        epilog=EPILOG,
        help="compare the local model's vector for a sample text with the published one",
        description=VERIFY_DESCRIPTION.format(threshold=VERIFY_THRESHOLD),
    )
    verify.set_defaults(handler=_verify_local, parser=verify)

    compare = commands.add_parser(
        "compare",
        parents=[local],
        formatter_class=_Formatter,
        epilog=EPILOG,
        help="embed a sample of a corpus with two backends and compare the vectors",
        description=COMPARE_DESCRIPTION,
    )
    compare.add_argument(
        "-i", "--input", type=Path, metavar="FILE", required=True, help="corpus (.txt or .jsonl)"
    )
    compare.add_argument(
        "--a",
        required=True,
        metavar="SIDE",
        help='"local", "local:int8", "local:fp32" or an http(s) base URL',
    )
    compare.add_argument(
        "--b",
        required=True,
        metavar="SIDE",
        help='"local", "local:int8", "local:fp32" or an http(s) base URL',
    )
    compare.add_argument(
        "--sample",
        metavar="N",
        type=_bounded(int, 1, strict=False),
        default=200,
        help="texts drawn at random from --input (default: %(default)s; all if fewer)",
    )
    compare.add_argument(
        "--seed", metavar="S", type=int, default=0, help="sampling seed (default: %(default)s)"
    )
    compare.add_argument(
        "--worst", metavar="N", type=_bounded(int, 1, strict=False), default=5,
        help="least similar ids to show (default: %(default)s)",
    )  # fmt: skip
    compare.set_defaults(handler=_compare, parser=compare)


def _published() -> dict[str, object]:
    """The AI/ML API's published response for CHECK_TEXT (shipped with the package)."""
    from importlib.resources import files

    data: dict[str, object] = json.loads(
        files("aimlapi_bge").joinpath("data").joinpath(PUBLISHED_RESOURCE).read_text(encoding="utf-8")
    )
    return data


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norms if norms else 0.0


def _local_embedder(args: argparse.Namespace, precision: str | None = None) -> Embedder:
    return Embedder(
        resolve_config(
            model=args.model,
            backend="local",
            cache_dir=args.cache_dir,
            local_model_path=args.local_model_path,
            local_precision=precision or args.local_precision,
        )
    )


def _verify_local(args: argparse.Namespace) -> int:
    published = _published()
    text = str(published["input"])
    expected: list[float] = published["embedding"]  # type: ignore[assignment]
    embedder = _local_embedder(args)
    (vector,) = embedder.embed([text])
    _field("text", json.dumps(text))
    _field("precision", args.local_precision)
    if len(vector) != len(expected):
        _field("dimension", f"{len(vector)} (the published vector has {len(expected)})")
        _field("cosine", "undefined: not the same model")
        print("FAIL")
        return EXIT_FAILED
    cosine = _cosine(vector, expected)
    passed = cosine >= VERIFY_THRESHOLD
    _field("cosine", f"{cosine:.6f} (pass at >= {VERIFY_THRESHOLD})")
    _field("prompt tokens", f"{embedder.usage.prompt_tokens} (published: {published['prompt_tokens']})")
    print("PASS" if passed else "FAIL")
    return EXIT_OK if passed else EXIT_FAILED


def _side(args: argparse.Namespace, side: str) -> Embedder:
    if side in LOCAL_SIDES:
        return _local_embedder(args, side.partition(":")[2] or None)
    if not side.startswith(("http://", "https://")):
        args.parser.error(
            f'a side is "local" (or local:fp32, local:int8) or an http(s) base URL, got {side!r}'
        )
    config = resolve_config(model=args.model, base_url=side, backend="api")
    if config.key_note:
        _say(f"note: {config.key_note}")
    return Embedder(config)


def _compare(args: argparse.Namespace) -> int:
    if not args.input.is_file():
        args.parser.error(f"--input {args.input}: no such file")
    first, second = _side(args, args.a), _side(args, args.b)
    records: list[Record] = list(read_records(args.input))
    if not records:
        args.parser.error(f"--input {args.input}: no texts")
    if len(records) > args.sample:
        records = random.Random(args.seed).sample(records, args.sample)
    texts = [record.text for record in records]
    vectors_a, vectors_b = first.embed(texts), second.embed(texts)
    if len(vectors_a[0]) != len(vectors_b[0]):
        _say(
            f"error: --a gives {len(vectors_a[0])}-dimensional vectors and --b"
            f" {len(vectors_b[0])}-dimensional ones: not the same model"
        )
        return EXIT_FAILED
    cosines = [_cosine(a, b) for a, b in zip(vectors_a, vectors_b, strict=True)]
    ranked = sorted(range(len(records)), key=cosines.__getitem__)[: args.worst]
    _field("a", args.a)
    _field("b", args.b)
    _field("n", len(records))
    _field("min cosine", f"{min(cosines):.6f}")
    _field("median cosine", f"{statistics.median(cosines):.6f}")
    _field(
        "worst ids",
        ", ".join(f"{json.dumps(records[i].id)} ({cosines[i]:.6f})" for i in ranked),
    )
    return EXIT_OK


def _say(message: str) -> None:
    print(f"aimlapi-bge: {message}", file=sys.stderr)


def _describe(error: BaseException) -> str:
    """An error's message without library-only details (partial vectors, positions)."""
    if not isinstance(error, AIMLAPIError):
        return str(error) or type(error).__name__
    text = error.message
    if error.request_id:
        text += f" (request id {error.request_id})"
    return text


def exit_code(error: BaseException) -> int:
    """The documented exit code for an error."""
    if isinstance(error, ModelNotAvailableError):
        return EXIT_MODEL
    if isinstance(
        error, (AuthenticationError, InsufficientCreditsError, ConfigurationError, ImportError)
    ):
        return EXIT_CONFIG
    if isinstance(error, CorpusError):
        return EXIT_USAGE
    return EXIT_FAILED


def _report(error: BaseException) -> int:
    _say(f"error: {_describe(error)}")
    code = exit_code(error)
    if code == EXIT_MODEL:
        _say(
            "hint: add --backend local to compute the same vectors in-process"
            " (pip install 'aimlapi-bge[local]'), or set AIMLAPI_BASE_URL to a self-hosted"
            " OpenAI-compatible server (text-embeddings-inference, Infinity) serving the model."
        )
    return code


def _make_embedder(args: argparse.Namespace) -> Embedder:
    config = resolve_config(
        model=args.model,
        base_url=args.base_url,
        backend=args.backend,
        cache_dir=args.cache_dir,
        batch_size=args.batch_size,
        max_concurrency=args.max_concurrency,
        max_retries=args.max_retries,
        timeout=args.timeout,
        local_model_path=args.local_model_path,
        local_precision=args.local_precision,
    )
    if config.key_note:
        _say(f"note: {config.key_note}")
    return Embedder(config)


def _check_embed_args(args: argparse.Namespace) -> None:
    parser: argparse.ArgumentParser = args.parser
    if args.input is None:
        if args.output is not None:
            parser.error("--output needs --input (TEXT arguments are printed to stdout)")
        if not args.texts:
            parser.error("give TEXT arguments, or --input FILE --output FILE")
        return
    if args.texts:
        parser.error("give TEXT arguments or --input, not both")
    if args.output is None:
        parser.error("--input needs --output FILE (where the vectors are written)")
    if not args.input.is_file():
        parser.error(f"--input {args.input}: no such file")


def _embed(args: argparse.Namespace) -> int:
    _check_embed_args(args)
    embedder = _make_embedder(args)
    if args.input is None:
        return _embed_texts(embedder, args.texts, query=args.query)
    job = CorpusJob(
        embedder,
        args.input,
        args.output,
        input_format=args.input_format,
        query=args.query,
        show_progress=not args.no_progress,
    )
    try:
        job.run()
    except (AIMLAPIError, CorpusError, OSError, KeyboardInterrupt) as error:
        if job.dropped_tail:
            _say(f"dropped an incomplete last line of {args.output} (from an interrupted run)")
        if isinstance(error, KeyboardInterrupt):
            _say("interrupted")
            code = EXIT_INTERRUPTED
        else:
            code = _report(error)
        if job.total:
            _say(
                f"{job.skipped + job.written} of {job.total} texts are in {args.output}"
                f" ({job.written} written by this run)"
                + (f"; failed ids: {_ids(job.failed_ids)}" if job.failed_ids else "")
                + ". Rerun the same command to resume."
            )
        return code
    if job.dropped_tail:
        _say(f"dropped an incomplete last line of {args.output} (from an interrupted run)")
    if job.foreign:
        _say(f"note: {job.foreign} ids in {args.output} are not in {args.input}")
    usage = embedder.usage
    _say(
        f"{job.total} of {job.total} texts are in {args.output} ({job.written} written by this"
        f" run, {job.skipped} already there); {usage.requests} requests,"
        f" {usage.prompt_tokens} tokens, {usage.credits_used:g} credits"
    )
    return EXIT_OK


def _ids(ids: Sequence[RecordId], limit: int = 10) -> str:
    shown = ", ".join(json.dumps(record_id) for record_id in ids[:limit])
    return shown + (f", ... ({len(ids) - limit} more)" if len(ids) > limit else "")


def _embed_texts(embedder: Embedder, texts: list[str], *, query: bool) -> int:
    try:
        vectors = embedder.embed(texts, as_queries=query)
    except InvalidInputError as error:
        code = _report(error)
        if error.positions:
            _say(f"rejected TEXT argument(s): {', '.join(str(p + 1) for p in error.positions)}")
        return code
    json.dump(vectors, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")
    return EXIT_OK


def _field(name: str, value: object) -> None:
    print(f"{name + ':':18}{value}")


def _check(args: argparse.Namespace) -> int:
    embedder = _make_embedder(args)
    for name, value in describe(embedder).items():
        _field(name, value)
    sys.stdout.flush()
    started = time.perf_counter()
    try:
        (vector,) = embedder.embed([CHECK_TEXT])
    except ModelNotAvailableError as error:
        _field("model served", "no")
        sys.stdout.flush()
        return _report(error)
    elapsed = time.perf_counter() - started
    usage = embedder.usage
    norm = math.sqrt(sum(x * x for x in vector))
    _field("model served", "yes")
    _field("dimension", len(vector))
    _field("L2 norm", f"{norm:.4f}")
    _field("latency", f"{elapsed * 1000:.0f} ms (one text, connection or model loading included)")
    _field("prompt tokens", usage.prompt_tokens)
    _field("credits used", f"{usage.credits_used:g}")
    print("OK")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (argparse exits with 2 on bad usage)."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        _say("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout was closed early (e.g. piped into `head`): not an error worth a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except (AIMLAPIError, CorpusError, ImportError, OSError) as error:
        return _report(error)


if __name__ == "__main__":
    sys.exit(main())
