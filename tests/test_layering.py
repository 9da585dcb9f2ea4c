"""The package's layers point down (docs/ARCHITECTURE.md). Read with `ast`, so imports inside functions count.

Lower layers: the schema and what it names (config, registry, refs, _io, _meta, distributed) and data, models,
methods.
They never import the packages above them (eval, train, laws, sweep, report, continual, vlm, bench, cli,
demo): those register what they provide through the `suite.plugins` entry points instead.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "suite"
LOWER = {"config", "registry", "refs", "_io", "_meta", "distributed", "data", "models", "methods"}
UPPER = {"eval", "train", "laws", "sweep", "report", "continual", "vlm", "bench", "cli", "demo"}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, imported names) for every import of a suite module in `path`."""
    mod = _module(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "suite" or target.startswith("suite."):
                names = [a.name for a in node.names]
                if target == "suite" or not node.module:  # `from . import x`: x is a module
                    out += [(node.lineno, f"{target}.{n}", []) for n in names]
                else:
                    out.append((node.lineno, target, names))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names if a.name.startswith("suite.")]
    return out


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


SOURCES = sorted(ROOT.rglob("*.py"))


def test_sources_found():
    assert len(SOURCES) > 80 and {_layer(_module(p)) for p in SOURCES} >= LOWER | UPPER


def test_lower_layers_never_import_upper_ones():
    bad = [f"{p.relative_to(ROOT.parent)}:{line} imports {target}"
           for p in SOURCES if _layer(_module(p)) in LOWER
           for line, target, _ in _imports(p) if _layer(target) in UPPER]
    assert not bad, "lower layer imports an upper one:\n" + "\n".join(bad)


def test_no_private_names_across_packages():
    bad = [f"{p.relative_to(ROOT.parent)}:{line} imports {n} from {target}"
           for p in SOURCES for line, target, names in _imports(p)
           if _layer(target) != _layer(_module(p)) for n in names if n.startswith("_") and not n.startswith("__")]
    assert not bad, "private name used across packages (make it public API with a docstring):\n" + "\n".join(bad)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


@pytest.mark.parametrize("package", ["report", "laws", "eval", "sweep", "models", "train"])
def test_no_import_cycle_inside(package):
    """Module-level and lazy imports between the package's own modules form no cycle (its __init__ aside)."""
    graph: dict[str, set[str]] = {}
    for p in SOURCES:
        mod = _module(p)
        if _layer(mod) != package or p.name == "__init__.py":
            continue
        graph[mod] = {t for _, t, _ in _imports(p) if _layer(t) == package and t != f"suite.{package}" and t != mod}
    assert _cycle(graph) is None, f"import cycle in suite.{package}: {' -> '.join(_cycle(graph))}"


def test_layers_form_no_cycle():
    """Between top-level packages too: one direction of dependency, lazily or not."""
    graph: dict[str, set[str]] = {}
    for p in SOURCES:
        a = _layer(_module(p))
        graph.setdefault(a, set()).update(b for _, t, _ in _imports(p) if (b := _layer(t)) != a and b != "suite")
    assert _cycle(graph) is None, f"import cycle between packages: {' -> '.join(_cycle(graph))}"
