"""Packaging: optional frameworks, a framework-free core, explicit exports, typing, wheel contents."""

from __future__ import annotations

import ast
import importlib
import inspect
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from support.isolation import import_error_with, run_python

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGES = ("aimlapi_bge", "langchain_aimlapi_bge", "llama_index_aimlapi_bge")
FRAMEWORKS = ("langchain", "llama_index")


@pytest.mark.parametrize(
    ("package", "blocked", "extra"),
    [
        ("langchain_aimlapi_bge", ["langchain_core"], "aimlapi-bge[langchain]"),
        (
            "llama_index_aimlapi_bge",
            ["llama_index", "llama_index.core"],
            "aimlapi-bge[llama-index]",
        ),
    ],
)
def test_adapter_without_its_framework_names_the_extra(
    package: str, blocked: list[str], extra: str
) -> None:
    assert extra in import_error_with(blocked, f"import {package}")


def test_core_imports_no_framework() -> None:
    """Every core module imports with both frameworks blocked, and none gets loaded."""
    code = (
        "import importlib, pkgutil, sys\n"
        f"for name in {['langchain_core', 'langchain', 'llama_index', 'llama_index.core']!r}:\n"
        "    sys.modules[name] = None\n"
        "import aimlapi_bge\n"
        "from aimlapi_bge import Embedder, resolve_config\n"
        "Embedder(resolve_config(api_key='k', base_url='http://127.0.0.1:9/v1'))\n"
        "for info in pkgutil.walk_packages(aimlapi_bge.__path__, 'aimlapi_bge.'):\n"
        "    try:\n"
        "        importlib.import_module(info.name)\n"
        "    except ImportError as exc:\n"
        "        if 'langchain' in str(exc) or 'llama_index' in str(exc):\n"
        "            raise\n"
        "        # another optional dependency (say, of the local backend) is missing\n"
        "loaded = sorted(m for m in sys.modules if sys.modules[m] is not None\n"
        f"                and m.split('.')[0].startswith({FRAMEWORKS!r}))\n"
        "print(loaded)\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def _imported_modules(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None))
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.append(str(node.args[0].value))
    return names


def test_no_core_file_imports_a_framework() -> None:
    files = sorted((SRC / "aimlapi_bge").rglob("*.py"))
    assert files
    offending = {
        str(path.relative_to(SRC)): name
        for path in files
        for name in _imported_modules(path)
        if name.split(".")[0].startswith(FRAMEWORKS)
    }
    assert offending == {}


@pytest.mark.parametrize("package", PACKAGES)
def test_all_lists_exactly_the_public_names(package: str) -> None:
    module = importlib.import_module(package)
    assert "__all__" in vars(module), f"{package} has no explicit __all__"
    exported = list(module.__all__)
    assert len(exported) == len(set(exported))
    missing = [name for name in exported if not hasattr(module, name)]
    assert missing == []
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert set(exported) - {"__version__"} == public


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_are_typed(package: str) -> None:
    assert (SRC / package / "py.typed").is_file()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """A wheel built from a copy of the project (the work tree gets no build/ directory)."""
    project = tmp_path_factory.mktemp("project")
    shutil.copy(ROOT / "pyproject.toml", project)
    shutil.copytree(
        SRC, project / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__")
    )
    readme = ROOT / "README.md"
    # The README's presence is not what these tests check; pyproject needs one to build.
    if readme.is_file():
        shutil.copy(readme, project)
    else:
        (project / "README.md").write_text("aimlapi-bge\n", encoding="utf-8")
    out = project / "dist"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), str(project)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (built,) = out.glob("aimlapi_bge-*.whl")
    return zipfile.ZipFile(built)


def _dist_info(wheel: zipfile.ZipFile, name: str) -> str:
    (path,) = [n for n in wheel.namelist() if n.endswith(f".dist-info/{name}")]
    return wheel.read(path).decode()


def test_wheel_ships_the_three_typed_packages(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for package in PACKAGES:
        assert f"{package}/__init__.py" in names
        assert f"{package}/py.typed" in names
    assert not any(n.startswith(("tests/", "bench/", "examples/")) for n in names)


def test_wheel_declares_the_console_script(wheel: zipfile.ZipFile) -> None:
    entry_points = _dist_info(wheel, "entry_points.txt")
    assert "[console_scripts]" in entry_points
    assert "aimlapi-bge = aimlapi_bge.cli:main" in entry_points


def test_wheel_declares_the_extras_and_python_version(wheel: zipfile.ZipFile) -> None:
    metadata = Parser().parsestr(_dist_info(wheel, "METADATA"))
    assert metadata["Requires-Python"] == ">=3.10"
    extras = set(metadata.get_all("Provides-Extra") or [])
    assert {"langchain", "llama-index", "all", "test"} <= extras
    requirements = metadata.get_all("Requires-Dist") or []
    by_extra = {
        extra: [r.split(";")[0].strip() for r in requirements if f'extra == "{extra}"' in r]
        for extra in ("langchain", "llama-index")
    }
    assert any(r.startswith("langchain-core") for r in by_extra["langchain"])
    assert any(r.startswith("llama-index-core") for r in by_extra["llama-index"])
    core = [r for r in requirements if "extra ==" not in r]
    assert any(r.startswith("openai") for r in core)
    assert not any(r.startswith(("langchain", "llama-index")) for r in core)
