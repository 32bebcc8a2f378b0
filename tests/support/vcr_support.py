"""vcrpy set-up for the cassette tests: where cassettes live, how requests match, what is scrubbed.

* Cassettes are YAML files in ``cassettes/`` at the repository root (``AIMLAPI_BGE_CASSETTE_DIR``
  points recordings elsewhere, e.g. a temporary directory). The published-example cassette is
  always read from ``cassettes/``: it is built from the documentation, not recorded.
* Requests match on method, path and JSON body compared as data: key order is ignored, and a
  lone string ``input`` equals a one-element list (the documented request sent
  ``"input": "Laura is a DJ."``, our client sends ``["Laura is a DJ."]``; the API treats both as
  one text).
* Scrubbing runs before anything is written (and again when a cassette is loaded): request
  headers keep only ``content-type`` and ``accept``, with ``authorization`` replaced by
  ``Bearer PLACEHOLDER`` and ``api-key`` / ``x-api-key`` by ``PLACEHOLDER``; response headers keep
  only ``content-type``, ``retry-after`` and ``x-aimlapi-credits-used`` (so ``set-cookie``,
  ``x-inference-id``, ``x-aimlapi-usd-spent``, dates and request ids are dropped); any key seen
  while recording is replaced by ``PLACEHOLDER`` in URIs and bodies. Transient answers (408,
  429, 5xx) are not recorded: the client retries them and the answer that follows is recorded.
* Recording: the key and base URL to record with are read from ``AIMLAPI_API_KEY`` and
  ``AIMLAPI_BASE_URL`` when this module is imported (the autouse fixture in ``conftest.py``
  clears them before each test).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import vcr
import yaml
from vcr.cassette import Cassette
from vcr.request import Request

REPO_ROOT = Path(__file__).resolve().parents[2]
PUBLISHED_DIR = REPO_ROOT / "cassettes"
PUBLISHED_NAME = "published_example"
PUBLISHED_CASSETTE = PUBLISHED_DIR / f"{PUBLISHED_NAME}.yaml"
CASSETTE_DIR = Path(os.environ.get("AIMLAPI_BGE_CASSETTE_DIR") or PUBLISHED_DIR).resolve()

PLACEHOLDER_KEY = "PLACEHOLDER"
RECORDING_BASE_URL = os.environ.get("AIMLAPI_BASE_URL") or None
RECORDING_API_KEY = os.environ.get("AIMLAPI_API_KEY") or os.environ.get("AIML_API_KEY") or None
_RECORD_ENV = os.environ.get("AIMLAPI_BGE_RECORD") == "1"

CREDENTIAL_HEADERS = {
    "authorization": f"Bearer {PLACEHOLDER_KEY}",
    "api-key": PLACEHOLDER_KEY,
    "x-api-key": PLACEHOLDER_KEY,
}
KEPT_REQUEST_HEADERS = frozenset({"content-type", "accept", *CREDENTIAL_HEADERS})
KEPT_RESPONSE_HEADERS = frozenset({"content-type", "retry-after", "x-aimlapi-credits-used"})
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_BEARER = re.compile(r"[Bb]earer\s+([A-Za-z0-9._~+/-]{8,}=*)")  # 8+: not prose

RecordMode = Literal["none", "new_episodes", "rewrite"]


def record_mode(option: str | None) -> RecordMode:
    """The session's mode from ``--record-mode`` (pytest-recording) or ``AIMLAPI_BGE_RECORD=1``.

    ``none`` (default) replays only; ``new_episodes`` (and ``once``) keeps what is recorded and
    adds what is missing; ``rewrite`` (and ``all``) records every cassette afresh.
    """
    if _RECORD_ENV or option in ("rewrite", "all"):
        return "rewrite"
    if option in ("new_episodes", "once"):
        return "new_episodes"
    return "none"


# --- matching --------------------------------------------------------------------------------


def normalised_body(body: bytes | str | None) -> Any:
    """A request body as comparable data: parsed JSON, a lone ``input`` string as a list."""
    if not body:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if isinstance(data, dict) and isinstance(data.get("input"), str):
        data = {**data, "input": [data["input"]]}
    return data


def json_body(r1: Request, r2: Request) -> None:
    """vcrpy matcher: the two bodies hold the same JSON data."""
    first, second = normalised_body(r1.body), normalised_body(r2.body)
    assert first == second, f"JSON bodies differ: {first!r:.200} != {second!r:.200}"


# --- scrubbing -------------------------------------------------------------------------------


def _redact(value: Any, secrets: Iterable[str]) -> Any:
    for secret in secrets:
        if isinstance(value, str):
            value = value.replace(secret, PLACEHOLDER_KEY)
        elif isinstance(value, bytes):
            value = value.replace(secret.encode(), PLACEHOLDER_KEY.encode())
    return value


class Scrubber:
    """vcrpy's ``before_record_request`` / ``before_record_response`` hooks.

    Every key seen in an ``authorization`` / ``api-key`` header is remembered and also removed
    from URIs and bodies, so a key given in code is scrubbed as well as one from the environment.
    """

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self.secrets: set[str] = {s for s in secrets if s and s != PLACEHOLDER_KEY}

    def _learn(self, name: str, value: str) -> None:
        token = value.split(None, 1)[1] if name == "authorization" and " " in value else value
        if token.strip() and token != PLACEHOLDER_KEY:
            self.secrets.add(token.strip())

    def request(self, request: Request) -> Request:
        for name in list(request.headers):
            lower = name.lower()
            if lower in CREDENTIAL_HEADERS:
                self._learn(lower, str(request.headers[name]))
                request.headers[name] = CREDENTIAL_HEADERS[lower]
            elif lower not in KEPT_REQUEST_HEADERS:
                del request.headers[name]
        request.uri = _redact(request.uri, self.secrets)
        request.body = _redact(request.body, self.secrets)
        return request

    def response(self, response: dict[str, Any]) -> dict[str, Any] | None:
        if response["status"]["code"] in TRANSIENT_STATUSES:
            return None
        response["headers"] = {
            name: values
            for name, values in response["headers"].items()
            if name.lower() in KEPT_RESPONSE_HEADERS
        }
        body = response["body"]
        body["string"] = _redact(body["string"], self.secrets)
        return response


def make_vcr(cassette_dir: Path, secrets: Iterable[str | None] = ()) -> vcr.VCR:
    """A VCR that matches on method, path and JSON body and scrubs before writing."""
    scrubber = Scrubber([RECORDING_API_KEY, *secrets])
    recorder = vcr.VCR(
        cassette_library_dir=str(cassette_dir),
        serializer="yaml",
        record_mode="none",
        match_on=["method", "path", "json_body"],
        before_record_request=scrubber.request,
        before_record_response=scrubber.response,
        decode_compressed_response=True,
    )
    recorder.register_matcher("json_body", json_body)
    return recorder


_rewritten: set[Path] = set()


@contextmanager
def use_recording(
    name: str, mode: RecordMode, cassette_dir: Path = CASSETTE_DIR
) -> Iterator[Cassette]:
    """Replay (or record, in a recording session) the cassette ``<cassette_dir>/<name>.yaml``.

    In ``rewrite`` mode a cassette is emptied the first time a session opens it; tests that share
    it then add what they need and replay what an earlier test recorded. The published example
    is never recorded.
    """
    path = cassette_dir / f"{name}.yaml"
    if mode == "none" or name == PUBLISHED_NAME:
        if not path.is_file():
            raise FileNotFoundError(
                f"Cassette {path} is missing: run `make record` (see cassettes/README.md)."
            )
        vcr_mode = "none"
    else:
        if mode == "rewrite" and path not in _rewritten:
            path.unlink(missing_ok=True)
            _rewritten.add(path)
        vcr_mode = "new_episodes"
    with make_vcr(cassette_dir).use_cassette(
        path.name, record_mode=vcr_mode, allow_playback_repeats=True
    ) as tape:
        if vcr_mode != "none":
            tape.rewound = True  # replay exchanges recorded earlier in this block, not re-send them
        yield tape


# --- reading cassettes -----------------------------------------------------------------------


def load_interactions(path: Path) -> list[dict[str, Any]]:
    """The raw interactions of a cassette, parsed with PyYAML's safe loader (not vcrpy)."""
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    interactions: list[dict[str, Any]] = data["interactions"]
    return interactions


