"""A stand-in for the AI/ML API's ``/v1/embeddings``, on 127.0.0.1, for tests, benchmarks and demos.

It answers in the real service's shape (``id``, ``created``, ``usage.prompt_tokens``,
``meta.usage.credits_used``, the ``x-aimlapi-credits-used`` header, the flat error body
``{message, path, requestId, statusCode, timestamp}``) with deterministic, L2-normalised
vectors derived from each text, and can imitate self-hosted engines' error shapes
(``mode="tei"``, ``"infinity"``, ``"openai"``).

Knobs: latency per request, max items per request, max requests in flight (beyond it: 429
with ``Retry-After``), a required key, served models, answers out of order, and scripted
faults (:meth:`StandInServer.inject`). Everything received is recorded for assertions.

Standard library and numpy only. Usage::

    with StandInServer(latency=0.05, max_batch=32) as server:
        embedder = Embedder(resolve_config(base_url=server.url, api_key=server.api_key))
        ...
        assert server.peak_in_flight <= 8
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import re
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import numpy as np

from aimlapi_bge.models import retired_on

__all__ = ["RecordedRequest", "StandInServer", "count_tokens", "standin_vector"]

Mode = Literal["aimlapi", "tei", "infinity", "openai"]
_TOKEN = re.compile(r"\w+|[^\w\s]")

#: Fault names understood by :meth:`StandInServer.inject` besides HTTP status codes.
FAULTS = (
    "drop",  # close the connection without answering
    "truncate",  # promise a longer body than is sent, then close
    "invalid-json",  # 200 with a body that is not JSON
    "bad-count",  # one embedding fewer than inputs
    "bad-dim",  # the last vector one dimension short
    "dup-index",  # two items with index 0
    "missing-index",  # an item without 'index'
    "nan",  # a NaN in the first vector
    "slow",  # sleep `slow_seconds` before answering (for client timeouts)
)


def count_tokens(text: str) -> int:
    """A BERT-like token count: words and punctuation marks, plus [CLS] and [SEP].

    "Laura is a DJ." gives 7, the count the AI/ML API reports for it.
    """
    return len(_TOKEN.findall(text)) + 2


_WORD = re.compile(r"[a-z0-9]+")


def _seeded_unit(seed_text: str, dimension: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(seed_text.encode("utf-8")).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dimension)
    unit: np.ndarray = vector / np.linalg.norm(vector)
    return unit


def standin_vector(text: str, dimension: int = 768) -> np.ndarray:
    """The stand-in's deterministic unit vector for ``text``.

    A bag of words: the normalised sum of one fixed random direction per lower-cased word, plus
    a small text-specific component. Texts sharing words are close, so retrieval tests can
    check that the right passage comes first; distinct texts get distinct vectors.
    """
    words = _WORD.findall(text.lower())
    vector = 0.05 * _seeded_unit(text, dimension)
    for word in words:
        vector = vector + _seeded_unit("word:" + word, dimension)
    unit: np.ndarray = vector / np.linalg.norm(vector)
    return unit


@dataclass
class RecordedRequest:
    """One request as the stand-in received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class _Settings:
    dimension: int = 768
    latency: float = 0.0
    max_batch: int | None = None
    max_in_flight: int | None = None
    retry_after: float = 0.05
    api_key: str | None = "standin-key"
    models: tuple[str, ...] = ("BAAI/bge-base-en-v1.5",)
    max_tokens: int = 512
    mode: Mode = "aimlapi"
    path_prefix: str = "/v1"
    shuffle: bool = True
    honour_base64: bool = False
    slow_seconds: float = 5.0
    port: int = 0
    fail_on_text: dict[str, int] = field(default_factory=dict)
    gate: int | None = None
    gate_timeout: float = 20.0
    record: bool = True
    faults: deque[int | str] = field(default_factory=deque)


class _Refusal(Exception):
    def __init__(self, status: int, message: str, kind: str = "validation") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


