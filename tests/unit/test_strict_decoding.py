"""The decoder and the body bound on their own: hostile bytes in, a typed error out."""

from __future__ import annotations

import gzip
import zlib

import pytest

from aimlapi_bge.decoding import KNOWN_DIMENSIONS, decode_embeddings_response, known_dimension
from aimlapi_bge.errors import ResponseValidationError
from aimlapi_bge.http_clients import _Body
from aimlapi_bge.transport import body_limit


def body(values: str) -> bytes:
    return b'{"data": [{"index": 0, "embedding": [' + values.encode() + b"]}]}"


@pytest.mark.parametrize(
    "content",
    [
        b"[" * 200_000 + b"]" * 200_000,
        b'{"data": [], "x": ' + b"{" * 3000 + b"}" * 3000 + b"}",
        body("1" + "0" * 5000),
        body("0.5, true"),
        body("0.5, false"),
        body('"0.5"'),
        body("NaN"),
        body("Infinity, 1"),
        body("1e999"),
        body("0.1, null"),
        body("[0.1]"),
        b"",
        b"\xff\xfe",
    ],
    ids=lambda content: repr(content[:24]),
)
def test_pathological_json_is_a_validation_error(content: bytes) -> None:
    with pytest.raises(ResponseValidationError):
        decode_embeddings_response(content, 1)


def test_integer_values_are_floats() -> None:
    (vector,) = decode_embeddings_response(body("0, 1, -2"), 1).vectors
    assert vector == [0.0, 1.0, -2.0] and all(type(value) is float for value in vector)


def test_usage_numbers_must_be_numbers() -> None:
    content = (
        b'{"data": [{"index": 0, "embedding": [0.5]}], "usage": {"prompt_tokens": "7"},'
        b' "meta": {"usage": {"credits_used": true}}}'
    )
    result = decode_embeddings_response(content, 1)
    assert (result.prompt_tokens, result.credits_used) == (None, None)


def test_known_dimensions_live_in_one_table() -> None:
    assert (
        known_dimension("BAAI/bge-base-en-v1.5") == 768 == KNOWN_DIMENSIONS["baai/bge-base-en-v1.5"]
    )
    assert known_dimension("acme/unknown") is None


def test_the_body_bound_grows_with_the_batch() -> None:
    one = body_limit(1, 768)
    assert one > 768 * 25  # room for one pretty-printed vector
    assert body_limit(128, 768) > 128 * 768 * 25
    assert body_limit(128, 768) < 16 * 1024 * 1024
    assert body_limit(1, None) > one  # unknown dimension: a generous assumption


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b)[2:-4]),
    ],
    ids=["gzip", "zlib-deflate", "raw-deflate"],
)
def test_compressed_bodies_decode_within_the_bound(encoding: str, pack: object) -> None:
    data = b'{"data": []}' * 1000
    packed = pack(data)  # type: ignore[operator]
    collector = _Body(encoding, limit=len(data))
    for start in range(0, len(packed), 100):
        collector.feed(packed[start : start + 100])
    assert collector.finish() == data


def test_a_decompression_bomb_stops_at_the_bound() -> None:
    bomb = gzip.compress(b"\0" * 50_000_000, compresslevel=1)
    collector = _Body("gzip", limit=1_000_000)
    with pytest.raises(ResponseValidationError, match="exceeds 1000000 bytes"):
        collector.feed(bomb)  # one feed: the bound holds inside a single chunk too


def test_an_encoding_not_asked_for_is_refused() -> None:
    with pytest.raises(ResponseValidationError, match="br"):
        _Body("br", limit=100)
