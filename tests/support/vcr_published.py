"""Build ``cassettes/published_example.yaml`` from the AI/ML API's documented exchange.

The documentation page for BAAI/bge-base-en-v1.5 publishes one real request and response
(input "Laura is a DJ.", 768 floats, 7 prompt tokens, 1 credit). Its data is copied verbatim in
``cassettes/published_example.source.json``; this module turns it into a vcrpy cassette:

* request: ``POST https://api.aimlapi.com/v1/embeddings`` with the documented JSON body
  (``input`` as a plain string, as published), ``content-type: application/json`` and
  ``authorization: Bearer PLACEHOLDER``;
* response: 200 with ``content-type: application/json`` and the documented response as JSON.
  ``json.dumps`` writes each float with Python's shortest round-trip repr, so parsing the body
  gives exactly the published values.

It is not a recording, so ``make record`` never touches it. Rebuild it with
``python tests/vcr_published.py`` (a test checks the file on disk equals this build).
"""

from __future__ import annotations

import json
from typing import Any

from vcr.request import Request
from vcr.serialize import serialize
from vcr.serializers import yamlserializer

from support.vcr_support import CREDENTIAL_HEADERS, PUBLISHED_CASSETTE, PUBLISHED_DIR

PUBLISHED_SOURCE = PUBLISHED_DIR / "published_example.source.json"
PUBLISHED_TEXT = "Laura is a DJ."


def published_source() -> dict[str, Any]:
    """The documented request and response, as copied into the repository."""
    source: dict[str, Any] = json.loads(PUBLISHED_SOURCE.read_text(encoding="utf-8"))
    return source


def published_vector() -> list[float]:
    """The 768 floats the documentation shows for "Laura is a DJ."."""
    vector: list[float] = published_source()["response"]["data"][0]["embedding"]
    return vector


def build_published_cassette() -> str:
    """The cassette's YAML text, built from :func:`published_source`."""
    source = published_source()
    documented = source["request"]
    request = Request(
        documented["method"],
        documented["url"],
        json.dumps(documented["json"]).encode(),
        {
            "content-type": "application/json",
            "authorization": CREDENTIAL_HEADERS["authorization"],
        },
    )
    response = {
        "status": {"code": 200, "message": "OK"},
        "headers": {"content-type": ["application/json"]},
        "body": {"string": json.dumps(source["response"]).encode()},
    }
    text: str = serialize({"requests": [request], "responses": [response]}, yamlserializer)
    return text


def main() -> None:
    """Write ``cassettes/published_example.yaml``."""
    PUBLISHED_CASSETTE.write_text(build_published_cassette(), encoding="utf-8")
    print(f"wrote {PUBLISHED_CASSETTE}")


if __name__ == "__main__":
    main()
