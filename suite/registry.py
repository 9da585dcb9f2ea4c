"""String-keyed registries for everything a config can name.

    from suite.registry import METHODS
    @METHODS.register("kd")
    class KD: ...
    METHODS.get("kd")          # a typo raises with the valid names and a "did you mean"

Plugins. A registry made with `plugins=True` (methods, config sections, benchmarks) also holds what packages
above the schema register: GenRecal, the continual-learning methods, the benchmarks. Those packages are
declared as entry points of the group `suite.plugins` (pyproject.toml; a third-party package adds its own the
same way) and imported the first time such a registry is asked for a name it lacks or for its full list, so
the lower layers (config, data, models, methods) never import the upper ones.
"""
from __future__ import annotations

import difflib
import importlib
from importlib import metadata
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")
PLUGIN_GROUP = "suite.plugins"
_plugins_loaded: list[str] | None = None


def load_plugins() -> list[str]:
    """Import every module declared under the entry-point group `suite.plugins` (once); their names.

    A plugin module registers what it provides (methods, a config section, benchmarks) when imported."""
    global _plugins_loaded
    if _plugins_loaded is None:
        _plugins_loaded = []  # set first: a plugin that looks a name up while importing must not recurse
        for ep in sorted(metadata.entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
            importlib.import_module(ep.value.split(":")[0])
            _plugins_loaded.append(ep.name)
    return list(_plugins_loaded)


def did_you_mean(name: str, choices: list[str] | tuple[str, ...] | Any) -> str:
    """`" (did you mean 'kd'?)"` when a choice is close to `name`, else ``""``."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class UnknownNameError(KeyError, ValueError):
    """A name that is not in a registry. Its message lists every valid name."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


class Registry(Generic[T]):
    """A named table of objects (classes, factories, configs) that configs refer to by string key."""

    def __init__(self, kind: str, plugins: bool = False):
        """`plugins`: entries may come from `suite.plugins` packages, loaded before a miss or a full listing."""
        self.kind = kind
        self.plugins = plugins
        self._items: dict[str, T] = {}

    def _all(self) -> dict[str, T]:
        if self.plugins:
            load_plugins()
        return self._items

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register `obj` under `name`; without `obj`, return a decorator."""

        def add(o: T) -> T:
            if name in self._items and self._items[name] is not o:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = o
            return o

        return add(obj) if obj is not None else add

    def get(self, name: str) -> T:
        if name in self._items:  # the common case: no plugin lookup
            return self._items[name]
        items = self._all()
        try:
            return items[name]
        except KeyError:
            hint = ""
            if self.plugins and not _plugins_loaded:
                hint = (f" (no {PLUGIN_GROUP} entry points are installed: run `pip install -e .` in the "
                        f"repository so that the packages above the schema register theirs)")
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}{did_you_mean(name, items)}; "
                f"valid: {', '.join(sorted(items))}{hint}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._all()

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._all()))

    def names(self) -> list[str]:
        return sorted(self._all())

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._all().items())