class StandInServer:
    """A threaded HTTP server on 127.0.0.1 imitating the AI/ML API's embeddings endpoint.

    Args:
        dimension: vector size (768, as bge-base-en-v1.5).
        latency: seconds each answer is delayed (simulates the network and the model).
        max_batch: items per request above which the server refuses the request.
        max_in_flight: concurrent requests above which it answers 429 with ``Retry-After``.
        retry_after: the ``Retry-After`` value in seconds.
        api_key: the key it requires as ``Authorization: Bearer``; ``None`` requires none.
        models: the models it serves; others get 404 (the deprecation message for a retired model).
        max_tokens: per-text token limit (see :func:`count_tokens`); longer texts get 400.
        mode: error-body and limit conventions: ``"aimlapi"`` (flat body), ``"tei"``
            (``{"error", "error_type"}``, 413/422), ``"infinity"`` (FastAPI ``{"detail"}`` for
            422/401, OpenAI ``{"error": {}}`` for 400/429), ``"openai"``.
        path_prefix: ``"/v1"``, or ``""`` to serve ``/embeddings`` as Infinity does by default.
        shuffle: answer the items in reverse order (clients must use ``index``).
        honour_base64: answer base64 when asked (the AI/ML API answers floats regardless).
        port: the TCP port on 127.0.0.1 (0, the default, picks a free one).
        fail_on_text: ``{text: status}``: every request holding ``text`` is answered with that
            status (a persistent fault tied to one batch, for partial-failure tests).
        gate: hold every embeddings request until this many are in flight at once; the gate
            then stays open. A client that never reaches it gets 503 after ``gate_timeout``
            seconds, so a test proves saturation (``peak_in_flight == N``) without timing.
    """

    def __init__(self, **settings: Any) -> None:
        self.settings = _Settings(**settings)
        self.requests: list[RecordedRequest] = []
        self.request_count = 0
        self.peak_in_flight = 0
        self.rejected_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._gate = threading.Condition(self._lock)
        self._gate_open = False
        self._fragments: dict[str, str] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> StandInServer:
        handler = type("Handler", (_Handler,), {"standin": self})
        server = _QuietServer(("127.0.0.1", self.settings.port), handler)
        server.daemon_threads = True
        server.request_queue_size = 256
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> StandInServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the server first"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL to give a client (``http://127.0.0.1:PORT/v1``)."""
        return f"http://127.0.0.1:{self.port}{self.settings.path_prefix}"

    @property
    def api_key(self) -> str | None:
        return self.settings.api_key

    # --- control --------------------------------------------------------------------------

    def inject(self, *faults: int | str) -> None:
        """Answer the next requests with these faults, in order (status codes or FAULTS)."""
        with self._lock:
            self.settings.faults.extend(faults)

    def reset(self) -> None:
        """Forget recorded requests, counters and pending faults."""
        with self._lock:
            self.requests.clear()
            self.request_count = 0
            self.peak_in_flight = 0
            self.rejected_in_flight = 0
            self._gate_open = False
            self.settings.faults.clear()

    @property
    def embedding_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/embeddings")]

    @property
    def inputs_seen(self) -> list[str]:
        """Every text received, request by request, in arrival order."""
        seen: list[str] = []
        for request in self.embedding_requests:
            body = request.body if isinstance(request.body, dict) else {}
            items = body.get("input")
            seen.extend([items] if isinstance(items, str) else list(items or []))
        return seen

    # --- answers --------------------------------------------------------------------------

    def _fragment(self, text: str) -> str:
        fragment = self._fragments.get(text)
        if fragment is None:
            vector = standin_vector(text, self.settings.dimension)
            fragment = "[" + ",".join(repr(float(x)) for x in vector) + "]"
            self._fragments[text] = fragment
        return fragment

    def error_body(
        self, status: int, message: str, path: str, kind: str = "validation"
    ) -> dict[str, Any]:
        mode = self.settings.mode
        if mode == "tei":
            return {"error": message, "error_type": kind.capitalize()}
        if mode == "infinity" and status in (401, 422):
            if status == 401:
                return {"detail": "Unauthorized"}
            return {"detail": [{"loc": ["body", "input"], "msg": message, "type": kind}]}
        if mode in ("infinity", "openai"):
            return {"error": {"message": message, "type": kind, "param": None, "code": status}}
        return {
            "message": message,
            "path": path,
            "requestId": str(uuid.uuid4()),
            "statusCode": status,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        }

    def check(self, headers: dict[str, str], body: Any) -> list[str]:
        """Validate a request like the service does; return its inputs or raise _Refusal."""
        settings = self.settings
        if settings.api_key is not None and (
            headers.get("authorization") != f"Bearer {settings.api_key}"
        ):
            raise _Refusal(
                401,
                "This request requires a valid API key. Get one at https://aimlapi.com/app/keys",
                "authentication",
            )
        if not isinstance(body, dict):
            raise _Refusal(400, "Body validation error! Body must be a JSON object")
        model = body.get("model")
        if model not in settings.models:
            if isinstance(model, str) and retired_on(model) is not None:
                message = f"Model {model} is deprecated and no longer available"
            else:
                message = f"Model {model} not found"
            raise _Refusal(404, message, "not_found")
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not texts:
            raise _Refusal(400, "Body validation error! input must be a non-empty string or array")
        if settings.max_batch is not None and len(texts) > settings.max_batch:
            if settings.mode == "tei":
                raise _Refusal(
                    413,
                    f"batch size {len(texts)} > maximum allowed batch size {settings.max_batch}",
                )
            if settings.mode == "infinity":
                raise _Refusal(
                    422, f"List should have at most {settings.max_batch} items after validation"
                )
            raise _Refusal(413, f"Request entity too large: at most {settings.max_batch} items")
        for position, text in enumerate(texts):
            if not isinstance(text, str):
                raise _Refusal(400, f"Body validation error! input[{position}] must be a string")
            if not text:
                raise _Refusal(
                    400,
                    f"Body validation error! input[{position}] must be longer than or equal to 1 characters",
                )
            if count_tokens(text) > settings.max_tokens:
                status = 413 if settings.mode == "tei" else 400
                raise _Refusal(
                    status,
                    f"Input validation error: input[{position}] must have less than"
                    f" {settings.max_tokens} tokens. Given: {count_tokens(text)}",
                )
        return texts

    def answer(self, texts: list[str], body: dict[str, Any], fault: int | str | None) -> bytes:
        """The JSON body for a successful request (with a data-level fault if one is due)."""
        order = list(range(len(texts)))
        if self.settings.shuffle:
            order.reverse()
        use_base64 = self.settings.honour_base64 and body.get("encoding_format") == "base64"
        items = []
        for index in order:
            if use_base64:
                vector = standin_vector(texts[index], self.settings.dimension).astype("<f4")
                embedding = json.dumps(base64.b64encode(vector.tobytes()).decode())
            else:
                embedding = self._fragment(texts[index])
            items.append((index, embedding))
        if fault == "bad-count":
            items = items[:-1]
        elif fault == "dup-index" and len(items) > 1:
            items[1] = (items[0][0], items[1][1])
        elif fault == "bad-dim":
            index, embedding = items[-1]
            items[-1] = (index, embedding.rsplit(",", 1)[0] + "]")
        elif fault == "nan":
            index, embedding = items[0]
            items[0] = (index, "[NaN," + embedding[1:])
        data = ",".join(
            (
                '{"object":"embedding",'
                if fault == "missing-index" and n == 0
                else f'{{"object":"embedding","index":{index},'
            )
            + f'"embedding":{embedding}}}'
            for n, (index, embedding) in enumerate(items)
        )
        tokens = sum(count_tokens(text) for text in texts)
        head = {
            "object": "list",
            "model": body.get("model"),
            "usage": {
                "prompt_tokens": tokens,
                "total_tokens": tokens,
                "completion_tokens": 0,
                "prompt_tokens_details": None,
            },
            "id": f"embd-{uuid.uuid4().hex}",
            "created": int(time.time()),
            "meta": {"usage": {"credits_used": self.credits_for(texts)}},
        }
        return (json.dumps(head)[:-1] + ',"data":[' + data + "]}").encode()

    def credits_for(self, texts: list[str]) -> int:
        """Credits charged: one per 8 tokens, at least one ("Laura is a DJ." costs 1)."""
        return max(1, round(sum(count_tokens(text) for text in texts) / 8))

    def next_fault(self) -> int | str | None:
        with self._lock:
            return self.settings.faults.popleft() if self.settings.faults else None

    def enter(self) -> bool:
        with self._lock:
            limit = self.settings.max_in_flight
            if limit is not None and self._in_flight >= limit:
                self.rejected_in_flight += 1
                return False
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            gate = self.settings.gate
            if gate is not None and self._in_flight >= gate:
                self._gate_open = True
                self._gate.notify_all()
            return True

    def wait_at_gate(self) -> bool:
        """Hold the request until ``gate`` requests are in flight; False if that never came."""
        with self._lock:
            if self.settings.gate is None:
                return True
            return self._gate.wait_for(lambda: self._gate_open, self.settings.gate_timeout)

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.request_count += 1
            if self.settings.record:
                self.requests.append(request)


