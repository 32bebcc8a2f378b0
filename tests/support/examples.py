"""Load the repository's scripts (examples/, bench/, docs/hooks/) as modules, so tests call
their functions directly."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def load_script(path: Path, module_name: str) -> ModuleType:
    """Import the script at ``path`` under ``module_name``."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def load_example(script: str, module_name: str | None = None) -> ModuleType:
    """Import ``examples/<script>`` under ``module_name`` (default: the script's stem)."""
    return load_script(EXAMPLES / script, module_name or Path(script).stem)
