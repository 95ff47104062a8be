"""A registry of named classes, given as classes or as "module:Class" paths imported when first used (so a run
that never uses a metric or backbone never imports its module). Metrics and backbones each have one."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Generic, TypeVar

from .errors import AigveError

T = TypeVar("T")


class Registry(Generic[T]):
    kind: str = "entry"  # "metric", "backbone": in messages

    def __init__(self, entries: Iterable[tuple[str, str | type[T]]]) -> None:
        self._targets: dict[str, str | type[T]] = dict(entries)

    def base(self) -> type:
        """The class every entry must derive from."""
        raise NotImplementedError

    def register(self, name: str, target: str | type[T]) -> None:
        """Add an entry by class or by "module:Class" path (for third-party plugins)."""
        if name in self._targets and self._targets[name] != target:
            raise AigveError(f"{self.kind} '{name}' is already registered as {self._targets[name]!r}")
        self._targets[name] = target

    def names(self) -> list[str]:
        return sorted(self._targets)

    def __contains__(self, name: object) -> bool:
        return name in self._targets

    def get(self, name: str) -> type[T]:
        target = self._targets.get(name)
        if target is None:
            raise AigveError(f"unknown {self.kind} '{name}'; known: {', '.join(self.names())}")
        if isinstance(target, str):
            module_name, _, class_name = target.partition(":")
            try:
                target = getattr(importlib.import_module(module_name), class_name)
            except (ImportError, AttributeError) as exc:
                raise AigveError(f"{self.kind} '{name}' is registered as {target!r}, which cannot be imported "
                                 f"({exc}); check the plugin that registers it") from None
            self._targets[name] = target
        if not (isinstance(target, type) and issubclass(target, self.base())):
            raise AigveError(f"{self.kind} '{name}' is registered as {target!r}, which is not a "
                             f"{self.base().__name__} subclass")
        return target
