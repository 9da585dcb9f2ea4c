"""Fit the laws an analysis spec names to a sweep's results table."""
from __future__ import annotations

import contextlib
import dataclasses
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import pandas as pd

from ..config import ConfigError
from ..laws import (LAWS, PUBLISHED, FitResult, Law, exact_irreducible, fit, get_law, points_for, published,
                     read_table)
from ..registry import did_you_mean
from .spec import LawSpec, ReportSpec


@dataclass(frozen=True)
class Fitted:
    name: str
    spec: LawSpec
    law: Law
    points: pd.DataFrame
    result: FitResult


def load_results(spec: ReportSpec, root: Path | None = None, results: str | Path | None = None
                 ) -> tuple[pd.DataFrame, Path]:
    p = Path(results or spec.sweep)
    where = "--results" if results else f"{spec.source}: sweep"
    if not p.is_absolute() and root is not None and not p.exists():
        p = root / p
    if not p.exists():
        raise ConfigError(f"{where}: {p} does not exist (run the sweep and "
                          f"`suite sweep collect`, or point sweep: at a results .parquet/.csv)")
    try:
        df = read_table(p)
    except FileNotFoundError as e:
        raise ConfigError(f"{where}: {e}") from None
    if df.empty:
        raise ConfigError(f"{where}: {p} has no finished cells")
    return df, p if p.is_file() else p / "results.parquet"


@contextlib.contextmanager
def reading_columns(spec: ReportSpec, df: pd.DataFrame, results: Path, what: str):
    """Run one table, figure or the headline: a column the results lack (a KeyError naming a column `df` does
    not have) becomes a ConfigError naming the spec, `what`, the column and the columns there are."""
    try:
        yield
    except KeyError as e:
        col = _missing_column(e, df)
        if col is None:
            raise  # a key of our own making: a bug, keep the traceback
        raise ConfigError(f"{spec.source}: {what} reads column {col!r}, which the results {results} lack"
                          f"{did_you_mean(col, [str(c) for c in df.columns])}; {column_list(df)}") from None


def _missing_column(e: KeyError, df: pd.DataFrame) -> str | None:
    """The column a pandas KeyError names (`'N_S'`, `'Column not found: loss'`, `"['loss'] not in index"`), when
    the results lack it; None for a KeyError raised outside pandas (a dict of ours: a bug)."""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None or "pandas" not in Path(tb.tb_frame.f_code.co_filename).parts:
        return None
    key = e.args[0] if e.args else None
    if isinstance(key, str):
        m = re.fullmatch(r"Column not found: (.+)", key) or re.search(r"\['([^']+)'", key)
        key = m.group(1) if m else key
    return key if isinstance(key, str) and key not in df.columns else None


def column_list(df: pd.DataFrame, limit: int = 40) -> str:
    """`columns: a, b, ... (+ 95 dotted: config.*, versions.*, ...)`: the results' own columns, then a count."""
    cols = [str(c) for c in df.columns]
    own = [c for c in cols if "." not in c] or cols
    shown = own[:limit]
    prefixes = sorted({c.split(".")[0] + ".*" for c in cols if c not in shown and "." in c})
    rest = len(cols) - len(shown)
    return f"columns: {', '.join(shown)}" + (f" (+ {rest} more{': ' + ', '.join(prefixes[:6]) if prefixes else ''})"
                                             if rest else "")


def fit_laws(spec: ReportSpec, df: pd.DataFrame, say: Callable[[str], None]) -> dict[str, Fitted]:
    """Fits in dependency order: a fit whose law `needs` others (the distillation law: a supervised fit, named
    by its spec's `supervised:`) comes after the fits it is built on; otherwise in spec order."""
    out: dict[str, Fitted] = {}
    depth = _depths(spec)
    for name, ls in sorted(spec.laws.items(), key=lambda kv: depth[kv[0]]):
        where = f"{spec.source}: laws.{name}"
        built_on = {dep: out[ref].result.params if ref in out else published(ref).params
                    for dep, ref in _needed(ls, where).items()}
        out[name] = fit_one(name, ls, df, say, where=where, built_on=built_on)
    return out


def _needed(ls: LawSpec, where: str) -> dict[str, str]:
    """{law it needs: the fit of this spec or the published set that gives it} for one fit: the spec names each
    under the needed law's own key (`supervised: NAME`)."""
    out = {}
    for dep in LAWS.get(ls.law).needs:
        ref = getattr(ls, dep.replace("-", "_"), None)
        if not ref:
            raise ConfigError(f"{where}.{dep}: the {ls.law} law needs the name of a {dep} fit in this spec (or a "
                              f"published set)")
        out[dep] = ref
    return out


