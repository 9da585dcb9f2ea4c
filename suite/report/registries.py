"""The names an analysis spec may list under `figures:` and `tables:`, and the headline's parts.

The lowest module of the report package (it imports nothing from it): spec.py validates names here, and
figures.py, tables.py, continual.py and vlm.py register into these. The package's __init__ imports build.py,
which imports them all, so the registries are full whenever any part of suite.report is in use.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..registry import Registry

FIGURES: Registry[Callable[..., Any]] = Registry("figure")   # fn(df, fits) -> (figure, caption) | None
TABLES: Registry[Callable[..., Any]] = Registry("table")     # fn(df, fits) -> (shown, raw, caption) | None


@dataclass(frozen=True)
class Headline:
    """A part of the report's opening sentences: `lines(df, fits, nums)` returns its sentences (none when the
    results hold nothing it speaks about) and puts the numbers behind them into `nums` (summary.json's
    `headline`). Parts are printed by `order`, after the fits' own summaries."""
    order: int
    lines: Callable[..., list[str]]


# questions (Q1-Q3 of the distillation study), continual (GeRe's F1 and retention), vlm (GenRecal vs its baselines)
HEADLINES: Registry[Headline] = Registry("headline part")
