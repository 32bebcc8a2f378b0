"""The built distribution, as a user gets it: sdist -> wheel, installed into a fresh venv.

The wheel is built from a copy of the project (``python -m build`` without isolation: the sdist
first, the wheel from the sdist), then installed with pip from local wheels only
(``make wheelhouse``), first without extras, then with ``[langchain,llama-index]``. Both adapters
and the CLI then run from that venv against the stand-in, which runs from the project's venv:
anything missing from the wheel (a module, ``py.typed``, an entry point) shows up here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import venv
import zipfile
from collections.abc import Iterator
from email.parser import Parser
from pathlib import Path

import numpy as np
import pytest

from aimlapi_bge import BGE_QUERY_INSTRUCTION
from support.helpers import expected

ROOT = Path(__file__).resolve().parents[2]
KEY = "wheel-test-key"
TEXTS = ["Laura is a DJ.", "Paris is in France.", ""]
QUERY = "Who plays techno?"
PACKAGES = (
    "aimlapi_bge",
    "langchain_aimlapi_bge",
    "llama_index_aimlapi_bge",
    "llama_index/embeddings/aimlapi_bge",
)


def _run(args: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=600, check=False,
        **kwargs,  # type: ignore[call-overload]
    )  # fmt: skip
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


def _wheelhouse() -> Path:
    path = Path(os.environ.get("AIMLAPI_BGE_WHEELHOUSE", Path(sys.prefix) / "wheelhouse"))
    if not any(path.glob("*.whl")):
        message = f"no wheels in {path}: run `make wheelhouse` (make test does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m build`` on a copy of the project (the work tree gets no build/ or dist/)."""
    project = tmp_path_factory.mktemp("project")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, project)
    shutil.copytree(
        ROOT / "src", project / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__")
    )
    out = project / "dist"
    result = _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, project])
    output = (result.stdout + result.stderr).splitlines()
    warnings = [
        line
        for line in output
        if "warning" in line.lower() and "byte-compiling is disabled" not in line  # env-dependent
    ]
    assert warnings == [], "\n".join(output)
    return out


@pytest.fixture(scope="module")
def wheel_path(dist: Path) -> Path:
    (path,) = dist.glob("aimlapi_bge-*-py3-none-any.whl")
    return path


def _metadata(wheel: zipfile.ZipFile) -> tuple[list[str], dict[str, list[str]]]:
    (path,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    message = Parser().parsestr(wheel.read(path).decode())
    fields = {key: message.get_all(key) or [] for key in set(message.keys())}
    return wheel.namelist(), fields


def test_sdist_holds_the_license_and_the_sources(dist: Path) -> None:
    import tarfile

    (sdist,) = dist.glob("aimlapi_bge-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    assert {"LICENSE", "README.md", "pyproject.toml"} <= names
    assert "src/llama_index/embeddings/aimlapi_bge/__init__.py" in names


def test_wheel_files_and_metadata(wheel_path: Path) -> None:
    import aimlapi_bge

    with zipfile.ZipFile(wheel_path) as wheel:
        names, fields = _metadata(wheel)
    for package in PACKAGES:
        assert f"{package}/__init__.py" in names
        assert f"{package}/py.typed" in names
    # llama_index and llama_index.embeddings belong to llama-index-core: namespaces, never shadowed
    assert "llama_index/__init__.py" not in names
    assert "llama_index/embeddings/__init__.py" not in names
    assert not [n for n in names if n.startswith(("tests/", "support/", "bench/", "examples/"))]
    assert not [n for n in names if "standin" in n or "__pycache__" in n]
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert fields["Version"] == [aimlapi_bge.__version__]
    assert fields["License-Expression"] == ["MIT"]
    assert fields["License-File"] == ["LICENSE"]
    assert "License" not in fields  # the SPDX field replaces the free-text one
    core = [r for r in fields["Requires-Dist"] if "extra ==" not in r]
    assert core
    assert not [r for r in core if r.startswith(("numpy", "langchain", "llama-index", "fastembed"))]


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fresh") / "venv"
    venv.EnvBuilder(with_pip=True).create(path)
    return path


def _pip_install(venv_dir: Path, requirement: str) -> None:
    _run([venv_dir / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-index",
          "--find-links", _wheelhouse(), requirement])  # fmt: skip


def _installed(venv_dir: Path) -> set[str]:
    result = _run([venv_dir / "bin" / "python", "-m", "pip", "list", "--format=json"])
    return {entry["name"].lower() for entry in json.loads(result.stdout)}


def _run_in(venv_dir: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in the fresh venv, from an empty directory, with no path of this project."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AIMLAPI"))}
    return _run([venv_dir / "bin" / "python", "-c", code], cwd=venv_dir.parent,
                env={**clean, "HF_HUB_OFFLINE": "1", **env})  # fmt: skip