def _texts(request_body: str) -> list[str]:
    raw = json.loads(request_body)["input"]
    return [raw] if isinstance(raw, str) else list(raw)


def recorded_inputs(path: Path) -> list[list[str]]:
    """The ``input`` texts of every recorded request, one list per request."""
    return [_texts(i["request"]["body"]) for i in load_interactions(path)]


def recorded_vectors(path: Path) -> dict[str, list[float]]:
    """Text -> the vector its recorded answer gave it (placed by ``index``)."""
    vectors: dict[str, list[float]] = {}
    for interaction in load_interactions(path):
        texts = _texts(interaction["request"]["body"])
        answer = json.loads(interaction["response"]["body"]["string"])
        for item in answer["data"]:
            vectors[texts[item["index"]]] = item["embedding"]
    return vectors


def recorded_usage(path: Path) -> dict[tuple[str, ...], tuple[int, float]]:
    """Inputs of each recorded request -> the ``prompt_tokens`` and ``credits_used`` charged."""
    usage: dict[tuple[str, ...], tuple[int, float]] = {}
    for interaction in load_interactions(path):
        answer = json.loads(interaction["response"]["body"]["string"])
        texts = tuple(_texts(interaction["request"]["body"]))
        usage[texts] = (answer["usage"]["prompt_tokens"], answer["meta"]["usage"]["credits_used"])
    return usage