def _depths(spec: ReportSpec) -> dict[str, int]:
    """How deep each fit is built: 0 for a law that needs none, else one more than the deepest of the spec's fits
    it needs (1 when they are all published sets)."""
    depth: dict[str, int] = {}

    def of(name: str, seen: tuple[str, ...] = ()) -> int:
        if name in seen:
            raise ConfigError(f"{spec.source}: laws: {' -> '.join((*seen, name))} build on each other in a circle")
        if name not in depth:
            refs = _needed(spec.laws[name], f"{spec.source}: laws.{name}").values()
            depth[name] = 1 + max((of(r, (*seen, name)) for r in refs if r in spec.laws), default=0) if refs else 0
        return depth[name]

    for name in spec.laws:
        of(name)
    return depth


def fit_one(name: str, ls: LawSpec, df: pd.DataFrame, say: Callable[[str], None] | None = None,
            where: str | None = None, built_on: Mapping[str, Mapping[str, float]] | None = None) -> Fitted:
    """One fit of a spec: `ls` on the results `df` (`built_on`: {law: params} for each law its law `needs`, e.g.
    the supervised params a distillation fit builds on). N counts what `ls.n_params` says; a fit with total N
    says so in its result's context."""
    where = where or f"laws.{name}"
    law = get_law(ls.law, **(built_on or {}))
    try:
        rows = df.query(ls.rows) if ls.rows else df
    except Exception as e:  # a pandas query is user code: its errors are spec errors
        raise ConfigError(f"{where}.rows: {ls.rows!r} failed: {type(e).__name__}: {e}") from None
    try:
        pts = points_for(law, rows, n_params=ls.n_params)
    except ValueError as e:  # e.g. runs without a total parameter count
        raise ConfigError(f"{where}.n_params: {e}") from None
    if say is not None:
        say(f"fitting {name} ({ls.law} law{', total N' if ls.n_params == 'total' else ''}) to {len(pts)} points"
            + (f", {ls.bootstrap} bootstrap resamples" if ls.bootstrap else ""))
    fixed = {k: _fixed_value(v, df, f"{where}.fixed.{k}") for k, v in ls.fixed.items()}
    try:
        with warnings.catch_warnings():  # bound warnings go into the report (fit_quality, headline)
            warnings.simplefilter("ignore")
            res = fit(law, pts, delta=ls.delta, bootstrap=ls.bootstrap, ci=ls.ci, seed=ls.seed,
                      holdout=ls.holdout, fixed=fixed or None, source=where,
                      method=ls.search)
    except ValueError as e:  # data errors already name `where`; others (holdout, ci) get it here
        raise ConfigError(str(e) if str(e).startswith(where) else f"{where}: {e}") from None
    if ls.n_params != "non_embedding":   # the default leaves the context (and summary.json) as it was
        res = dataclasses.replace(res, context={**res.context, "n_params": ls.n_params})
    return Fitted(name, ls, law, pts.reset_index(drop=True), res)


def refit(f: Fitted, df: pd.DataFrame, say: Callable[[str], None] | None = None, **changes) -> Fitted:
    """`f` fitted again to `df` with its LawSpec changed, e.g. refit(f, df, n_params="total", bootstrap=100,
    holdout=None): the same law, rows, delta, held parameters, search and seed otherwise."""
    ls = dataclasses.replace(f.spec, **changes)
    what = ", ".join(f"{k}={v}" for k, v in changes.items())
    return fit_one(f.name, ls, df, say, where=f"laws.{f.name} (refit: {what})", built_on=f.law.built_on())


def _fixed_value(v, df: pd.DataFrame, where: str) -> float:
    if v == "bayes_loss":
        e = exact_irreducible(df)
        if e is None:
            raise ConfigError(f"{where}: 'bayes_loss' needs runs on synthetic data (results column bayes_loss)")
        return e
    try:
        return float(v)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a number or 'bayes_loss', got {v!r}") from None


def fit_of(fits: dict[str, Fitted], *laws: str) -> Fitted | None:
    """The first fit of one of `laws`, in spec order."""
    return next((f for f in fits.values() if f.spec.law in laws), None)


def compute_optimal_fits(fits: dict[str, Fitted]) -> list[Fitted]:
    """The fits whose law has approach 3's closed form (Law.compute_optimal: chinchilla, supervised), in order."""
    return [f for f in fits.values() if f.law.compute_optimal]


def supervised_params_of(dist: Fitted) -> dict[str, float]:
    """The supervised law a distillation fit was fitted against (its L~_S): use it, not another fit."""
    return dict(dist.law.built_on()["supervised"])


def comparison_set(f: Fitted) -> str | None:
    """The published coefficient set to put beside a fit: the spec's `compare`, else its law's `compare_with`."""
    if f.spec.compare:
        return f.spec.compare
    default = f.law.compare_with
    return default if default is not None and default in PUBLISHED else None
