"""Analysis specs: which sweep, which laws, which figures and published tables make a report.

    suite report analysis/quickstart.yaml          # -> reports/quickstart/

```yaml
name: quickstart
title: Supervised vs KD on the synthetic language
sweep: runs/quickstart                    # a sweep directory or a results .parquet/.csv
laws:
  supervised: {law: supervised, bootstrap: 200, holdout: 0.2}
  distillation: {law: distillation, supervised: supervised, bootstrap: 200}
figures: [loss_vs_tokens, capacity_gap, crossover, residuals, method_bars]
published: [busbridge2025_table6, chinchilla2022_approach3]
```
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError, build_dataclass, read_yaml_mapping
from ..registry import did_you_mean
from .registries import FIGURES, TABLES


@dataclass(frozen=True)
class LawSpec:
    law: str                                  # a key of suite.laws.LAWS
    supervised: str | None = None             # distillation: the name of the supervised fit to build on
    rows: str | None = None                   # pandas query on the results, applied before the law picks its rows
    delta: float | None = None
    bootstrap: int = 0
    ci: float = 0.9
    holdout: float | None = None
    seed: int = 0
    fixed: dict[str, Any] = field(default_factory=dict)   # a number, or "bayes_loss" (the data's exact E)
    compare: str | None = None                # published set to put beside (default: by law)
    search: str = "fast"                      # multi-start search: fast (batched) or full (L-BFGS-B per start)


@dataclass(frozen=True)
class ReportSpec:
    name: str
    sweep: str
    title: str = ""
    description: str = ""
    laws: dict[str, LawSpec] = field(default_factory=dict)
    figures: tuple[str, ...] = ()
    tables: tuple[str, ...] = ("results", "fits")
    published: tuple[str, ...] = ()
    out: str | None = None                    # default reports/<name>
    source: str = ""                          # the spec file, for messages


def load_spec(path: str | Path) -> ReportSpec:
    """Read and validate an analysis spec; errors name the file, the key and the valid choices."""
    from ..laws import LAWS, PUBLISHED  # scipy: not at start-up (the CLI reads this module)

    path = Path(path)
    data = read_yaml_mapping(path, missing="no such analysis spec")
    where = str(path)
    laws = data.pop("laws", None) or {}
    if not isinstance(laws, dict):
        raise ConfigError(f"{where}: laws: expected a mapping of fit name -> {{law: ...}}")
    data.setdefault("name", path.stem)
    for key in ("name", "sweep"):
        if key not in data:
            raise ConfigError(f"{where}: missing required key {key!r}")
    spec = build_dataclass(ReportSpec, {**data, "source": where}, where)
    fits = {}
    for fname, body in laws.items():
        lw = build_dataclass(LawSpec, body, f"{where}: laws.{fname}")
        if lw.law not in LAWS:
            raise ConfigError(f"{where}: laws.{fname}.law: unknown law {lw.law!r}{did_you_mean(lw.law, LAWS.names())}"
                              f"; valid: {', '.join(LAWS.names())}")
        if lw.search not in ("fast", "full"):
            raise ConfigError(f"{where}: laws.{fname}.search: {lw.search!r}{did_you_mean(lw.search, ('fast', 'full'))}"
                              f"; valid: fast (batched descent, the default), full (L-BFGS-B from every start)")
        if lw.law == "distillation":
            if lw.supervised is None:
                raise ConfigError(f"{where}: laws.{fname}.supervised: the distillation law needs the name of a "
                                  f"supervised fit in this spec (or a published set)")
        fits[fname] = lw
    choices = [n for n, f in fits.items() if f.law == "supervised"] + \
              [n for n, p in PUBLISHED.items() if p.law == "supervised"]
    for fname, lw in fits.items():
        if lw.supervised and lw.supervised not in choices:
            what = ("is not a supervised-law fit" if lw.supervised in fits or lw.supervised in PUBLISHED
                    else "is neither a fit of this spec nor a published set")
            raise ConfigError(f"{where}: laws.{fname}.supervised: {lw.supervised!r} {what}"
                              f"{did_you_mean(lw.supervised, choices)}; valid: {', '.join(choices)}")
    for kind, names, registry in (("figures", spec.figures, FIGURES), ("tables", spec.tables, TABLES)):
        for n in names:
            if n not in registry:
                raise ConfigError(f"{where}: {kind}: unknown {kind[:-1]} {n!r}{did_you_mean(n, registry.names())}; "
                                  f"valid: {', '.join(registry.names())}")
    published_dir = Path(__file__).resolve().parents[2] / "analysis" / "published"
    for n in spec.published:
        if not (published_dir / f"{n}.csv").exists() and not Path(n).exists():
            have = sorted(p.stem for p in published_dir.glob("*.csv"))
            raise ConfigError(f"{where}: published: no table {n!r}{did_you_mean(n, have)}; valid: {', '.join(have)}")
    return dataclasses.replace(spec, laws=fits)

