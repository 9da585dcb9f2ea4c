"""The names an analysis spec may list under `figures:` and `tables:`.

The lowest module of the report package (it imports nothing from it): spec.py validates names here, and
figures.py, tables.py, continual.py and vlm.py register into these. The package's __init__ imports build.py,
which imports them all, so the registries are full whenever any part of suite.report is in use.
"""
from __future__ import annotations

from typing import Any, Callable

from ..registry import Registry

FIGURES: Registry[Callable[..., Any]] = Registry("figure")   # fn(df, fits) -> (figure, caption) | None
TABLES: Registry[Callable[..., Any]] = Registry("table")     # fn(df, fits) -> (shown, raw, caption) | None
