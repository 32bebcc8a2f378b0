"""What both framework adapters share: setting fields checked like the core's, and a core kept
in step with them.

Framework-free (pydantic only). The fields show resolved values (a key or URL found in the
environment, the model's query instruction); which of them the user gave in code is
pydantic's ``model_fields_set``, so a value found in the environment is looked up again
whenever the core is rebuilt, and never travels in a pickle.
"""

from __future__ import annotations

import copy
import difflib
import logging
import pickle
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.functional_validators import ModelWrapValidatorHandler
from typing_extensions import Self

from aimlapi_bge.config import (
    MASK,
    EmbedderConfig,
    SecretHeaders,
    check_setting,
    resolve_config,
)
from aimlapi_bge.embedder import Embedder
from aimlapi_bge.errors import ConfigurationError
from aimlapi_bge.settings import SETTINGS
from aimlapi_bge.usage import Usage

__all__ = ["CoreBacked", "adapter_fields"]

logger = logging.getLogger("aimlapi_bge")


def adapter_fields(framework: Literal["langchain", "llama_index"]) -> dict[str, str]:
    """The fields through which ``framework``'s adapter exposes settings: field -> core name."""
    return {
        getattr(item, framework): item.name for item in SETTINGS if getattr(item, framework)
    }


def _masked(headers: Mapping[str, str] | None) -> dict[str, str] | None:
    return None if headers is None else dict.fromkeys(headers, MASK)


def _detached(value: Any) -> Any:
    """A copy of a mutable setting value (headers), so that changing it in place is noticed."""
    return SecretHeaders(value) if isinstance(value, dict) else value


class _Core:
    """The embedder built from an instance's fields, and the field values it was built from.

    Never shared by a copy, a deep copy or a pickle: each of those builds its own (lazily).
    """

    __slots__ = ("built_from", "config", "embedder", "lock")

    def __init__(self) -> None:
        self.config: EmbedderConfig | None = None
        self.embedder: Embedder | None = None
        self.built_from: dict[str, Any] | None = None
        self.lock = threading.RLock()

    def __eq__(self, other: object) -> bool:  # derived state: two instances compare by fields
        return isinstance(other, _Core)

    __hash__ = object.__hash__

    def __reduce__(self) -> tuple[type[_Core], tuple[()]]:
        return (_Core, ())

    def __copy__(self) -> _Core:
        return _Core()

    def __deepcopy__(self, memo: dict[int, Any]) -> _Core:
        return _Core()


def _aliases(model: type[BaseModel]) -> dict[str, str]:
    """Other names a field accepts (LlamaIndex's ``model`` for ``model_name``): alias -> field."""
    return {
        choice: name
        for name, info in model.model_fields.items()
        for choice in getattr(info.validation_alias, "choices", ())
        if isinstance(choice, str) and choice != name
    }