class _QuietServer(ThreadingHTTPServer):
    """Stays silent when a client hangs up first (timeouts and dropped connections are tested)."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    standin: StandInServer
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY, as production servers set it: headers and body go out in two writes, and
    # with Nagle's algorithm the body would wait ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _refuse(
        self,
        status: int,
        message: str,
        kind: str = "validation",
        headers: dict[str, str] | None = None,
    ) -> None:
        body = self.standin.error_body(status, message, self.path, kind)
        self._send(status, json.dumps(body).encode(), headers)

    def do_GET(self) -> None:
        standin = self.standin
        standin.record(RecordedRequest("GET", self.path, dict(self.headers.items()), None))
        if self.path.rstrip("/") == f"{standin.settings.path_prefix}/models":
            models = [
                {"id": m, "object": "model", "type": "embedding"} for m in standin.settings.models
            ]
            self._send(200, json.dumps({"object": "list", "data": models}).encode())
        else:
            self._refuse(404, f"Cannot GET {self.path}", "not_found")

    def do_POST(self) -> None:
        standin = self.standin
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        standin.record(RecordedRequest("POST", self.path, headers, body))
        if self.path != f"{standin.settings.path_prefix}/embeddings":
            self._refuse(404, f"Cannot POST {self.path}", "not_found")
            return
        if not standin.enter():
            retry = standin.settings.retry_after
            self._refuse(
                429,
                "Too many requests: concurrency limit reached",
                "rate_limit",
                {"retry-after": f"{retry:g}"},
            )
            return
        try:
            self._embeddings(headers, body)
        finally:
            standin.leave()

    def _embeddings(self, headers: dict[str, str], body: Any) -> None:
        standin = self.standin
        if not standin.wait_at_gate():
            self._refuse(503, f"gate: fewer than {standin.settings.gate} requests in flight")
            return
        fault = standin.next_fault()
        if standin.settings.latency:
            time.sleep(standin.settings.latency)
        if fault == "slow":
            time.sleep(standin.settings.slow_seconds)
        if fault == "drop":
            self.close_connection = True
            self.connection.close()
            return
        inputs = body.get("input") if isinstance(body, dict) else None
        for text in inputs if isinstance(inputs, list) else [inputs]:
            if isinstance(text, str) and text in standin.settings.fail_on_text:
                fault = standin.settings.fail_on_text[text]
        if isinstance(fault, int):
            headers_out = (
                {"retry-after": f"{standin.settings.retry_after:g}"} if fault == 429 else None
            )
            self._refuse(fault, f"Injected fault {fault}", "injected", headers_out)
            return
        try:
            texts = standin.check(headers, body)
        except _Refusal as refusal:
            self._refuse(refusal.status, refusal.message, refusal.kind)
            return
        if fault == "invalid-json":
            self._send(200, b'{"object": "list", "data": [')
            return
        payload = standin.answer(texts, body, fault)
        credits = standin.credits_for(texts)
        extra = {  # the tracing headers the AI/ML API documents
            "x-aimlapi-credits-used": str(credits),
            "x-aimlapi-usd-spent": f"{credits / 2_000_000:.8f}",
            "x-inference-id": str(uuid.uuid4()),
        }
        if fault == "truncate":
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.close()
            return
        self._send(200, payload, extra)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a stand-in server from a shell until interrupted (``python -m support.standin``)."""
    parser = argparse.ArgumentParser(
        prog="python -m support.standin",
        description="A stand-in for the AI/ML API's /v1/embeddings on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument(
        "--api-key", default="standin-key", help="required Bearer key; '' accepts any request"
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    parser.add_argument("--max-batch", type=int, default=None, help="items per request at most")
    parser.add_argument("--dimension", type=int, default=768)
    args = parser.parse_args(argv)
    server = StandInServer(
        port=args.port,
        api_key=args.api_key or None,
        latency=args.latency,
        max_batch=args.max_batch,
        dimension=args.dimension,
        record=False,  # a long-running server keeps no request log
    )
    with server:
        print(f"AIMLAPI_BASE_URL={server.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
