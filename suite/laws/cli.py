"""`suite fit`: fit a scaling law to a CSV/parquet of points or a sweep's results.parquet.

    suite fit --law chinchilla --data points.csv --bootstrap 4000 --ci 0.95
    suite fit --law distillation --data runs/quickstart/results.parquet --json
"""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

from .._io import atomic_write_json
from .data import is_sweep_results, points_for, read_table
from .fitting import FitResult, fit
from .forms import LAWS, get_law
from .published import PUBLISHED, published


def supervised_params(spec: str) -> dict[str, float]:
    """A published set's name, or a JSON file: a `suite fit --json` output or a flat {name: value} mapping."""
    if spec in PUBLISHED:
        return dict(published(spec).params)
    p = Path(spec)
    if not p.exists():
        raise FileNotFoundError(f"--supervised-params {spec!r} is neither a file nor a published set "
                                f"({', '.join(PUBLISHED.names())})")
    obj = json.loads(p.read_text())
    params = obj.get("params", obj) if isinstance(obj, dict) else None
    if not isinstance(params, dict):
        raise ValueError(f"{p}: expected a JSON object with a 'params' mapping or a flat mapping of parameters")
    return {k: float(v) for k, v in params.items()}


def parse_fixed(items: list[str]) -> dict[str, float]:
    out = {}
    for it in items:
        name, sep, val = it.partition("=")
        try:
            out[name.strip()] = float(val)
        except ValueError:
            sep = ""
        if not sep:
            raise ValueError(f"--fix expects NAME=VALUE (e.g. --fix gamma=1), got {it!r}")
    return out


def run(a) -> int:
    try:
        return _run(a)
    except ValueError as e:  # bad data or arguments: say what and where, no traceback
        print(f"suite fit: error: {e}", file=sys.stderr)
        return 2


def _run(a) -> int:
    say = (lambda m: None) if a.json else (lambda m: print(m, file=sys.stderr))
    LAWS.get(a.law)  # unknown law: list the valid ones before reading any data
    table = read_table(a.data)
    context: dict[str, Any] = {}
    if a.law == "distillation":
        if a.supervised_params:
            context["supervised"] = supervised_params(a.supervised_params)
        elif is_sweep_results(table):
            say("distillation: fitting the supervised law to the sweep's supervised runs first "
                "(pass --supervised-params to use another)")
            sup_law = get_law("supervised")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sup = fit(sup_law, points_for(sup_law, table), progress=say, source=f"{a.data} (supervised runs)")
            context["supervised"] = sup.params
        else:
            raise ValueError("the distillation law needs the student's supervised law: pass --supervised-params "
                             "FILE.json (from `suite fit --law supervised --json`) or a published set "
                             f"({', '.join(n for n in PUBLISHED.names() if 'supervised' in n)})")
    law = get_law(a.law, **context)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bound warnings are reported in the result
        res = fit(law, points_for(law, table), delta=a.delta, method=a.method, bootstrap=a.bootstrap, ci=a.ci,
                  seed=a.seed, holdout=a.holdout, fixed=parse_fixed(a.fix), progress=say, source=str(a.data))
    if a.out:
        atomic_write_json(Path(a.out), res.to_dict())
    print(json.dumps(res.to_dict(), indent=2) if a.json else format_fit(res))
    return 0


def format_fit(res: FitResult) -> str:
    lines = [f"{res.law} law, {res.n_points} points: summed Huber (delta {res.delta:g}) = {res.objective:.6g}",
             f"  {res.starts} starts ({res.method}; {res.searched} searched), {res.refined} refined, "
             f"{res.converged} converged, "
             f"{res.seconds:.2f} s"]
    for name, v in res.params.items():
        ci = f"   {res.ci_level:.0%} CI [{res.ci[name][0]:.5g}, {res.ci[name][1]:.5g}]" if res.ci else ""
        lines.append(f"  {name:>6} = {v:<12.6g}{ci}")
    if res.ci:
        lines.append(f"  ({res.n_bootstrap} bootstrap resamples)")
    if res.holdout:
        h = res.holdout
        lines.append(f"  held out: top {h['fraction']:.0%} of compute ({h['n_test']} points, fit on {h['n_fit']}): "
                     f"mean relative error {h['mean_rel_error']:.2%}, max {h['max_rel_error']:.2%}")
    for w in res.warnings:
        lines.append(f"  warning: {w}")
    return "\n".join(lines)


def add_parser(sub) -> None:
    import argparse

    f = sub.add_parser(
        "fit", help="fit a scaling law (chinchilla, supervised, distillation) to points or a sweep's results",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Fit log L with the summed Huber loss from a multi-start grid (the papers' grids), with "
                    "optional bootstrap intervals and held-out extrapolation.\n\n"
                    "Data columns: N, D, loss (chinchilla, supervised) or N_S, D_S, L_T, loss (distillation); "
                    "raw parameter and token counts, loss in nats/token. A sweep's results.parquet (or its "
                    "directory) is read directly.",
        epilog="laws:\n" + "\n".join(f"  {n}: {LAWS.get(n).__doc__.strip().splitlines()[0]}" for n in LAWS.names())
               + "\n\nexamples:\n  suite fit --law chinchilla --data points.csv --bootstrap 4000 --ci 0.95\n"
                 "  suite fit --law supervised --data runs/quickstart --json > sup.json\n"
                 "  suite fit --law distillation --data runs/quickstart --supervised-params sup.json\n"
                 "  suite fit --law supervised --data points.csv --fix gamma=1 --holdout 0.2")
    f.add_argument("--law", required=True, help=f"one of: {', '.join(LAWS.names())}")
    f.add_argument("--data", required=True, metavar="FILE", help="CSV, TSV, parquet, JSON(L), or a sweep directory")
    f.add_argument("--supervised-params", metavar="FILE_OR_NAME",
                   help="distillation only: the student's supervised law (a `suite fit --json` file or "
                        f"a published set: {', '.join(PUBLISHED.names())}); default: fit it to the sweep's "
                        "supervised runs")
    f.add_argument("--delta", type=float, default=None, help="Huber delta on log L (default: the law's, "
                   "1e-3 chinchilla, 1e-4 supervised/distillation)")
    f.add_argument("--bootstrap", type=int, default=0, metavar="N", help="resamples for percentile intervals")
    f.add_argument("--ci", type=float, default=0.9, help="interval level (default 0.9, as Busbridge et al.)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--holdout", type=float, default=None, metavar="FRAC",
                   help="fit on the lowest-compute points, report relative error on the top FRAC")
    f.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE", help="hold a parameter fixed")
    f.add_argument("--method", choices=["fast", "full"], default="fast",
                   help="fast: batched descent of every start, best refined (default); full: L-BFGS-B per start")
    f.add_argument("--out", metavar="FILE.json", help="also write the JSON result here")
    f.add_argument("--json", action="store_true", help="print the result as JSON")
    f.set_defaults(fn=run)
