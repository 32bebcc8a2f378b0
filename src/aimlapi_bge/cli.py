"""The ``aimlapi-bge`` command line: embed texts or a corpus file, check a key and a model.

.. code-block:: bash

    aimlapi-bge embed "Laura is a DJ." "Paris is in France."      # JSON list of vectors
    aimlapi-bge embed --input corpus.jsonl --output vectors.jsonl  # resumable file job
    cat corpus.jsonl | aimlapi-bge embed -i - -o - > vectors.jsonl  # a pipe, no resume
    aimlapi-bge check                                              # key, model, dimension, latency

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
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
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


def _common_options() -> argparse.ArgumentParser:
    """The settings' options, one per setting with a ``cli_flag`` in SETTINGS."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("settings (shared by all commands)")
    for item in SETTINGS:
        if item.cli_flag is None:
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


def _make_embedder(args: argparse.Namespace) -> Embedder:
    given = {
        item.name: getattr(args, item.name)
        for item in SETTINGS
        if item.cli_flag is not None and getattr(args, item.name, None) is not None
    }
    config = resolve_config(**given)
    if config.key_note:
        _say(f"note: {config.key_note}")
    return Embedder(config)


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
