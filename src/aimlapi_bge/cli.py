"""The ``aimlapi-bge`` command line: embed texts or a corpus file, check a key and a model.

.. code-block:: bash

    aimlapi-bge embed "Laura is a DJ." "Paris is in France."      # JSON list of vectors
    aimlapi-bge embed --input corpus.jsonl --output vectors.jsonl  # resumable file job
    cat corpus.jsonl | aimlapi-bge embed -i - -o - > vectors.jsonl  # a pipe, no resume
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
import functools
import io
import json
import math
import os
import random
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO, TypeVar

from aimlapi_bge import __version__
from aimlapi_bge.config import DEFAULT_MAX_RETRIES, normalise_setting, resolve_config
from aimlapi_bge.corpus import (
    CorpusError,
    CorpusJob,
    Record,
    RecordId,
    StreamJob,
    read_records,
    read_stream,
)
from aimlapi_bge.embedder import Embedder
from aimlapi_bge.errors import (
    AIMLAPIError,
    AuthenticationError,
    ConfigurationError,
    InsufficientCreditsError,
    InvalidInputError,
    ModelNotAvailableError,
    RateLimitError,
    ServiceError,
)
from aimlapi_bge.settings import SETTINGS, Setting, setting, settings_summary

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_MODEL",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "cli_wording",
    "main",
]

EXIT_OK = 0
EXIT_FAILED = 1  # the service or the model failed
EXIT_USAGE = 2  # usage or configuration
EXIT_CONFIG = EXIT_USAGE
EXIT_MODEL = EXIT_FAILED
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a writer killed by a closed pipe

CHECK_TEXT = "Laura is a DJ."
CHECK_TIMEOUT = 15.0
CHECK_MAX_RETRIES = 2
STDIO = "-"

EPILOG = """\
environment:
  AIMLAPI_API_KEY      API key (AIML_API_KEY also works); never taken from the command line
  AIMLAPI_BASE_URL     endpoint (default https://api.aimlapi.com/v1); the key from the
                       environment goes only to *.aimlapi.com, loopback or this URL
  AIMLAPI_BGE_BACKEND  api or local (default api)
  AIMLAPI_BGE_CACHE_DIR  where the local backend caches model files

exit codes:
  0    success
  1    the service or the model failed: server error, rate limit, timeout, rejected text,
       bad answer, model not served (404; for a model the AI/ML API retired, the message
       gives the date and the ways out: --backend local or a self-hosted server); vectors already
       finished stay in --output
  2    usage or configuration: bad arguments, unreadable or malformed input, unusable
       --output or one written with other settings, no key or key refused (401), no
       credits (403), key would go to an untrusted host, an invalid option or AIMLAPI_* value, local
       backend or its model files unavailable
  130  interrupted (Ctrl-C); rerun the same command to resume an --output file
  141  standard output was closed early (e.g. piped into head); nothing else went wrong
"""


EMBED_DESCRIPTION = """\
Embed TEXT arguments and print a JSON list of vectors, or embed --input into --output.

--input is a text file (one text per line; id = 0-based line number) or a .jsonl file
(objects with "id" and "text"). --output gets one JSONL line {"id": ..., "embedding": [...]}
per text. Each finished group of batch-size x max-concurrency texts is written at once; after
an interruption, rerun the same command: it skips the ids already in --output, cuts off a
truncated last line, and never writes an id twice.

The settings that decide the vectors (--model, --backend, --base-url or --local-model-path,
--query) are recorded in OUTPUT.meta.json before the first line. Resuming with other settings
is refused, naming what differs: vectors of two models or modes are never mixed. An OUTPUT
without OUTPUT.meta.json (from an older aimlapi-bge) is resumed with a warning, assuming this
run's settings, which are then recorded.

Pipes: -i - reads standard input (JSONL when its first line is an object with "id" and
"text", else one text per line; --input-format overrides) and needs -o -; -o - writes JSONL
to standard output. Nothing is resumed then; progress and messages go to standard error:
  cat corpus.jsonl | aimlapi-bge embed -i - -o - > vectors.jsonl
"""

CHECK_DESCRIPTION = f"""\
Send one text ({CHECK_TEXT!r}) and report the settings, whether the key is accepted, whether
the model is served, the vector dimension and the latency. When the model is refused, it says
why and how to keep the same vectors (--backend local, or a self-hosted server).

check gives up after --timeout seconds in all (default {CHECK_TIMEOUT:g}), whatever the server
does (never answers, answers slowly, or keeps answering 429), retrying at most
{CHECK_MAX_RETRIES} times within that time, and says what it was waiting for.
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


def _metavar(item: Setting) -> str:
    if item.annotation in ("int", "float"):
        return "N" if item.annotation == "int" else "SECONDS"
    if item.name.endswith("_url"):
        return "URL"
    if item.name.endswith(("_dir", "_path")):
        return "DIR"
    return "NAME" if item.name == "model" else "TEXT"


def _parse_as(item: Setting) -> Callable[[str], Any]:
    """Parse an option's text as ``item``'s type, checked like every other way of setting it."""

    def parse(text: str) -> Any:
        value: Any = text
        if item.annotation == "int":
            try:
                value = int(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        elif item.annotation == "float":
            try:
                value = float(text)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise argparse.ArgumentTypeError(f"not a number: {text!r}")
        try:
            return normalise_setting(item.name, value)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def _common_options(
    only: Collection[str] | None = None, title: str = "settings (shared by all commands)"
) -> argparse.ArgumentParser:
    """The settings' options, one per setting with a ``cli_flag`` in SETTINGS (or in ``only``)."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group(title)
    for item in SETTINGS:
        if item.cli_flag is None or (only is not None and item.name not in only):
            continue
        shown = item.default_doc or item.default
        text = f"{item.help.rstrip('.')} (default: {shown})".replace("%", "%%")
        choices = re.findall(r"'([^']*)'", item.annotation) if "Literal" in item.annotation else []
        if choices:
            group.add_argument(item.cli_flag, dest=item.name, choices=choices, help=text)
        else:
            group.add_argument(
                item.cli_flag,
                dest=item.name,
                metavar=_metavar(item),
                type=_parse_as(item),
                help=text,
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
        "-i",
        "--input",
        type=Path,
        metavar="FILE",
        help="corpus file (.txt or .jsonl); - reads standard input",
    )
    embed.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="JSONL vector file, resumable (with --input); - writes standard output",
    )
    embed.add_argument(
        "--input-format",
        choices=("auto", "text", "jsonl"),
        default="auto",
        help="auto: .jsonl/.ndjson are JSONL, anything else text (default: %(default)s)",
    )
    embed.add_argument(
        "--query",
        "--queries",
        dest="query",
        action="store_true",
        help="embed as search queries (prefixed with the model's query instruction)",
    )
    embed.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    embed.set_defaults(handler=_embed, parser=embed)

    check = commands.add_parser(
        "check",
        parents=[_common_options()],  # its own copy: check redefines --timeout
        conflict_handler="resolve",
        formatter_class=_Formatter,
        epilog=EPILOG,
        help="check the key and that the model is served; show dimension and latency",
        description=CHECK_DESCRIPTION,
    )
    check.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_parse_as(setting("timeout")),
        default=CHECK_TIMEOUT,
        help="give up after SECONDS in all, whatever the server does (default: %(default)g)",
    )
    check.set_defaults(handler=_check, parser=check)
    _add_continuity_commands(commands)
    return parser


# Python keyword wording in library messages -> the command line's wording. Each entry:
# pattern, replacement when the CLI has ``flag`` (or always when flag is None), replacement
# otherwise. Phrases come before the bare keywords they contain.
_WORDING: tuple[tuple[str, str, str | None, str], ...] = (
    # Messages that already carry the CLI form ("backend='local' (CLI: --backend local)").
    (r"`?\b\w+(?:='[^']*'|=)?`? \(CLI: ([^)]*)\)", r"\1", None, ""),
    (r" or pass api_key= \(the CLI reads \w+\)", "", None, ""),
    (r",? fallback='local' switches automatically \(Python only\),?", ",", "--fallback", ","),
    (r" \(or pass api_key=\)", " (or pass --api-key)", "--api-key", ""),
    (r" or pass api_key=(?=[.;,])", " or pass --api-key", "--api-key", ""),
    (
        r"pass api_key= for (\S+?)(?=[.;,]?(?:\s|$))",
        r"pass --api-key for \1",
        "--api-key",
        r"set AIMLAPI_BASE_URL=\1 (instead of --base-url) to send it there",
    ),
    (r"\bapi_key=", "--api-key", "--api-key", "AIMLAPI_API_KEY"),
    (r",? fallback='local' to switch automatically", r"\g<0>", "--fallback", ""),
    (r"\bfallback='(\w+)'", r"--fallback \1", "--fallback", r"\g<0>"),
    (r"\bbackend='(\w+)'", r"--backend \1", None, ""),
    (r"\blocal_model_path=(?=\S)", "--local-model-path ", None, ""),
    (r"\blocal_model_path=", "--local-model-path", None, ""),
    (r"\bcache_dir=(?=\S)", "--cache-dir ", None, ""),
    (r"\bcache_dir=", "--cache-dir", None, ""),
    (r"\bbase_url=(?=\S)", "--base-url ", None, ""),
    (r"`?\bbase_url\b`?=?", "--base-url", None, ""),
    (r"`?\bbatch_size\b`?", "--batch-size", None, ""),
    (r"`?\bmax_concurrency\b`?", "--max-concurrency", None, ""),
    (r"`?\bmax_retries\b`?", "--max-retries", None, ""),
    (r"`timeout`|\btimeout(?= must)", "--timeout", None, ""),
    (r"(--[a-z][a-z-]*(?: \w+)?) \(\1\)", r"\1", None, ""),  # "both forms" messages, once
)


@functools.lru_cache(maxsize=1)
def _cli_flags() -> frozenset[str]:
    """Every option string of every subcommand."""
    flags: set[str] = set()
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                flags.update(command._option_string_actions)
    return frozenset(flags)


def cli_wording(message: str) -> str:
    """``message`` with the library's Python keywords (``backend='local'``, ``api_key=``)
    replaced by the command line's flags (``--backend local``, ``AIMLAPI_API_KEY``)."""
    flags = _cli_flags()
    for pattern, with_flag, flag, without_flag in _WORDING:
        replacement = with_flag if flag is None or flag in flags else without_flag
        message = re.sub(pattern, replacement, message)
    return message


# --- continuity tools: verify-local, compare --------------------------------------------------

VERIFY_THRESHOLD = 0.999
PUBLISHED_RESOURCE = "published_laura.json"
LOCAL_SIDES = ("local", "local:fp32", "local:int8")


#: The settings the local-model commands take (the rest concern the HTTP backend).
LOCAL_SETTINGS = ("model", "local_model_path", "cache_dir", "local_precision")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_continuity_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    local = _common_options(only=LOCAL_SETTINGS, title="local model")
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
        type=_positive_int,
        default=200,
        help="texts drawn at random from --input (default: %(default)s; all if fewer)",
    )
    compare.add_argument(
        "--seed", metavar="S", type=int, default=0, help="sampling seed (default: %(default)s)"
    )
    compare.add_argument(
        "--worst", metavar="N", type=_positive_int, default=5,
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
    given = _given_settings(args, LOCAL_SETTINGS)
    if precision:
        given["local_precision"] = precision
    return _embedder(backend="local", **given)


def _verify_local(args: argparse.Namespace) -> int:
    published = _published()
    text = str(published["input"])
    expected: list[float] = published["embedding"]  # type: ignore[assignment]
    embedder = _local_embedder(args)
    (vector,) = embedder.embed([text])
    _field("text", json.dumps(text))
    _field("precision", embedder.config.local_precision)
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
    return _embedder(base_url=side, backend="api", **_given_settings(args, ("model",)))


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
    print(f"aimlapi-bge: {cli_wording(message)}", file=sys.stderr)


def _describe(error: BaseException) -> str:
    """An error's message without library-only details (partial vectors, positions)."""
    if not isinstance(error, AIMLAPIError):
        return str(error) or type(error).__name__
    text = error.message
    if error.request_id:
        text += f" (request id {error.request_id})"
    return text


def exit_code(error: BaseException) -> int:
    """The documented exit code for an error: 2 for usage and configuration, else 1."""
    usage_or_configuration = (
        AuthenticationError,
        InsufficientCreditsError,
        ConfigurationError,
        ImportError,
        CorpusError,
    )
    return EXIT_USAGE if isinstance(error, usage_or_configuration) else EXIT_FAILED


def _report(error: BaseException) -> int:
    """Print the error in the command line's wording (its own message names the way out)."""
    _say(f"error: {_describe(error)}")
    return exit_code(error)


def _given_settings(
    args: argparse.Namespace, only: Collection[str] | None = None
) -> dict[str, Any]:
    """The settings flags given on the command line (all, or those named in ``only``)."""
    return {
        item.name: getattr(args, item.name)
        for item in SETTINGS
        if item.cli_flag is not None
        and (only is None or item.name in only)
        and getattr(args, item.name, None) is not None
    }


def _embedder(**settings: Any) -> Embedder:
    """An embedder from resolved ``settings``, saying why an environment key was not sent."""
    config = resolve_config(**settings)
    if config.key_note:
        _say(f"note: {config.key_note}")
    return Embedder(config)


def _make_embedder(args: argparse.Namespace) -> Embedder:
    return _embedder(**_given_settings(args))


def _is_stdio(path: Path | None) -> bool:
    return path is not None and str(path) == STDIO


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
        parser.error("--input needs --output FILE (where the vectors are written; - for stdout)")
    if _is_stdio(args.input):
        if not _is_stdio(args.output):
            parser.error(
                "--input - (standard input) needs --output - (standard output): a file"
                " --output is resumable, and resuming needs to read the input again. Save"
                " standard input to a file and give --input FILE."
            )
        return
    if not args.input.is_file():
        parser.error(f"--input {args.input}: no such file")


def _embed(args: argparse.Namespace) -> int:
    _check_embed_args(args)
    embedder = _make_embedder(args)
    if args.input is None:
        return _embed_texts(embedder, args.texts, query=args.query)
    if _is_stdio(args.output):
        return _embed_stream(embedder, args)
    job = CorpusJob(
        embedder,
        args.input,
        args.output,
        input_format=args.input_format,
        query=args.query,
        show_progress=not args.no_progress,
        warn=lambda message: _say(f"warning: {message}"),
    )
    try:
        job.run()
    except (AIMLAPIError, CorpusError, OSError, KeyboardInterrupt) as error:
        if isinstance(error, BrokenPipeError):
            raise
        if job.dropped_tail:
            _say(f"dropped an incomplete last line of {args.output} (from an interrupted run)")
        if isinstance(error, KeyboardInterrupt):
            _say("interrupted")
            code = EXIT_INTERRUPTED
        else:
            code = _report(error)
        if code != EXIT_USAGE and job.total:
            done = job.skipped + job.written
            _say(
                f"{done} of {job.total} texts are in {args.output}"
                f" ({job.written} written by this run)"
                + (f"; failed ids: {_ids(job.failed_ids)}" if job.failed_ids else "")
                + (". Rerun the same command to resume." if done else ".")
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


def _stdin() -> TextIO:
    """Standard input as UTF-8 text split on \\n only, whatever the locale."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:
        return sys.stdin
    return io.TextIOWrapper(buffer, encoding="utf-8", newline="\n")


def _embed_stream(embedder: Embedder, args: argparse.Namespace) -> int:
    """``-o -``: embed --input (a file or standard input) into JSONL on standard output."""
    records: Iterable[Record]
    if _is_stdio(args.input):
        name = "<stdin>"
        records = read_stream(_stdin(), args.input_format, name)
    else:
        name = str(args.input)
        records = read_records(args.input, args.input_format)
    job = StreamJob(
        embedder, records, sys.stdout, query=args.query, show_progress=not args.no_progress
    )
    try:
        job.run(name)
    except (AIMLAPIError, CorpusError, KeyboardInterrupt) as error:
        if isinstance(error, KeyboardInterrupt):
            _say("interrupted")
            code = EXIT_INTERRUPTED
        else:
            code = _report(error)
        _say(
            f"{_count(job.written, 'vector')} written to standard output"
            + (f"; failed ids: {_ids(job.failed_ids)}" if job.failed_ids else "")
            + " (nothing is resumed with -o -: rerun the whole input, or use --output FILE)."
        )
        return code
    usage = embedder.usage
    _say(
        f"{_count(job.written, 'vector')} written to standard output; {usage.requests} requests,"
        f" {usage.prompt_tokens} tokens, {usage.credits_used:g} credits"
    )
    return EXIT_OK


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


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


_T = TypeVar("_T")


class _GaveUp(Exception):
    """The watchdog's deadline passed before the work finished."""


def _within(seconds: float, work: Callable[[], _T]) -> _T:
    """Run ``work`` in a daemon thread and wait for it at most ``seconds``.

    Raises:
        _GaveUp: the deadline passed; the thread is abandoned (it cannot hold the process).
    """
    outcome: list[_T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as error:  # handed to the waiting thread
            failure.append(error)

    thread = threading.Thread(target=run, name="aimlapi-bge-check", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise _GaveUp
    if failure:
        raise failure[0]
    return outcome[0]


def _waiting_for(embedder: Embedder) -> str:
    if embedder.backend == "local":
        return "the local model to load and embed one text"
    waited = f"an answer from {embedder.config.base_url} to POST /embeddings"
    refusals = embedder.usage.rate_limited
    if refusals:
        waited += f" (it answered 429 Too Many Requests {refusals} time(s) so far)"
    return waited


def _check(args: argparse.Namespace) -> int:
    deadline: float = args.timeout
    # Each attempt may take the whole deadline; few retries, so a failing server is reported
    # with its own message rather than cut off by the deadline.
    retries = DEFAULT_MAX_RETRIES if args.max_retries is None else args.max_retries
    settings = {**vars(args), "max_retries": min(retries, CHECK_MAX_RETRIES)}
    embedder = _make_embedder(argparse.Namespace(**settings))
    for name, value in settings_summary(embedder).items():
        _field(name, value)
    sys.stdout.flush()
    started = time.perf_counter()
    try:
        (vector,) = _within(deadline, lambda: embedder.embed([CHECK_TEXT]))
    except _GaveUp:
        _field("model served", "unknown")
        sys.stdout.flush()
        _say(
            f"error: check gave up after {deadline:g} s (--timeout {deadline:g}), still waiting"
            f" for {_waiting_for(embedder)}. Check the server and the network, or raise"
            " --timeout if it is just slow."
        )
        return EXIT_FAILED
    except ModelNotAvailableError as error:
        _field("model served", "no")
        sys.stdout.flush()
        return _report(error)
    except (RateLimitError, ServiceError) as error:
        elapsed = time.perf_counter() - started
        _field("model served", "unknown")
        sys.stdout.flush()
        _say(f"error: check gave up after {elapsed:.1f} s: {_describe(error)}")
        return EXIT_FAILED
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
        # Later writes (the interpreter's final flush) go nowhere instead of failing again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # no real file descriptor (stdout replaced in-process)
            pass
        finally:
            os.close(devnull)
        return EXIT_BROKEN_PIPE
    except (AIMLAPIError, CorpusError, ImportError, OSError) as error:
        return _report(error)


if __name__ == "__main__":
    sys.exit(main())
