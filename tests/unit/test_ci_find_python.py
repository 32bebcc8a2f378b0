""".ci/find-python: which interpreter make test-pythons and test-lowest use, and failing loudly in CI."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "find-python"


def _find(version: str, pyenv_root: Path, ci: bool) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",  # no pyenv shims, no pythonX.Y of this machine's
        "PYENV_ROOT": str(pyenv_root),
        "HOME": str(pyenv_root),
        **({"CI": "true"} if ci else {}),
    }
    return subprocess.run(
        ["bash", str(SCRIPT), version], capture_output=True, text=True, env=env, timeout=30,
        check=False,
    )  # fmt: skip


def _fake_python(root: Path, name: str) -> Path:
    python = root / "versions" / name / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\nexit 0\n")
    python.chmod(0o755)
    return python


def test_the_newest_plain_release_of_that_version_wins(tmp_path: Path) -> None:
    for name in ("3.42.9", "3.42.10", "3.42.11t", "3.42-dev", "3.421.0"):
        _fake_python(tmp_path, name)
    result = _find("3.42", tmp_path, ci=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "versions" / "3.42.10" / "bin" / "python")


@pytest.mark.parametrize("ci", [True, False])
def test_a_missing_interpreter_fails_in_ci_and_is_skipped_loudly_elsewhere(
    tmp_path: Path, ci: bool
) -> None:
    _fake_python(tmp_path, "3.41.2")
    result = _find("3.42", tmp_path, ci=ci)
    assert result.stdout == ""
    assert "no Python 3.42 interpreter found" in result.stderr
    assert result.returncode == (1 if ci else 0)


def test_the_script_is_executable() -> None:
    assert os.access(SCRIPT, os.X_OK)
