"""`suite compare`: every arm against a baseline, with seeds, intervals, adjusted p and the detectable effect.

    suite compare reports/genrecal_toy/results.parquet --metric loss --baseline arm=SFT --by student
    suite compare runs/scaling_lab --metric loss --baseline method=supervised --by N_S,D_S --json
    suite compare runs/gere_toy --metric continual.ap --baseline arm=seq-ft --where "`continual.stage` == 5"

An arm is the cells that differ only by seed. By default the `arm` column names them: a label derived from
each row (a VLM cell's variant such as "SFT", "GenRecal (L_reg ce+kl)" or "GenRecal (L_reg ce+kl) [stage 1]"
for an earlier stage, a continual cell's "gere w=100 [stage 5]", a text cell's "kd ← T 1.86M/1.5M (L_T 2.241)"),
or the cell's name without its seed; `--arm COLUMN` uses a results column instead. Within each `--by` group the
baseline rows (COLUMN=VALUE) must form one arm, and every other arm is compared with it:

- each arm: seeds n, mean, sample SD and the 95% Student-t interval;
- the difference to the baseline with its 95% interval and two-sided p, paired by seed where both arms ran the
  same seeds (the seed fixes initialisation and data order), Welch otherwise, a single-case test where one arm
  has one seed (none where both have one); the `test` column says which;
- `p_adjusted`: Holm's step-down adjustment across every difference to a baseline in the table; `significant`
  only after it;
- `mde`: the minimum detectable effect at 80% power for that n and spread (suite/stats.py);
- `best`: the arm whose mean is best (lower for losses, higher for scores) when it is significantly better than
  every other arm of its group (Holm within the group, and significant in the table where the test is a row of
  it), else nothing is marked; Markdown and LaTeX bold it.
"""
from __future__ import annotations

import json
import math
import re
import sys
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import stats
from ..config import ConfigError
from ..registry import did_you_mean
from .continual import stage_rows
from .flags import benchmark_flags, flag_mark, marks
from .registries import TABLES
from .spec import Comparison, parse_comparison
from .tables import _variant_labels, fmt
from .vlm import vlm_rows

ARM = "arm"
SEED = "config.train.seed"
# metrics where lower is better, recognised by name (anything else: higher is better unless --better says)
_LOWER = re.compile(r"(^|[._])(loss|ce|kl|nll|bpb|bits_per_byte|perplexity|ppl|forgetting)([._]|$)")


def better_of(metric: str) -> str:
    """'lower' for losses (loss, *_ce, kl, bpb, perplexity, forgetting), 'higher' for everything else."""
    return "lower" if _LOWER.search(metric.lower()) else "higher"


