"""The cassettes hold no credential, say where they came from, and re-record.

``make record`` runs ``test_no_cassette_holds_a_credential`` right after recording, with the
recording key read from ``AIMLAPI_API_KEY`` at import time.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aimlapi_bge.config import is_loopback
from langchain_aimlapi_bge import AIMLBGEEmbeddings
from support.helpers import expected
from support.standin import StandInServer, count_tokens
from support.vcr_published import PUBLISHED_SOURCE, build_published_cassette
from support.vcr_support import (
    CASSETTE_DIR,
    PLACEHOLDER_KEY,
    PUBLISHED_CASSETTE,
    PUBLISHED_DIR,
    RECORDING_API_KEY,
    REPO_ROOT,
    Scrubber,
    find_credential_leaks,
    make_vcr,
    recorded_hosts,
    recorded_inputs,
    use_recording,
)

README = PUBLISHED_DIR / "README.md"
STANDIN_DEFAULT_KEY = StandInServer().api_key


# --- no credential ------------------------------------------------------------------------------


def test_no_cassette_holds_a_credential() -> None:
    secrets = [RECORDING_API_KEY, STANDIN_DEFAULT_KEY]
    assert find_credential_leaks(CASSETTE_DIR, secrets) == []
    assert find_credential_leaks(PUBLISHED_DIR, secrets) == []


def test_the_credential_scan_finds_planted_leaks(tmp_path: Path) -> None:
    """The scan above can fail: each kind of leak is reported."""
    clean = PUBLISHED_CASSETTE.read_text(encoding="utf-8")
    (tmp_path / "bearer.yaml").write_text(clean.replace("Bearer PLACEHOLDER", "Bearer sk-live1"))
    (tmp_path / "header.yaml").write_text(
        clean.replace("    headers:\n", "    headers:\n      x-api-key:\n      - k-123\n", 1)
    )
    (tmp_path / "cookie.yaml").write_text(
        clean.replace(
            "      content-type:\n      - application/json\n    status:",
            "      content-type:\n      - application/json\n      set-cookie:\n      - s=1\n"
            "    status:",
        )
    )
    (tmp_path / "notes.md").write_text("recorded with my-secret-key\n")
    leaks = find_credential_leaks(tmp_path, ["my-secret-key"])
    assert any(leak.startswith("bearer.yaml: bearer token sk-l") for leak in leaks)
    assert any("bearer.yaml #0 request: header 'authorization' holds" in leak for leak in leaks)
    assert any("header.yaml #0 request: header 'x-api-key'" in leak for leak in leaks)
    assert any("cookie.yaml #0 response: unscrubbed header 'set-cookie'" in leak for leak in leaks)
    assert any(leak.startswith("notes.md: holds a secret key") for leak in leaks)
    assert len(leaks) == 5


def test_scrubbing_happens_before_anything_is_written(tmp_path: Path) -> None:
    """Record against a stand-in that demands a key, with every kind of credential header."""
    secret = "sk-recording-" + os.urandom(6).hex()
    texts = ["Laura is a DJ.", "Paris is in France."]
    with StandInServer(api_key=secret) as server:
        embeddings = AIMLBGEEmbeddings(
            base_url=server.url,
            api_key=secret,
            default_headers={"api-key": secret, "x-api-key": secret, "cookie": "session=c00k1e"},
        )
        with make_vcr(tmp_path).use_cassette("scrubbed.yaml", record_mode="once"):
            recorded = embeddings.embed_documents(texts)
        assert server.embedding_requests[0].headers["x-api-key"] == secret  # it was sent
        text = (tmp_path / "scrubbed.yaml").read_text(encoding="utf-8")
        for gone in (secret, "c00k1e", "x-inference-id", "x-aimlapi-usd-spent", "user-agent"):
            assert gone not in text
        assert "Bearer PLACEHOLDER" in text
        assert "x-aimlapi-credits-used" in text
        assert find_credential_leaks(tmp_path, [secret]) == []

        replay = AIMLBGEEmbeddings(api_key=PLACEHOLDER_KEY, max_retries=0)
        with use_recording("scrubbed", "none", cassette_dir=tmp_path):
            assert replay.embed_documents(texts) == recorded
        assert len(server.embedding_requests) == 1  # the replay never reached the server
    assert recorded == expected(texts)
    assert replay.usage.prompt_tokens == sum(count_tokens(t) for t in texts)


def test_scrubber_drops_identifying_headers_and_transient_answers() -> None:
    scrubber = Scrubber(["k-42"])
    response = {
        "status": {"code": 200, "message": "OK"},
        "headers": {
            "Content-Type": ["application/json"],
            "x-aimlapi-credits-used": ["1"],
            "x-aimlapi-usd-spent": ["0.0000005"],
            "x-inference-id": ["inf-1"],
            "Set-Cookie": ["__cf_bm=abc"],
            "date": ["Tue, 25 Nov 2026 15:00:00 GMT"],
        },
        "body": {"string": b'{"message": "key k-42 is fine"}'},
    }
    scrubbed = scrubber.response(response)
    assert scrubbed is not None
    assert scrubbed["headers"] == {
        "Content-Type": ["application/json"],
        "x-aimlapi-credits-used": ["1"],
    }
    assert scrubbed["body"]["string"] == b'{"message": "key PLACEHOLDER is fine"}'
    for status in (429, 503):
        transient = {**response, "status": {"code": status, "message": ""}}
        assert scrubber.response(transient) is None


# --- origins -------------------------------------------------------------------------------------


def readme_origins() -> dict[str, str]:
    """Cassette file -> the origin the README's table gives it."""
    rows = re.findall(
        r"^\|\s*`([\w.-]+\.yaml)`\s*\|\s*([^|]+?)\s*\|", README.read_text("utf-8"), re.M
    )
    return dict(rows)


