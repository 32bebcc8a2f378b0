"""Usage accounting: requests, tokens and credits, safe under threads and tasks."""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["Usage", "UsageMeter"]


@dataclass(frozen=True)
class Usage:
    """A snapshot of what an embedder has consumed since it was created (or last reset).

    Attributes:
        requests: embedding requests that succeeded (local batches count too).
        texts: texts embedded (after in-call de-duplication).
        prompt_tokens: tokens the server reported (``usage.prompt_tokens``); the local backend
            counts its own tokens.
        credits_used: AI/ML API credits (``meta.usage.credits_used`` in the body, else the
            ``x-aimlapi-credits-used`` header); 0 for the local backend.
        rate_limited: 429 answers seen, retried ones included.
    """

    requests: int = 0
    texts: int = 0
    prompt_tokens: int = 0
    credits_used: float = 0.0
    rate_limited: int = 0


class UsageMeter:
    """Thread-safe accumulator behind :class:`Usage`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._usage = Usage()

    def add(
        self,
        *,
        requests: int = 0,
        texts: int = 0,
        prompt_tokens: int | None = None,
        credits_used: float | None = None,
        rate_limited: int = 0,
    ) -> None:
        with self._lock:
            current = self._usage
            self._usage = Usage(
                requests=current.requests + requests,
                texts=current.texts + texts,
                prompt_tokens=current.prompt_tokens + (prompt_tokens or 0),
                credits_used=current.credits_used + (credits_used or 0.0),
                rate_limited=current.rate_limited + rate_limited,
            )

    def snapshot(self) -> Usage:
        with self._lock:
            return self._usage

    def reset(self) -> Usage:
        """Return the totals so far and start again from zero."""
        with self._lock:
            previous, self._usage = self._usage, Usage()
            return previous
