"""One benchmark registry (config.BENCHMARKS) with lazy "module:object" entries (issue 29, item 5).

The generic part (suite.registry.Registry's `lazy=`) on a module written here, then the built-in benchmarks: their
names and order are what configs accept, and naming or validating them imports none of their modules.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
import types

import pytest

from suite.registry import Registry, UnknownNameError

NAMES = ("mmlu", "ai2d", "mmvet", "mathvista", "heldout")


@pytest.fixture
def module(tmp_path, monkeypatch):
    """The name of a module on sys.path that appends its name to `sys._lazy_imports` when imported."""
    name = f"lazy_target_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent("""
        import sys
        sys._lazy_imports.append(__name__)
        class Thing:
            pass
        THING = Thing()
        class Outer:
            INNER = "inner"
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "_lazy_imports", [], raising=False)
    yield name
    sys.modules.pop(name, None)


def test_lazy_entry_is_imported_on_first_get_only(module):
    reg: Registry = Registry("widget")
    reg.register("eager", 1)
    reg.register("thing", lazy=f"{module}:THING")
    reg.register("inner", lazy=f"{module}:Outer.INNER")  # dots walk attributes
    assert reg.names() == ["eager", "inner", "thing"] and "thing" in reg and "nope" not in reg
    assert reg.names(sort=False) == ["eager", "thing", "inner"]  # registration order
    assert sys._lazy_imports == [] and module not in sys.modules  # listed and checked, never imported
    thing = reg.get("thing")
    assert type(thing).__name__ == "Thing" and sys._lazy_imports == [module]
    assert reg.get("thing") is thing and reg.get("inner") == "inner" and sys._lazy_imports == [module]
    assert reg.items() == [("eager", 1), ("inner", "inner"), ("thing", thing)]


def test_lazy_errors_name_the_entry(module):
    reg: Registry = Registry("widget")
    for bad in ("no_colon", ":obj", "mod:"):
        with pytest.raises(ValueError, match="lazy takes 'module:object'"):
            reg.register("x", lazy=bad)
    reg.register("gone", lazy="suite_no_such_module_xyz:OBJ")
    reg.register("typo", lazy=f"{module}:THNG")
    with pytest.raises(ImportError, match=r"widget 'gone': cannot load 'suite_no_such_module_xyz:OBJ' \(Module"):
        reg.get("gone")
    with pytest.raises(ImportError, match=r"widget 'typo': cannot load '.*:THNG' \(AttributeError"):
        reg.get("typo")
    with pytest.raises(UnknownNameError, match="unknown widget 'gon'.*did you mean 'gone'"):
        reg.get("gon")


def test_placeholders_and_registrations_meet(module, tmp_path, monkeypatch):
    reg: Registry = Registry("widget")
    reg.register("thing", lazy=f"{module}:THING")
    reg.register("thing", lazy=f"{module}:THING")  # the same table read twice: fine
    with pytest.raises(ValueError, match="already registered"):
        reg.register("thing", lazy=f"{module}:Outer")
    with pytest.raises(ValueError, match="already registered"):  # another object may not take the name
        reg.register("thing", object())
    # a module that registers its object itself while its placeholder imports it
    (tmp_path / "self_registering.py").write_text(textwrap.dedent("""
        from lazy_registry_hook import REG
        OBJ = REG.register("own", object())
    """))
    monkeypatch.setitem(sys.modules, "lazy_registry_hook", types.SimpleNamespace(REG=reg))
    reg.register("own", lazy="self_registering:OBJ")
    try:
        assert reg.get("own") is sys.modules["self_registering"].OBJ
    finally:
        sys.modules.pop("self_registering", None)


def test_builtin_names_and_order_are_unchanged():
    from suite.config import BENCHMARKS, parse_benchmarks
    from suite.eval.benchmarks import BUILTIN, NAMES as builtin

    assert builtin == NAMES == tuple(BUILTIN)
    assert BENCHMARKS.names(sort=False, plugins=False)[:5] == list(NAMES)
    assert parse_benchmarks("MMLU, ai2d,mmvet ,mathvista,heldout,ai2d") == NAMES
    entries = {n: BENCHMARKS.get(n) for n in NAMES}
    assert all(e.name == n for n, e in entries.items())
    assert {n for n, e in entries.items() if e.modality == "vlm"} == {"ai2d", "mmvet", "mathvista"}
    # what scoring, `suite eval` and the report read from an entry instead of a table of names
    assert [entries[n].dataset for n in ("ai2d", "mmvet", "mathvista")] == ["AI2D_TEST", "MMVet", "MathVista_MINI"]
    assert [entries[n].judge for n in NAMES] == ["none", "optional", "required", "optional", "none"]
    assert [entries[n].scale for n in NAMES] == [1.0, 100.0, 100.0, 100.0, 1.0]
    assert [n for n in NAMES if entries[n].multiple_choice] == ["mmlu", "ai2d"] and entries["mmlu"].chance == 0.25
    assert entries["ai2d"].max_new_tokens == 16 and entries["mathvista"].max_new_tokens == 1024


def _fresh(code: str) -> str:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_naming_and_validating_benchmarks_imports_no_benchmark_module():
    # a fresh interpreter: what a config check of every benchmark name imports from the evaluation package
    out = _fresh("""
        import sys
        from suite.config import parse_benchmarks
        parse_benchmarks(["mmlu", "ai2d", "mmvet", "mathvista", "heldout"])
        print(sorted(m for m in sys.modules if m.startswith("suite.eval")))
        import suite.eval.benchmarks
        from suite.config import BENCHMARKS
        BENCHMARKS.get("mathvista")
        print(sorted(m for m in sys.modules if m.startswith("suite.eval.vlm.") and m.count(".") == 3))
    """).splitlines()
    assert out[0] == "['suite.eval', 'suite.eval.benchmarks', 'suite.eval.judges']"  # no vlm, lm-eval or heldout
    assert "'suite.eval.vlm.mathvista'" in out[1] and "'suite.eval.vlm.ai2d'" not in out[1]


def test_the_evaluation_package_imports_no_torch():
    out = _fresh("""
        import sys
        import suite.eval.benchmarks
        print("torch" in sys.modules, "pandas" in sys.modules)
        from suite.eval import heldout_loss
        print("torch" in sys.modules, callable(heldout_loss))
    """).splitlines()
    assert out == ["False False", "True True"]
