"""String-keyed registries for everything a config can name.

    from suite.registry import METHODS
    @METHODS.register("kd")
    class KD: ...
    METHODS.get("kd")          # a typo raises with the valid names and a "did you mean"
    BENCHMARKS.register("ai2d", lazy="suite.eval.vlm.ai2d:AI2D")   # imported on the first get("ai2d")

Lazy entries. `register(name, lazy="module:object")` records where an entry lives without importing it (as
lm-eval registers its tasks), so that listing names and validating a config import nothing heavy. The first
`get(name)` (or `items()`) imports the module, looks the object up (dots walk attributes: "mod:Cls.attr") and
keeps it; a module that registers the object itself while being imported fills its own placeholder.

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


class Lazy(str):
    """A placeholder entry: "module:object", imported on first use (`Registry.register(name, lazy=...)`)."""

    def resolve(self, where: str) -> Any:
        module, _, attr = self.partition(":")
        try:
            obj: Any = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as e:
            raise ImportError(f"{where}: cannot load {str(self)!r} ({type(e).__name__}: {e})") from e
        return obj


class Registry(Generic[T]):
    """A named table of objects (classes, factories, configs) that configs refer to by string key."""

    def __init__(self, kind: str, plugins: bool = False):
        """`plugins`: entries may come from `suite.plugins` packages, loaded before a miss or a full listing."""
        self.kind = kind
        self.plugins = plugins
        self._items: dict[str, T | Lazy] = {}
        self._loading: set[str] = set()  # placeholders being imported: their module may register the object

    def _all(self) -> dict[str, T | Lazy]:
        if self.plugins:
            load_plugins()
        return self._items

    def register(self, name: str, obj: T | None = None, *, lazy: str | None = None) -> Callable[[T], T] | T | None:
        """Register `obj` under `name`; without `obj`, return a decorator; with `lazy="module:object"`, a
        placeholder that the first `get(name)` imports."""
        if lazy is not None:
            module, sep, attr = lazy.partition(":")
            if obj is not None or not (module and sep and attr):
                raise ValueError(f"{self.kind} {name!r}: lazy takes 'module:object' and no object (got {lazy!r})")
            old = self._items.get(name)
            if old is not None and old != lazy:  # the same placeholder twice (a re-imported table) is fine
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items.setdefault(name, Lazy(lazy))
            return None

        def add(o: T) -> T:
            old = self._items.get(name)
            # a module may register the object its own placeholder names, while the placeholder imports it
            if old is not None and old is not o and not (isinstance(old, Lazy) and name in self._loading):
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = o
            return o

        return add(obj) if obj is not None else add

    def _resolved(self, name: str) -> T:
        obj = self._items[name]
        if isinstance(obj, Lazy):
            self._loading.add(name)
            try:
                found = obj.resolve(f"{self.kind} {name!r}")
            finally:
                self._loading.discard(name)
            current = self._items.get(name)  # the import may have registered the object itself
            if isinstance(current, Lazy):
                self._items[name] = found
            elif current is not found:
                raise ValueError(f"{self.kind} {name!r}: {str(obj)!r} is not the object registered under that name")
            obj = found
        return obj  # type: ignore[return-value]

    def get(self, name: str) -> T:
        if name in self._items:  # the common case: no plugin lookup
            return self._resolved(name)
        items = self._all()
        if name in items:
            return self._resolved(name)
        hint = ""
        if self.plugins and not _plugins_loaded:
            hint = (f" (no {PLUGIN_GROUP} entry points are installed: run `pip install -e .` in the "
                    f"repository so that the packages above the schema register theirs)")
        raise UnknownNameError(
            f"unknown {self.kind} {name!r}{did_you_mean(name, items)}; "
            f"valid: {', '.join(sorted(items))}{hint}"
        )

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._all()

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._all()))

    def names(self, sort: bool = True, plugins: bool = True) -> list[str]:
        """Every name, sorted (or in registration order); lazy entries stay unimported. `plugins=False`: only
        what is registered so far, without importing the `suite.plugins` packages."""
        names = list(self._all() if plugins else self._items)
        return sorted(names) if sort else names

    def items(self, sort: bool = True, plugins: bool = True) -> list[tuple[str, T]]:
        """(name, object) for every entry (as `names`); imports the modules of lazy entries."""
        return [(n, self._resolved(n)) for n in self.names(sort, plugins)]
