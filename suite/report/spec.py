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
tables: [results, fits, comparison]
comparison:                               # every arm vs the baseline: CIs, paired/Welch p, Holm, MDE
  - {metric: loss, baseline: method=supervised, by: [N_S, D_S]}
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
from ..stats import LEVEL
from .registries import FIGURES, TABLES


@dataclass(frozen=True)
class LawSpec:
    law: str                                  # a key of suite.laws.LAWS
    supervised: str | None = None             # the supervised fit a law built on one (Law.needs) reads
    rows: str | None = None                   # pandas query on the results, applied before the law picks its rows
    delta: float | None = None
    bootstrap: int = 0
    ci: float = 0.9
    holdout: float | None = None
    seed: int = 0
    fixed: dict[str, Any] = field(default_factory=dict)   # a number, or "bayes_loss" (the data's exact E)
    compare: str | None = None                # published set to put beside (default: by law)
    search: str = "fast"                      # multi-start search: fast (batched) or full (L-BFGS-B per start)
    n_params: str = "non_embedding"           # what N counts: non_embedding (Kaplan, Busbridge) or total (Hoffmann)


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
    comparison: tuple = ()                    # report.compare.Comparison entries: the `comparison` table


@dataclass(frozen=True)
class Comparison:
    """One comparison a spec or the command line asks for (analysis spec key `comparison:`, a list of these;
    report/compare.py runs it)."""
    metric: tuple[str, ...]
    baseline: str                         # COLUMN=VALUE
    by: tuple[str, ...] = ()
    where: str | None = None              # pandas query on the results before anything else
    arm: str = "arm"                       # the derived arm label (report/compare.py), or a column
    better: str | None = None             # lower | higher; default by the metric's name
    paired: bool = True                   # pair by seed where the arms share seeds; False: always Welch
    level: float = LEVEL
    labels: dict[str, str] = field(default_factory=dict)   # metric column -> label in the shown table


def parse_comparison(body: Any, where: str) -> Comparison:
    """A spec entry -> Comparison; errors name `where`, the key and the valid choices."""
    if not isinstance(body, dict):
        raise ConfigError(f"{where}: expected a mapping with metric, baseline and optionally by, where, arm, "
                          f"better, paired, labels; got {type(body).__name__}")
    valid = ("metric", "baseline", "by", "where", "arm", "better", "paired", "labels")
    for k in body:
        if k not in valid:
            raise ConfigError(f"{where}.{k}: unknown key{did_you_mean(str(k), valid)}; valid: {', '.join(valid)}")
    for k in ("metric", "baseline"):
        if k not in body:
            raise ConfigError(f"{where}: missing required key {k!r}")
    metric = body["metric"]
    metric = (metric,) if isinstance(metric, str) else tuple(metric)
    by = body.get("by") or ()
    by = tuple(b.strip() for b in by.split(",")) if isinstance(by, str) else tuple(by)
    better = body.get("better")
    if better not in (None, "lower", "higher"):
        raise ConfigError(f"{where}.better: {better!r}; valid: lower, higher")
    if "=" not in str(body["baseline"]):
        raise ConfigError(f"{where}.baseline: {body['baseline']!r} is not COLUMN=VALUE (e.g. arm=SFT)")
    return Comparison(metric, str(body["baseline"]), by, body.get("where"), str(body.get("arm", "arm")), better,
                      bool(body.get("paired", True)), labels=dict(body.get("labels") or {}))


def load_spec(path: str | Path) -> ReportSpec:
    """Read and validate an analysis spec; errors name the file, the key and the valid choices."""
    from ..laws import LAWS, N_PARAMS, PUBLISHED  # scipy: not at start-up (the CLI reads this module)

    path = Path(path)
    data = read_yaml_mapping(path, missing="no such analysis spec")
    where = str(path)
    laws = data.pop("laws", None) or {}
    comparison = data.pop("comparison", None) or []
    if isinstance(comparison, dict):
        comparison = [comparison]
    if not isinstance(comparison, list):
        raise ConfigError(f"{where}: comparison: expected a list of {{metric, baseline, by, where}} mappings")
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
        if lw.n_params not in N_PARAMS:
            raise ConfigError(f"{where}: laws.{fname}.n_params: {lw.n_params!r}"
                              f"{did_you_mean(str(lw.n_params), N_PARAMS)}; valid: non_embedding "
                              f"(N without the embeddings and LM head, the default), "
                              f"total (every parameter)")
        fits[fname] = lw
    # A law built on another (Law.needs: the distillation law on the supervised one) names that fit under the
    # needed law's own key (`supervised: <fit>`); no law is named here, so a fourth law with `needs` checks the same.
    for fname, lw in fits.items():
        needs = LAWS.get(lw.law).needs
        for dep in [f.name for f in dataclasses.fields(LawSpec) if f.name in LAWS]:
            if getattr(lw, dep) is not None and dep not in needs:
                raise ConfigError(f"{where}: laws.{fname}.{dep}: the {lw.law} law is not built on a {dep} law")
        for dep in needs:
            if not hasattr(lw, dep):
                raise ConfigError(f"{where}: laws.{fname}: the {lw.law} law needs a {dep} fit, which a report spec "
                                  f"cannot name yet (add `{dep}` to report/spec.py: LawSpec)")
            ref = getattr(lw, dep)
            choices = [n for n, f in fits.items() if f.law == dep] + [n for n, p in PUBLISHED.items() if p.law == dep]
            if ref is None:
                raise ConfigError(f"{where}: laws.{fname}.{dep}: the {lw.law} law needs the name of a {dep} fit in "
                                  f"this spec (or a published set); valid: {', '.join(choices) or 'none'}")
            if ref not in choices:
                what = (f"is not a {dep}-law fit" if ref in fits or ref in PUBLISHED
                        else "is neither a fit of this spec nor a published set")
                raise ConfigError(f"{where}: laws.{fname}.{dep}: {ref!r} {what}"
                                  f"{did_you_mean(ref, choices)}; valid: {', '.join(choices)}")
            # the law read from the dependency must count N as this fit does (published sets: non-embedding N)
            theirs = fits[ref].n_params if ref in fits else "non_embedding"
            if theirs != lw.n_params:
                raise ConfigError(f"{where}: laws.{fname}.n_params: {lw.n_params!r}, but its {dep} fit "
                                  f"{ref!r} counts N as {theirs!r}; use the same n_params for both")
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
    entries = tuple(parse_comparison(c, f"{where}: comparison[{i}]") for i, c in enumerate(comparison))
    if entries and "comparison" not in spec.tables:
        raise ConfigError(f"{where}: comparison: given, but 'comparison' is not under tables:")
    return dataclasses.replace(spec, laws=fits, comparison=entries)

