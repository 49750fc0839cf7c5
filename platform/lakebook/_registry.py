"""Small named registries for pluggable backends (query engines, ingest logs, ...).

A name in lakebook.yaml is looked up here; a third party adds one through the entry-point
group ``lakebook.<kind>`` (e.g. ``lakebook.query_engines``), or by a dotted class path.
"""

from __future__ import annotations

import difflib
import importlib
from importlib.metadata import entry_points
from typing import Callable, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, setting: str):
        self.kind = kind
        self.setting = setting
        self._items: dict[str, T] = {}
        self._group = "lakebook." + kind.replace(" ", "_") + "s"

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            self._items[name] = item
            return item

        return add

    def names(self) -> list[str]:
        found = {ep.name for ep in entry_points(group=self._group)}
        return sorted(set(self._items) | found)

    def get(self, name: str) -> T:
        if name in self._items:
            return self._items[name]
        for ep in entry_points(group=self._group):
            if ep.name == name:
                self._items[name] = ep.load()
                return self._items[name]
        if "." in name:
            module, _, attr = name.rpartition(".")
            try:
                return getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                raise ConfigError(f"{self.setting}: cannot import {name!r}: {exc}") from None
        close = difflib.get_close_matches(name, self.names(), n=1)
        guess = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"{self.setting}: unknown {self.kind} {name!r}; {guess}available: {', '.join(self.names())}"
        )