def test_every_cassette_is_listed_with_its_true_origin() -> None:
    origins = readme_origins()
    cassettes = sorted(p.name for p in PUBLISHED_DIR.glob("*.yaml"))
    assert sorted(origins) == cassettes
    for name in cassettes:
        origin, hosts = origins[name], recorded_hosts(PUBLISHED_DIR / name)
        if name == PUBLISHED_CASSETTE.name:
            assert origin.startswith("published documentation example")
            assert hosts == {"api.aimlapi.com"}
        elif all(is_loopback(f"http://[{h}]/" if ":" in h else f"http://{h}/") for h in hosts):
            assert origin.startswith("stand-in server"), f"{name} was recorded on loopback"
        else:  # a live recording names its hosts and its date
            assert origin.startswith("live API"), f"{name} was recorded against {hosts}"
            assert all(host in origin for host in hosts)
            assert re.search(r"\d{4}-\d{2}-\d{2}", origin)


def test_nothing_else_lives_in_cassettes() -> None:
    expected = {README.name, PUBLISHED_SOURCE.name, *readme_origins()}
    assert {p.name for p in PUBLISHED_DIR.iterdir()} == expected


def test_published_cassette_is_built_from_the_documented_exchange() -> None:
    assert PUBLISHED_CASSETTE.read_text(encoding="utf-8") == build_published_cassette()


# --- make record, end to end ---------------------------------------------------------------------


def _digest(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(directory.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_record_against_the_standin_from_a_shell(tmp_path: Path) -> None:
    """Run the stand-in's shell entry point and ``make record`` into a temporary directory."""
    key = "standin-" + os.urandom(6).hex()
    before = _digest(PUBLISHED_DIR)
    server = subprocess.Popen(
        [sys.executable, "-m", "support.standin", "--port", "0", "--api-key", key],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline().strip()
        assert line.startswith("AIMLAPI_BASE_URL=http://127.0.0.1:")
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
        env |= {
            "AIMLAPI_BASE_URL": line.split("=", 1)[1],
            "AIMLAPI_API_KEY": key,
            "AIMLAPI_BGE_CASSETTE_DIR": str(tmp_path),
        }
        done = subprocess.run(
            [
                *("make", "--no-print-directory", "-o", ".venv/.installed-test", "record"),
                *(f"PY={sys.executable}", "RECORD_ARGS=-k multi_batch -q"),
            ],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "4 passed" in done.stdout  # both adapters, sync and async
    assert sorted(p.name for p in tmp_path.iterdir()) == ["multi_batch.yaml"]
    assert _digest(PUBLISHED_DIR) == before  # the committed cassettes were not touched
    assert find_credential_leaks(tmp_path, [key]) == []
    assert recorded_hosts(tmp_path / "multi_batch.yaml") == {"127.0.0.1"}

    batches = recorded_inputs(tmp_path / "multi_batch.yaml")
    assert sorted(len(batch) for batch in batches) == [1, 2, 2]
    replay = AIMLBGEEmbeddings(api_key=PLACEHOLDER_KEY, max_retries=0)
    with use_recording("multi_batch", "none", cassette_dir=tmp_path) as tape:
        for batch in batches:
            assert replay.embed_documents(batch) == expected(batch)
    assert tape.play_count == 3
