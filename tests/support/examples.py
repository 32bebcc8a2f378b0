"""Load the scripts in examples/ as modules, so tests call their functions directly."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(script: str, module_name: str | None = None) -> ModuleType:
    """Import ``examples/<script>`` under ``module_name`` (default: the script's stem)."""
    name = module_name or Path(script).stem
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module
