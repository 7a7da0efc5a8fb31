"""Backends registered by name: composers, renderers, filters, testers and judges.

A backend is a class in its own module with a `name`, a `Settings` model beside it (whose
discriminator field holds the name) and a `from_settings` constructor. Each kind's base class
is abstract (`abc.abstractmethod` on what a backend must do), and a class that leaves one of
those methods out is refused when it registers, not when a build first calls it. Built-in backends live
in their stage's package and register with a decorator; every module of that package is
imported on first use, so adding a backend is adding a module. Third-party backends register
through an entry-point group per kind (`mirbench.composers`, `mirbench.renderers`,
`mirbench.filters`, `mirbench.testers`, `mirbench.judges`), whose entries map a backend's name
to its class.

Settings of a backend kind validate as a discriminated union over what is registered, so the
config file, validation errors and `--help` list what exists.

This is the lowest layer of the backend machinery: it knows no stage, settings or workspace.
What a backend is opened with (`from_settings`'s `workspace`: in a build, the build's
workspace) passes through here untouched.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import threading
from abc import ABC
from importlib.metadata import entry_points
from typing import Annotated, Any, ClassVar, Generic, Self, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class BackendSettings(BaseModel):
    """Base of every backend's settings; a subclass narrows the key field to a Literal name."""

    model_config = ConfigDict(extra="forbid")


class Backend(ABC):
    """Base of every backend class. `thread_safe = False` makes concurrent shards take turns."""

    name: ClassVar[str]
    Settings: ClassVar[type[BackendSettings]]
    thread_safe: ClassVar[bool] = True

    @classmethod
    def from_settings(cls, settings: Any, workspace: Any) -> Self:
        """The backend for `settings`; `workspace` gives what it opens (store, artifacts, models)."""
        return cls()

    @classmethod
    def preflight(cls, settings: Any) -> list[str]:
        """Check, before a command starts work, what this backend needs beyond its own settings
        (a pool on disk, a compatible policy): raise `InputError` for what would fail; return notes
        worth showing. `settings` is the whole configuration (`builder.config.settings.Settings`, a
        higher layer, hence untyped here). Nothing by default."""
        return []


B = TypeVar("B", bound=Backend)


class Registry(Generic[B]):
    """Backends of one kind, by name. `key` is the settings field that names the backend."""

    def __init__(
        self, kind: str, package: str, *, group: str, key: str = "backend", default: str | None = None
    ):
        self.kind, self.package, self.key, self.default = kind, package, key, default
        self.entry_point_group = group
        self._backends: dict[str, type[B]] = {}
        self._discovered = False
        self._adapter: TypeAdapter[Any] | None = None
        self._lock = threading.RLock()

    def register(self, backend: type[B]) -> type[B]:
        """Class decorator: register `backend` under its `name`."""
        if inspect.isabstract(backend):
            missing = ", ".join(sorted(backend.__abstractmethods__))
            raise TypeError(f"{backend.__qualname__} is a {self.kind} backend without {missing}: define it")
        name = backend.name
        settings_key = backend.Settings.model_fields.get(self.key)
        if settings_key is None or settings_key.default != name:
            raise TypeError(
                f"{backend.__qualname__}.Settings needs `{self.key}: Literal[{name!r}] = {name!r}`"
            )
        with self._lock:
            known = self._backends.get(name)
            if known is not None and known is not backend:
                raise TypeError(f"two {self.kind} backends named {name!r}: {known} and {backend}")
            self._backends[name] = backend
            self._adapter = None
        return backend

    def discover(self, *, refresh: bool = False) -> None:
        """Import the package's modules and load the entry-point group (once, unless `refresh`).

        A backend is a module of its stage package; a sub-package holds what the stage's
        backends share (the render stage's picture pool, the judge's calibration) and is not
        searched for backends."""
        with self._lock:
            if self._discovered and not refresh:
                return
            package = importlib.import_module(self.package)
            for module in pkgutil.iter_modules(package.__path__):
                if not module.ispkg:
                    importlib.import_module(f"{self.package}.{module.name}")
            for entry in entry_points(group=self.entry_point_group):
                try:
                    loaded = entry.load()
                except (ImportError, AttributeError) as error:
                    raise TypeError(
                        f"entry point {entry.name} = {entry.value} ({self.entry_point_group}): {error}"
                    ) from error
                if not (isinstance(loaded, type) and issubclass(loaded, Backend)):
                    raise TypeError(f"entry point {entry.name} = {entry.value}: not a mirbench backend class")
                if loaded.name != entry.name:
                    raise TypeError(
                        f"entry point {entry.name} = {entry.value}: class is named {loaded.name!r}"
                    )
                self.register(loaded)  # type: ignore[arg-type]
            self._discovered = True

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._backends)

    def get(self, name: str) -> type[B]:
        self.discover()
        try:
            return self._backends[name]
        except KeyError:
            raise KeyError(f"no {self.kind} backend {name!r}; available: {', '.join(self.names())}") from None

    def _union(self) -> TypeAdapter[Any]:
        self.discover()
        with self._lock:
            if self._adapter is None:
                models = tuple(backend.Settings for backend in self._backends.values())
                union = models[0] if len(models) == 1 else Union[models]  # noqa: UP007
                if len(models) > 1:
                    union = Annotated[union, Field(discriminator=self.key)]
                self._adapter = TypeAdapter(union)
            return self._adapter

    def parse(self, value: Any) -> BackendSettings:
        """Validate one backend's settings; a bare name or a missing key means that backend's
        (or the default's) defaults."""
        if isinstance(value, BackendSettings):
            return value
        if isinstance(value, str):
            value = {self.key: value}
        if isinstance(value, dict) and self.key not in value and self.default is not None:
            value = {self.key: self.default, **value}
        if isinstance(value, dict) and isinstance(value.get(self.key), str):
            name = value[self.key]
            if name not in self.names():
                # Say it plainly, with the choices, rather than as a union-tag error.
                raise ValueError(f"unknown {self.kind} {name!r}; available: {', '.join(self.names())}")
        return self._union().validate_python(value)

    def create(self, settings: BackendSettings, workspace: Any) -> B:
        backend = self.get(getattr(settings, self.key))
        return backend.from_settings(settings, workspace)

    def describe(self) -> str:
        """One line for `--help`: the registered names."""
        return ", ".join(self.names())
