"""Models the AI/ML API no longer serves, with the date each was retired.

Source: the AI/ML API documentation (github.com/aimlapi/api-docs), "Deprecated / No Longer
Supported Models". A 404 naming one of these gets the deprecation explanation; any other
model's 404 does not.
"""

from __future__ import annotations

from datetime import date

__all__ = ["RETIRED_MODELS", "retired_on"]

RETIRED_MODELS: dict[str, date] = {
    "BAAI/bge-base-en-v1.5": date(2026, 3, 30),
    "BAAI/bge-large-en-v1.5": date(2026, 2, 12),
}

_BY_FOLDED_NAME = {name.casefold(): day for name, day in RETIRED_MODELS.items()}


def retired_on(model: str) -> date | None:
    """The date the AI/ML API retired ``model`` (names compared case-insensitively), else None."""
    return _BY_FOLDED_NAME.get(model.strip().casefold())
