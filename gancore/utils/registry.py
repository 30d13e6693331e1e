"""A registry of named specs whose modules register them when imported, discovered from one
package (the codecs, the decoder architectures): one module per entry, none importing another."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Generic, Protocol, TypeVar

__all__ = ["Registry"]


class _Named(Protocol):
    name: str


S = TypeVar("S", bound=_Named)


class Registry(Generic[S]):
    """Specs by name; `names` and `get` first import every module of `package`.

    Args:
        kind: what an entry is, for messages ("codec").
        package: the dotted package whose modules register the built-in entries.
    """

    def __init__(self, kind: str, package: str):
        self.kind, self.package = kind, package
        self.entries: dict[str, S] = {}

    def register(self, spec: S) -> S:
        """Add `spec`; called once by its module when it is imported."""
        if spec.name in self.entries and self.entries[spec.name] is not spec:
            raise ValueError(f"{self.kind} {spec.name!r} registered twice")
        self.entries[spec.name] = spec
        return spec

    def _discover(self) -> None:
        for info in pkgutil.iter_modules(importlib.import_module(self.package).__path__):
            importlib.import_module(f"{self.package}.{info.name}")

    def names(self) -> list[str]:
        """Names of all registered entries, sorted."""
        self._discover()
        return sorted(self.entries)

    def get(self, name: str) -> S:
        """The spec registered under `name`.

        Raises:
            KeyError: no such entry (params validation names the key first).
        """
        self._discover()
        return self.entries[name]
