"""What both framework adapters share: building the core from their fields, and rebuilding it.

Framework-free: the LangChain and LlamaIndex adapters mix :class:`CoreBacked` into their
pydantic models and name, in ``_SETTING_NAMES``, which of their fields configure the core
(and under which :func:`~aimlapi_bge.config.resolve_config` argument).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from aimlapi_bge.config import EmbedderConfig, resolve_config
from aimlapi_bge.embedder import Embedder
from aimlapi_bge.usage import Usage

__all__ = ["CoreBacked"]


class CoreBacked:
    """Mixin for a pydantic adapter model whose setting fields drive an :class:`Embedder`.

    Setting one of those fields after construction rebuilds the core (usage restarts from
    zero). The new value is resolved with the constructor's other arguments, as if given to
    the constructor: a key from the environment is re-checked against a new ``base_url``,
    and an invalid value raises and changes nothing.
    """

    _SETTING_NAMES: ClassVar[Mapping[str, str]]
    _embedder: Embedder
    _inputs: dict[str, Any]

    def _init_embedder(self) -> None:
        """Build the core from the fields as constructed (call from a model validator)."""
        self._inputs = {name: getattr(self, name) for name in self._SETTING_NAMES}
        self._install(self._resolve(self._inputs))

    def _resolve(self, inputs: Mapping[str, Any]) -> EmbedderConfig:
        return resolve_config(
            **{self._SETTING_NAMES[name]: value for name, value in inputs.items()}
        )

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self._SETTING_NAMES:
            super().__setattr__(name, value)
            return
        inputs = {**self._inputs, name: value}
        config = self._resolve(inputs)  # an invalid value raises here and changes nothing
        super().__setattr__(name, value)
        self._inputs = inputs
        self._install(config)

    def _install(self, config: EmbedderConfig) -> None:
        # Show the resolved values (key from the environment, default endpoint, instruction).
        self.__dict__.update(
            api_key=config.api_key,
            base_url=config.base_url,
            backend=config.backend,
            query_instruction=config.query_instruction,
        )
        previous = getattr(self, "_embedder", None)
        self._embedder = Embedder(config)
        if previous is not None:
            previous.close()

    @property
    def usage(self) -> Usage:
        """Requests, prompt tokens and credits used by this instance so far."""
        return self._embedder.usage

    def reset_usage(self) -> Usage:
        """Return the usage so far and start counting from zero."""
        return self._embedder.reset_usage()

    @property
    def embedder(self) -> Embedder:
        """The framework-free core embedder behind this instance."""
        return self._embedder

    def close(self) -> None:
        """Release the pooled connections (the instance stays usable)."""
        self._embedder.close()

    async def aclose(self) -> None:
        """:meth:`close`, awaiting the current event loop's connections."""
        await self._embedder.aclose()
