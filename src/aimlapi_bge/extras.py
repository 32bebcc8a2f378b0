"""The install command for an optional extra, worded once for every message that needs it."""

from __future__ import annotations

__all__ = ["install_hint"]


def install_hint(extra: str) -> str:
    """The command that installs ``extra``, from the package index and from a checkout.

    >>> install_hint("local")
    "pip install 'aimlapi-bge[local]' (from a checkout: pip install -e '.[local]')"
    """
    return f"pip install 'aimlapi-bge[{extra}]' (from a checkout: pip install -e '.[{extra}]')"