def with_arms(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with an `arm` column (cells that differ only by seed share it) and a `seed` column."""
    out = df.copy()
    out["seed"] = out[SEED] if SEED in out else 0
    name = out["name"] if "name" in out else pd.Series([None] * len(out), index=out.index)
    arm = name.map(lambda s: re.sub(r"-s\d+$", "", s) if isinstance(s, str) else s)
    text = out
    vlm = vlm_rows(out)
    if not vlm.empty:
        last = vlm.groupby("variant")["stage"].transform("max")
        labels = [_drop_student(v, s) + (f" [stage {k}]" if k > 0 and k < top else "")
                  for v, s, k, top in zip(vlm["variant"], vlm["student"], vlm["stage"], last)]
        arm.loc[vlm.index] = labels
        text = text.drop(index=vlm.index)
    cont = stage_rows(text)
    if not cont.empty:
        arm.loc[cont.index] = [f"{v} [stage {k}]" for v, k in zip(cont["variant"], cont["continual.stage"])]
        text = text.drop(index=cont.index)
    if "method" in text and not text.empty:
        labels = _variant_labels(text, df)
        arm.loc[text.index] = [lab if m != "supervised" else "supervised" for lab, m in zip(labels, text["method"])]
    out[ARM] = arm
    return out


def _drop_student(variant: str, student: Any) -> str:
    s = f"{student} "
    return variant[len(s):] if isinstance(student, str) and variant.startswith(s) else variant


def _check_column(df: pd.DataFrame, col: str, what: str, source: str) -> None:
    if col not in df:
        cols = [str(c) for c in df.columns]
        raise ConfigError(f"{source}: {what} {col!r} is not a results column{did_you_mean(col, cols)}"
                          f" (results have {len(cols)} columns, e.g. {', '.join(c for c in cols[:12])})")


def _match(series: pd.Series, value: str) -> pd.Series:
    """Rows whose value equals `value` as written on a command line (numbers compared as numbers)."""
    if pd.api.types.is_numeric_dtype(series):
        try:
            return series == float(value)
        except ValueError:
            return pd.Series(False, index=series.index)
    return series.astype(str) == value


def compare(df: pd.DataFrame, c: Comparison, source: str = "compare") -> pd.DataFrame:
    """The comparison table: one row per (by group, metric, arm); see the module docstring for the columns."""
    df = with_arms(df)   # before `where`, so a query may name the arm (and each arm's label sees every cell)
    if c.where:
        try:
            df = df.query(c.where)
        except Exception as e:  # a pandas query is user input: name it
            raise ConfigError(f"{source}: where: {c.where!r} failed: {type(e).__name__}: {e}") from None
    bcol, _, bval = c.baseline.partition("=")
    for col, what in [(m, "metric") for m in c.metric] + [(b, "by column") for b in c.by] + \
                     [(bcol, "baseline column"), (c.arm, "arm column")]:
        _check_column(df, col, what, source)
    if df.empty:
        raise ConfigError(f"{source}: no rows to compare" + (f" after where: {c.where!r}" if c.where else
                                                               " (the table has a header and no rows)"))
    for m in c.metric:   # text (a device, a name) would only be dropped as non-finite, arm by arm: say so once
        values = df[m].dropna()
        if len(values) and pd.to_numeric(values, errors="coerce").isna().all():
            seen = sorted(map(str, values.unique()))[:3]
            raise ConfigError(f"{source}: metric {m!r} is not a numeric column: none of its {len(values)} values "
                              f"is a number (e.g. {', '.join(map(repr, seen))})")
    is_base = _match(df[bcol], bval)
    if not is_base.any():
        vals = sorted(map(str, df[bcol].dropna().unique()))
        raise ConfigError(f"{source}: baseline: no row has {bcol} = {bval!r}{did_you_mean(bval, vals)}; "
                          f"values: {', '.join(vals[:30])}")
    rows: list[dict[str, Any]] = []
    groups = df.groupby(list(c.by), dropna=False, sort=True) if c.by else [((), df)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        base_arms = g.loc[is_base.loc[g.index], c.arm].dropna().unique()
        if len(base_arms) == 0:
            continue   # this group has no baseline: nothing to compare with
        if len(base_arms) > 1:
            at = ", ".join(f"{b}={k}" for b, k in zip(c.by, key)) or "the whole table"
            raise ConfigError(f"{source}: baseline {c.baseline!r} matches {len(base_arms)} arms at {at}: "
                              f"{'; '.join(map(str, base_arms))}; name one (e.g. --baseline {c.arm}=...) or "
                              f"narrow the rows with where/--where")
        base = base_arms[0]
        for metric in c.metric:
            rows += _group_rows(g, c, metric, base, dict(zip(c.by, key)), source)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["metric_label"] = [c.labels.get(m, m) for m in out["metric"]]
    return adjust(out)


def adjust(raw: pd.DataFrame) -> pd.DataFrame:
    """Holm across the table's differences to the baseline (one family); sets p_adjusted, significant and best.
    A group's best arm is bold when its tests against every other arm of the group are significant after Holm
    within the group and, where a test is also a row of the table (best arm vs baseline), significant there."""
    raw = raw.copy()
    diff = (raw["arm"] != raw["baseline"]).to_numpy()
    raw["p_adjusted"] = np.nan
    raw.loc[diff, "p_adjusted"] = stats.holm(raw.loc[diff, "p"].to_numpy(float))
    raw["significant"] = raw["p_adjusted"] < stats.ALPHA
    raw["best"] = False
    for i, r in raw.iterrows():
        if not r["best_p"]:
            continue
        sign = -1 if r["better"] == "lower" else 1
        within = stats.holm(r["best_p"])
        ok = all(np.isfinite(q) and q < stats.ALPHA and sign * d > 0 for q, d in zip(within, r["best_diff"]))
        mates = raw[(raw["group"] == r["group"]) & diff]
        table_rows = mates if r["arm"] == r["baseline"] else mates[mates["arm"] == r["arm"]]
        raw.loc[i, "best"] = bool(ok and table_rows["significant"].all())
    return raw


def _per_seed(g: pd.DataFrame, arm: str, metric: str, arm_col: str, source: str) -> pd.Series:
    a = g[g[arm_col] == arm]
    a = a[np.isfinite(pd.to_numeric(a[metric], errors="coerce"))]
    if a["seed"].duplicated().any():
        dup = a[a["seed"].duplicated(keep=False)]
        names = ", ".join(map(str, dup["name"] if "name" in dup else dup.index))
        raise ConfigError(f"{source}: arm {arm!r} has a seed twice ({names}): these cells differ in something "
                          f"the arm label does not name; compare by a column that does (--arm) or add it to --by")
    return pd.to_numeric(a.set_index("seed")[metric], errors="coerce").astype(float)


def _test(a: pd.Series, b: pd.Series, c: Comparison) -> stats.Difference:
    shared = c.paired and len(a) >= 2 and set(a.index) == set(b.index)
    if shared:
        idx = sorted(a.index)
        return stats.difference(a.loc[idx].to_numpy(), b.loc[idx].to_numpy(), paired=True, level=c.level)
    return stats.difference(a.to_numpy(), b.to_numpy(), level=c.level)


def _group_rows(g: pd.DataFrame, c: Comparison, metric: str, base: str, key: dict, source: str) -> list[dict]:
    better = c.better or better_of(metric)
    arms = [a for a in g[c.arm].dropna().unique()]
    values = {a: _per_seed(g, a, metric, c.arm, source) for a in arms}
    values = {a: v for a, v in values.items() if len(v)}
    if base not in values or len(values) < 2:   # a baseline with nothing to compare against says nothing
        return []
    ids = g["cell_id"] if "cell_id" in g else pd.Series(g.index.astype(str), index=g.index)
    out = []
    for a in [base] + sorted(x for x in values if x != base):
        s = stats.mean_ci(values[a].to_numpy(), c.level)
        cells = [str(x) for x in ids[(g[c.arm] == a) & pd.to_numeric(g[metric], errors="coerce").notna()]]
        d = _test(values[a], values[base], c) if a != base else None
        out.append({**key, "metric": metric, "arm": a, "baseline": base, "n": s.n, "mean": s.mean, "sd": s.sd,
                    "ci_low": s.ci_low, "ci_high": s.ci_high,
                    "diff": d.diff if d else np.nan, "diff_ci_low": d.ci_low if d else np.nan,
                    "diff_ci_high": d.ci_high if d else np.nan, "test": d.test if d else "",
                    "p": d.p if d else np.nan, "mde": d.mde if d else np.nan, "better": better,
                    "best_p": [], "best_diff": [], "cells": cells, "group": f"{key}|{metric}|{base}"})
    # the arm with the best mean, tested against every other arm; `adjust` decides after Holm across the table
    means = {a: float(v.mean()) for a, v in values.items()}
    if len(means) >= 2:
        top = (min if better == "lower" else max)(means, key=means.get)
        tests = [_test(values[top], values[a], c) for a in means if a != top]
        row = next(r for r in out if r["arm"] == top)
        row["best_p"], row["best_diff"] = [t.p for t in tests], [t.diff for t in tests]
    return out


# ---- presentation ---------------------------------------------------------------------------------------
def _digits(metric: str, values: pd.Series) -> int:
    v = values.abs().dropna()
    scale = float(v.median()) if len(v) else 1.0
    return 1 if scale >= 10 else 3 if scale >= 0.1 else 4


def _p(v: float) -> str:
    return "–" if not np.isfinite(v) else f"{v:.2g}" if v < 0.001 else f"{v:.3f}"


def shown_table(raw: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Preformatted cells; the best arm of a group (significant against every other) in **bold**."""
    rows = []
    for _, r in raw.iterrows():
        k = _digits(r["metric"], raw.loc[raw["metric"] == r["metric"], "mean"])
        f = lambda v, k=k: "–" if not np.isfinite(v) else f"{v:.{k}f}"  # noqa: E731
        mean = f(r["mean"]) + (f" [{f(r['ci_low'])}, {f(r['ci_high'])}]" if np.isfinite(r["ci_low"]) else "")
        if r["best"]:
            mean = f"**{mean}**"
        mean += flag_mark(r.get("flagged", 0), r["n"])
        is_base = r["arm"] == r["baseline"]
        diff = ("(baseline)" if is_base else
                "–" if not np.isfinite(r["diff"]) else
                f"{r['diff']:+.{k}f}" + (f" [{r['diff_ci_low']:+.{k}f}, {r['diff_ci_high']:+.{k}f}]"
                                         if np.isfinite(r["diff_ci_low"]) else ""))
        row = {b: _fmt_key(r[b]) for b in by}
        row.update({"metric": r.get("metric_label", r["metric"]), "arm": r["arm"], "n": int(r["n"]),
                    "mean [95% CI]": mean, "Δ vs baseline [95% CI]": diff,
                    "test": r["test"] or "–", "p": _p(r["p"]), "p (Holm)": _p(r["p_adjusted"]),
                    "MDE (80%)": "–" if not np.isfinite(r["mde"]) else f"{r['mde']:.{k}f}",
                    "significant": "" if is_base else "–" if r["test"] == "none" else
                                   ("yes" if r["significant"] else "no")})
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt_key(v: Any) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer() and abs(v) >= 1000:
        from .tables import fmt_count

        return fmt_count(float(v))
    return fmt(v)


CAPTION = ("Every arm against the baseline: seeds n, mean with its 95% Student-t interval, the difference to the "
           "baseline with its 95% interval, the test (paired by seed where both arms ran the same seeds, Welch "
           "otherwise, single: Crawford & Howell's test of one seed against the baseline's seeds, none: one seed "
           "a side), p, p adjusted by Holm across the table, and the minimum detectable effect at 80% power "
           "for that n and spread. 'significant' is after adjustment (α = 0.05). Bold: an arm significantly better "
           "than every other of its group; none is bold when no arm is. ⚑k/n: k of the arm's n seeds have a flagged "
           "score (see Flags).")


@TABLES.register("comparison")
def comparison_table(df: pd.DataFrame, fits: dict, spec=None) -> tuple[pd.DataFrame, pd.DataFrame, str] | None:
    """The spec's `comparison:` entries as one table (Holm across all of its rows)."""
    entries = getattr(spec, "comparison", ()) or ()
    if not entries:
        return None
    raws = []
    for i, c in enumerate(entries):
        raw = compare(df, c, f"{getattr(spec, 'source', 'spec')}: comparison[{i}]")
        if not raw.empty:
            raws.append(raw.assign(comparison=i))
    if not raws:
        return None
    raw = adjust(pd.concat(raws, ignore_index=True))   # one Holm family for the whole table
    marked = marks(benchmark_flags(df))
    raw["flagged"] = [sum(bool(marked.get((c, m))) for c in cells) for cells, m in zip(raw["cells"], raw["metric"])]
    by = list(dict.fromkeys(b for c in entries for b in c.by))
    raw["cells"] = [";".join(c) for c in raw["cells"]]
    return shown_table(raw, by), raw.drop(columns=["best_p", "best_diff", "group"]), CAPTION


comparison_table.wants_spec = True   # build.py passes the analysis spec


JSON_KEYS = ("arm", "n", "mean", "sd", "ci_low", "ci_high", "diff", "diff_ci_low", "diff_ci_high", "test", "p",
             "p_adjusted", "significant", "mde", "best", "baseline", "metric")


def to_records(raw: pd.DataFrame, by: Sequence[str] = ()) -> list[dict]:
    cols = list(by) + [k for k in JSON_KEYS if k in raw]
    recs = raw[cols].to_dict(orient="records")
    return [{k: (None if isinstance(v, float) and not math.isfinite(v) else
                 v.item() if isinstance(v, np.generic) else v) for k, v in r.items()} for r in recs]


def main(a) -> int:
    from ..laws import read_table
    from .tables import to_latex, to_markdown

    try:
        df = read_table(a.results)
    except (FileNotFoundError, ValueError) as e:
        print(f"suite compare: error: {e}", file=sys.stderr)
        return 2
    by = tuple(b.strip() for b in (a.by or "").split(",") if b.strip())
    metrics = tuple(m.strip() for ms in a.metric for m in ms.split(",") if m.strip())
    try:
        c = parse_comparison({"metric": metrics, "baseline": a.baseline, "by": by, "where": a.where,
                              "arm": a.arm, "better": a.better, "paired": not a.unpaired}, "compare")
        raw = compare(df, c, str(a.results))
    except ConfigError as e:
        print(f"suite compare: error: {e}", file=sys.stderr)
        return 2
    if raw.empty:
        print(f"suite compare: error: {a.results}: no group has both the baseline and another arm with a finite "
              f"{', '.join(metrics)}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(to_records(raw, by), indent=2))
    elif a.format == "tex":
        print(to_latex(shown_table(raw, by), CAPTION, "comparison"), end="")
    elif a.format == "csv":
        print(raw.to_csv(index=False, float_format="%.10g"), end="")
    else:
        print(to_markdown(shown_table(raw, by)), end="")
    return 0


def add_parser(sub, helptext: str) -> None:
    import argparse

    doc = __doc__.split("\n\n")
    p = sub.add_parser("compare", help=helptext, formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="\n\n".join(doc[2:]), epilog="examples:\n" + doc[1])
    p.add_argument("results", help="results table (.parquet/.csv) or a sweep directory with results.parquet")
    p.add_argument("--metric", action="append", required=True,
                   help="results column to compare (repeat or comma-separate for several): loss, "
                        "benchmarks.ai2d.overall, continual.ap, ...")
    p.add_argument("--baseline", required=True, help="COLUMN=VALUE: the rows every other arm is compared with "
                                                     "(arm=SFT, method=supervised)")
    p.add_argument("--by", help="comma-separated columns: compare within each group (student; N_S,D_S)")
    p.add_argument("--where", help="pandas query applied first (e.g. \"`vlm.answers` != 'teacher'\")")
    p.add_argument("--arm", default=ARM, help="column whose values are the arms (default: the derived `arm` label; "
                                              "cells differing only by seed share it)")
    p.add_argument("--better", choices=["lower", "higher"], help="direction (default: lower for losses, "
                                                                 "higher otherwise)")
    p.add_argument("--unpaired", action="store_true", help="Welch's test even where arms share seeds")
    p.add_argument("--format", choices=["md", "tex", "csv"], default="md", help="table format (without --json)")
    p.add_argument("--json", action="store_true", help="one JSON record per arm")
    p.set_defaults(fn=main)