def _unknown_keyword(model: type[BaseModel], name: str) -> str:
    aliases = _aliases(model)
    if name in aliases:  # only refused when the field was given under its own name as well
        return f"{model.__name__} got both {name!r} and {aliases[name]!r}: give one of them"
    close = difflib.get_close_matches(name, [*model.model_fields, *aliases], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{model.__name__} got an unexpected keyword {name!r}{hint}"


def _configuration_error(model: type[BaseModel], error: ValidationError) -> ConfigurationError:
    """``error`` as a ConfigurationError: the one a validator raised, or pydantic's text."""
    problems = error.errors(include_url=False, include_input=False)
    causes = [problem.get("ctx", {}).get("error") for problem in problems]
    if len(problems) == 1 and isinstance(causes[0], ConfigurationError):
        return causes[0]
    messages = []
    for problem, cause in zip(problems, causes, strict=True):
        where = ".".join(str(part) for part in problem["loc"])
        if isinstance(cause, ConfigurationError):
            messages.append(str(cause))
        elif problem["type"] == "extra_forbidden":
            messages.append(_unknown_keyword(model, where))
        else:
            messages.append(f"{where}: {problem['msg']}")
    if len(messages) == 1 and problems[0]["type"] == "extra_forbidden":
        return ConfigurationError(messages[0])
    return ConfigurationError(f"Invalid settings for {model.__name__}: " + "; ".join(messages))


@contextmanager
def _as_configuration_error(model: type[BaseModel]) -> Iterator[None]:
    try:
        yield
    except ValidationError as error:
        raise _configuration_error(model, error) from None


class CoreBacked(BaseModel):
    """Base of a pydantic adapter model whose setting fields drive an :class:`Embedder`.

    The fields named in ``_FIELDS`` are checked like the core's settings (a bad value raises
    :class:`~aimlapi_bge.errors.ConfigurationError` naming the field, on construction and on
    assignment). Setting one of them later re-resolves all of them as if given to the
    constructor and rebuilds the core (usage restarts from zero); an invalid value raises and
    changes nothing. Copies (``copy``, ``deepcopy``, ``model_copy``) and unpickled instances
    build their own core from their fields when first used; user-supplied HTTP clients are
    shared by copies, and an instance holding one cannot be pickled.
    """

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        hide_input_in_errors=True,
        protected_namespaces=(),
    )

    _FIELDS: ClassVar[Mapping[str, str]] = {}
    """Adapter field name -> core setting name (from :data:`aimlapi_bge.settings.SETTINGS`)."""
    _core: _Core = PrivateAttr(default_factory=_Core)

    # --- construction, assignment, validation ---------------------------------------------

    def __init__(self, /, **data: Any) -> None:
        with _as_configuration_error(type(self)):
            super().__init__(**data)

    @classmethod
    def model_validate(cls, *args: Any, **kwargs: Any) -> Self:
        """Pydantic's ``model_validate``; invalid settings raise ConfigurationError."""
        with _as_configuration_error(cls):
            return super().model_validate(*args, **kwargs)

    def __setattr__(self, name: str, value: Any) -> None:
        fields = type(self).model_fields
        if name not in fields and not name.startswith("_") and not hasattr(type(self), name):
            raise ConfigurationError(_unknown_keyword(type(self), name).replace("keyword", "field"))
        with _as_configuration_error(type(self)):
            super().__setattr__(name, value)

    @field_validator("*", mode="before")
    @classmethod
    def _check_setting(cls, value: Any, info: ValidationInfo) -> Any:
        name = cls._FIELDS.get(info.field_name or "")
        return value if name is None else check_setting(name, value, label=info.field_name)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_core_in_step(
        cls, value: Any, handler: ModelWrapValidatorHandler[Self], info: ValidationInfo
    ) -> Self:
        if info.field_name is None:  # construction
            model = handler(value)
            model._sync(build=True)
            return model
        if info.field_name not in cls._FIELDS or not isinstance(value, CoreBacked):
            return handler(value)
        before, given_before = dict(value.__dict__), set(value.__pydantic_fields_set__)
        model = handler(value)
        try:
            model._sync(build=True)
        except BaseException:
            object.__setattr__(model, "__dict__", before)
            object.__setattr__(model, "__pydantic_fields_set__", given_before)
            raise
        return model

    # --- the core ---------------------------------------------------------------------------

    def _shown(self) -> dict[str, Any]:
        return {name: self.__dict__.get(name) for name in self._FIELDS}

    def _sync(self, *, build: bool) -> None:
        """Resolve the fields again if they changed since the core was built; build it.

        Everything that can fail (resolving, building) happens before anything changes.
        """
        core = self._core
        with core.lock:
            if core.config is not None and core.built_from == self._shown():
                if build and core.embedder is None:
                    core.embedder = Embedder(core.config)
                return
            given = {
                setting: self.__dict__.get(name)
                for name, setting in self._FIELDS.items()
                if name in self.model_fields_set
            }
            config = resolve_config(**given)  # type: ignore[arg-type]  # checked fields
            embedder = Embedder(config) if build else None
            self.__dict__.update(
                {name: _detached(getattr(config, setting)) for name, setting in self._FIELDS.items()}
            )
            previous = core.embedder
            built_from = {name: _detached(value) for name, value in self._shown().items()}
            core.config, core.built_from, core.embedder = config, built_from, embedder
            if previous is not None:
                previous.close()

    @property
    def embedder(self) -> Embedder:
        """The framework-free core embedder behind this instance."""
        self._sync(build=True)
        embedder = self._core.embedder
        assert embedder is not None
        return embedder

    @property
    def usage(self) -> Usage:
        """Requests, prompt tokens and credits used by this instance so far."""
        return self.embedder.usage

    def reset_usage(self) -> Usage:
        """Return the usage so far and start counting from zero."""
        return self.embedder.reset_usage()

    # --- copies and pickles -------------------------------------------------------------------

    def __copy__(self) -> Self:
        copied = super().__copy__()
        private = {**(copied.__pydantic_private__ or {}), "_core": _Core()}
        object.__setattr__(copied, "__pydantic_private__", private)
        return copied

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        memo = {} if memo is None else memo
        for name, setting in self._FIELDS.items():
            if setting in ("http_client", "http_async_client"):
                client = self.__dict__.get(name)
                if client is not None:  # the user's client is shared, not copied
                    memo.setdefault(id(client), client)
        return super().__deepcopy__(memo)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with ``update`` applied and checked; it builds its own core when first used.

        Raises:
            ConfigurationError: an unknown field, or an invalid value, in ``update``.
        """
        fields = type(self).model_fields
        aliases = _aliases(type(self))
        checked: dict[str, Any] = {}
        for key, value in (update or {}).items():
            name = aliases.get(key, key)
            if name not in fields:
                raise ConfigurationError(_unknown_keyword(type(self), key))
            setting = self._FIELDS.get(name)
            checked[name] = value if setting is None else check_setting(setting, value, label=name)
        # A deep copy goes through __deepcopy__, which shares the user's HTTP clients.
        source = copy.deepcopy(self) if deep else self
        copied = super(CoreBacked, source).model_copy(update=checked)
        copied._sync(build=False)  # resolves now: a key policy violation raises here
        return copied

    def __getstate__(self) -> dict[Any, Any]:
        clients = [
            name
            for name, setting in self._FIELDS.items()
            if setting in ("http_client", "http_async_client") and self.__dict__.get(name)
        ]
        if clients:
            raise TypeError(
                f"Cannot pickle {type(self).__name__} holding {' and '.join(clients)}: an HTTP"
                " client owns sockets and locks. Build the instance where it is used, or leave"
                f" {clients[0]} unset."
            )
        state = dict(BaseModel.__getstate__(self))
        fields = dict(state["__dict__"])
        for name, setting in self._FIELDS.items():
            if setting == "api_key" and name not in self.model_fields_set:
                fields[name] = None  # found in the environment: looked up again after loading
        for name, value in list(fields.items()):
            if name not in self._FIELDS:  # a framework's field: left out if it cannot be
                try:  # pickled (as LlamaIndex does); it gets its default back when loaded
                    pickle.dumps(value)
                except Exception:
                    logger.warning("Not pickling %s.%s: it cannot be pickled", type(self).__name__, name)
                    del fields[name]
        state["__dict__"] = fields
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        BaseModel.__setstate__(self, state)  # not a framework's re-construction: keep provenance
        for name, info in type(self).model_fields.items():
            if name not in self.__dict__:  # dropped by a framework as unpicklable
                self.__dict__[name] = info.get_default(call_default_factory=True)

    # --- renderings ---------------------------------------------------------------------------

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            if name is not None and self._FIELDS.get(name) == "default_headers":
                yield name, _masked(value)
            else:
                yield name, value

    @field_serializer("default_headers", check_fields=False)
    def _mask_headers(self, headers: Mapping[str, str] | None) -> dict[str, str] | None:
        return _masked(headers)

    # --- connections --------------------------------------------------------------------------

    def close(self) -> None:
        """Release the pooled connections (the instance stays usable and reconnects)."""
        embedder = self._core.embedder
        if embedder is not None:
            embedder.close()

    async def aclose(self) -> None:
        """:meth:`close`, awaiting the current event loop's connections."""
        embedder = self._core.embedder
        if embedder is not None:
            await embedder.aclose()