@pytest.fixture(scope="module")
def standin_url() -> Iterator[str]:
    """The stand-in in its own process, started as ``make standin`` does."""
    process = subprocess.Popen(
        [sys.executable, "-m", "support.standin", "--port", "0", "--api-key", KEY],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "tests")},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("AIMLAPI_BASE_URL=http://127.0.0.1:"), line
        yield line.split("=", 1)[1]
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_plain_install_brings_no_numpy_no_framework_and_no_standin(
    fresh_venv: Path, wheel_path: Path
) -> None:
    _pip_install(fresh_venv, str(wheel_path))
    installed = _installed(fresh_venv)
    assert "aimlapi-bge" in installed
    assert not installed & {"numpy", "langchain-core", "llama-index-core", "fastembed"}
    result = _run_in(
        fresh_venv,
        "import importlib.util, aimlapi_bge\n"
        "print(aimlapi_bge.__file__)\n"
        "print([m for m in ('support', 'standin', 'numpy') if importlib.util.find_spec(m)])\n",
    )
    location, found = result.stdout.splitlines()
    assert Path(location).is_relative_to(fresh_venv)
    assert found == "[]"
    assert not list(fresh_venv.rglob("standin*"))


def test_adapters_and_cli_from_the_installed_wheel(
    fresh_venv: Path, wheel_path: Path, standin_url: str
) -> None:
    _pip_install(fresh_venv, f"aimlapi-bge[langchain,llama-index] @ {wheel_path.as_uri()}")
    code = textwrap.dedent(
        f"""
        import json
        import langchain_aimlapi_bge, llama_index_aimlapi_bge
        from langchain_aimlapi_bge import AIMLBGEEmbeddings
        from llama_index.embeddings.aimlapi_bge import AIMLBGEEmbedding
        from llama_index.core import VectorStoreIndex  # llama-index-core still imports

        args = dict(base_url={standin_url!r}, api_key={KEY!r})
        lc = AIMLBGEEmbeddings(**args)
        li = AIMLBGEEmbedding(**args)
        print(json.dumps({{
            "files": [langchain_aimlapi_bge.__file__, llama_index_aimlapi_bge.__file__],
            "same_class": AIMLBGEEmbedding is llama_index_aimlapi_bge.AIMLBGEEmbedding,
            "langchain": lc.embed_documents({TEXTS!r}),
            "langchain_query": lc.embed_query({QUERY!r}),
            "llama_index": li.get_text_embedding_batch({TEXTS!r}),
            "llama_index_query": li.get_query_embedding({QUERY!r}),
        }}))
        """
    )
    out = json.loads(_run_in(fresh_venv, code).stdout)
    assert all(Path(f).is_relative_to(fresh_venv) for f in out["files"])
    assert out["same_class"] is True
    query = expected([BGE_QUERY_INSTRUCTION + QUERY])[0]
    for name in ("langchain", "llama_index"):
        np.testing.assert_allclose(out[name], expected([*TEXTS[:2], " "]), rtol=0, atol=1e-6)
        np.testing.assert_allclose(out[f"{name}_query"], query, rtol=0, atol=1e-6)

    corpus = fresh_venv.parent / "corpus.txt"
    corpus.write_text("Laura is a DJ.\nParis is in France.\n", encoding="utf-8")
    vectors = fresh_venv.parent / "vectors.jsonl"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AIMLAPI"))}
    _run(
        [fresh_venv / "bin" / "aimlapi-bge", "embed", "--no-progress",
         "--input", corpus, "--output", vectors],
        cwd=fresh_venv.parent,
        env={**clean, "AIMLAPI_BASE_URL": standin_url, "AIMLAPI_API_KEY": KEY},
    )  # fmt: skip
    lines = [json.loads(line) for line in vectors.read_text(encoding="utf-8").splitlines()]
    assert [line["id"] for line in lines] == [0, 1]
    np.testing.assert_allclose(
        [line["embedding"] for line in lines], expected(TEXTS[:2]), rtol=0, atol=1e-6
    )
