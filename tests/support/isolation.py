"""Run Python in a fresh interpreter, optionally with some packages made unimportable."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Sequence


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with ``python -c`` in this environment; never raises on failure."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def import_error_with(blocked: Sequence[str], statements: str) -> str:
    """Run ``statements`` with the ``blocked`` modules unimportable; return the ImportError's
    message, or ``"no ImportError"``. Any other failure fails the calling test."""
    code = (
        "import sys\n"
        f"for name in {list(blocked)!r}:\n"
        "    sys.modules[name] = None\n"
        "try:\n"
        f"{textwrap.indent(textwrap.dedent(statements).strip(), '    ')}\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    print('no ImportError')\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    return result.stdout
