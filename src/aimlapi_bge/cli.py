"""The ``aimlapi-bge`` command line: embed texts or a corpus file, check a key and a model.

.. code-block:: bash

    aimlapi-bge embed "Laura is a DJ." "Paris is in France."      # JSON list of vectors
    aimlapi-bge embed --input corpus.jsonl --output vectors.jsonl  # resumable file job
    aimlapi-bge check                                              # key, model, dimension, latency

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
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aimlapi_bge import __version__
from aimlapi_bge.config import normalise_setting, resolve_config
from aimlapi_bge.corpus import CorpusError, CorpusJob, RecordId
from aimlapi_bge.embedder import Embedder, describe
from aimlapi_bge.errors import (
    AIMLAPIError,
    AuthenticationError,
    ConfigurationError,
    InsufficientCreditsError,
    InvalidInputError,
    ModelNotAvailableError,
)
from aimlapi_bge.settings import SETTINGS, Setting

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
       an untrusted host, an invalid AIMLAPI_* value, local backend or model files unavailable
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
    return parser


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
    given = {
        item.name: getattr(args, item.name)
        for item in SETTINGS
        if item.cli_flag is not None and getattr(args, item.name, None) is not None
    }
    config = resolve_config(**given)
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
