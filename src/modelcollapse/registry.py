"""A tiny name -> object registry, used for data sources, model families, regimes, metrics and filters.

Adding a plug-in is one function (or class) plus one decorator line::

    @REGIMES.register("replace")
    def replace(inputs): ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import choice_error

T = TypeVar("T")


class Registry(Generic[T]):
    """Plug-ins by name. ``key`` is the config key the names are chosen with, used in error messages."""

    def __init__(self, key: str):
        self.key = key
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.key}: {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str, key: str | None = None) -> T:
        """The plug-in called ``name``; a :class:`ConfigError` naming the choices if there is none."""
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise choice_error(key or self.key, name, self._items) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