def recorded_hosts(path: Path) -> set[str]:
    """The hosts a cassette's requests went to."""
    return {urlsplit(i["request"]["uri"]).hostname or "" for i in load_interactions(path)}


# --- credential scan -------------------------------------------------------------------------


def _header_problems(where: str, headers: dict[str, list[str]], kept: frozenset[str]) -> list[str]:
    problems = []
    for name, values in headers.items():
        lower = name.lower()
        if lower not in kept:
            problems.append(f"{where}: unscrubbed header {name!r}")
        elif lower in CREDENTIAL_HEADERS and values != [CREDENTIAL_HEADERS[lower]]:
            problems.append(f"{where}: header {name!r} holds {values!r}, not the placeholder")
    return problems


def find_credential_leaks(directory: Path, secrets: Iterable[str | None] = ()) -> list[str]:
    """Every credential-like thing under ``directory``: bearer tokens other than the placeholder,
    the given secrets anywhere, credential headers not set to the placeholder, cookies and any
    response header outside the kept set."""
    known = [s for s in secrets if s and s != PLACEHOLDER_KEY]
    problems: list[str] = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8", errors="replace")
        name = str(path.relative_to(directory))
        problems += [
            f"{name}: bearer token {m.group(1)[:4]}…"
            for m in _BEARER.finditer(text)
            if m.group(1) != PLACEHOLDER_KEY
        ]
        problems += [f"{name}: holds a secret key ({s[:3]}…)" for s in known if s in text]
        if path.suffix == ".yaml":
            for n, interaction in enumerate(load_interactions(path)):
                where = f"{name} #{n}"
                problems += _header_problems(
                    f"{where} request", interaction["request"]["headers"], KEPT_REQUEST_HEADERS
                )
                problems += _header_problems(
                    f"{where} response", interaction["response"]["headers"], KEPT_RESPONSE_HEADERS
                )
    return problems
