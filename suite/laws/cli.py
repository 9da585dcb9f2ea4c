"""`suite fit`: fit a scaling law to a CSV/parquet of points or a sweep's results.parquet.

    suite fit --law chinchilla --data points.csv --bootstrap 4000 --ci 0.95
    suite fit --law distillation --data runs/quickstart/results.parquet --json
    suite fit --approach isoflop --data runs/scaling_lab --bootstrap 1000     # Hoffmann et al. approach 2
"""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

from .._io import atomic_write_json
from .approaches import APPROACHES, ApproachResult, envelope, isoflop, parametric_exponents
from .data import is_sweep_results, points_for, read_table
from .fitting import FitResult, fit
from .forms import LAWS, get_law
from .published import PUBLISHED, published



def _points(law, table, say, **kw):
    """points_for, saying (on stderr, and in --json under `dropped`) which runs it dropped for a loss that is
    not a finite number: a fit must never lose rows silently. Eq. 8's left-out runs are said by the caller."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pts = points_for(law, table, **kw)
    dropped = [str(w.message) for w in caught if "without a finite loss" in str(w.message)]
    for m in dropped:
        say(f"warning: {m}")
    if dropped:
        pts.attrs["dropped"] = dropped
    return pts

def supervised_params(spec: str, flag: str = "--supervised-params") -> dict[str, float]:
    """A published set's name, or a JSON file: a `suite fit --json` output or a flat {name: value} mapping."""
    if spec in PUBLISHED:
        return dict(published(spec).params)
    p = Path(spec)
    if not p.exists():
        raise FileNotFoundError(f"{flag} {spec!r} is neither a file nor a published set "
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
    if a.approach in ("envelope", "isoflop"):
        return _run_approach(a)
    if a.law is None:
        raise ValueError(f"--law is required with --approach parametric (one of: {', '.join(LAWS.names())})")
    cls = LAWS.get(a.law)  # unknown law: list the valid ones before reading any data
    table = read_table(a.data)
    context = {dep: _built_on(a, dep, table, say) for dep in cls.needs}
    law = get_law(a.law, **context)
    pts = _points(law, table, say, all_kd=a.all_kd)
    left_out = pts.attrs.get("left_out", {})
    if left_out:
        say(f"{a.law}: left out {sum(left_out.values())} distilled run(s) outside eq. 8's setting "
            f"({'; '.join(f'{k}: {n}' for k, n in left_out.items())}); --all-kd fits them too")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bound warnings are reported in the result
        res = fit(law, pts, delta=a.delta, method=a.method, bootstrap=a.bootstrap, ci=a.ci,
                  seed=a.seed, holdout=a.holdout, fixed=parse_fixed(a.fix), progress=say, source=str(a.data))
    out = res.to_dict()
    if left_out:
        out["left_out"] = left_out
    if pts.attrs.get("dropped"):
        out["dropped"] = pts.attrs["dropped"]
    text = format_fit(res)
    for key, (value, line) in law.derived(res).items():   # e.g. the distillation law's effective break
        out[key] = value
        text += "\n" + line
    if law.compute_optimal:  # approach 3's compute-optimal exponents, beside approaches 1-2
        opt = parametric_exponents(res.params, res.samples, law.param_names, ci=a.ci)
        out["compute_optimal"] = opt.to_dict()
        text += "\n" + format_approach(opt)
    if a.out:
        atomic_write_json(Path(a.out), out)
    print(json.dumps(out, indent=2) if a.json else text)
    return 0


def _built_on(a, dep: str, table, say) -> dict[str, float]:
    """The fitted parameters of the law `dep` that the law being fitted needs (Law.needs): --DEP-params (a
    file or a published set), else `dep` fitted to the sweep's runs first."""
    given = getattr(a, f"{dep.replace('-', '_')}_params", None)
    if given:
        return supervised_params(given, flag=f"--{dep}-params")
    if is_sweep_results(table):
        say(f"{a.law}: fitting the {dep} law to the sweep's {dep} runs first (pass --{dep}-params to use another)")
        dep_law = get_law(dep)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fit(dep_law, _points(dep_law, table, say), progress=say, source=f"{a.data} ({dep} runs)").params
    raise ValueError(f"the {a.law} law needs the student's {dep} law: pass --{dep}-params FILE.json (from "
                     f"`suite fit --law {dep} --json`) or a published set "
                     f"({', '.join(n for n, p in PUBLISHED.items() if p.law == dep)})")


def _run_approach(a) -> int:
    if a.law is not None and not LAWS.get(a.law).compute_optimal:
        raise ValueError(f"--approach {a.approach} uses the supervised runs (N, D, loss); --law {a.law} does not apply")
    table = read_table(a.data)
    pts = points_for(get_law("supervised"), table)
    fn = envelope if a.approach == "envelope" else isoflop
    res = fn(pts, level_tolerance=a.level_tolerance, bootstrap=a.bootstrap, ci=a.ci, seed=a.seed)
    if a.out:
        atomic_write_json(Path(a.out), res.to_dict())
    print(json.dumps(res.to_dict(), indent=2) if a.json else format_approach(res))
    return 0


def format_approach(res: ApproachResult) -> str:
    name = {"envelope": "approach 1 (envelope)", "isoflop": "approach 2 (isoFLOP parabolas)",
            "parametric": "approach 3 (parametric law)"}[res.approach]
    ci = (lambda k: f"   {res.ci_level:.0%} CI [{res.ci[k][0]:.3f}, {res.ci[k][1]:.3f}]") if res.ci else (lambda k: "")
    lines = [f"compute-optimal allocation, {name}: N_opt = {res.k_N:.3g}·C^a, D_opt = {res.k_D:.3g}·C^b (C = 6ND)",
             f"  a = {res.a:.3f}{ci('a')}", f"  b = {res.b:.3f}{ci('b')}"]
    if res.levels is not None:
        lines.append(f"  {'level':>5} {'C':>10} {'runs':>4} {'N_opt':>10} {'D_opt':>10} {'loss':>7}  note")
        for r in res.levels.itertuples():
            if not r.used and r.runs < 3:   # stray runs: summarized in the warnings
                continue
            lines.append(f"  {r.level:>5} {r.C:>10.3g} {r.runs:>4} {r.N_opt:>10.3g} {r.D_opt:>10.3g} "
                         f"{r.loss_min:>7.4f}  {r.note if r.note else ('' if r.used else 'left out')}")
    for w in res.warnings:
        lines.append(f"  warning: {w}")
    return "\n".join(lines)


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


def add_parser(sub, helptext: str = "fit a scaling law or a compute-optimal approach") -> None:
    import argparse

    f = sub.add_parser(
        "fit", help=helptext,
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
                 "  suite fit --law supervised --data points.csv --fix gamma=1 --holdout 0.2\n"
                 "  suite fit --approach isoflop --data runs/scaling_lab --bootstrap 1000   # N_opt ∝ C^a, D_opt ∝ C^b")
    f.add_argument("--law", default=None, help=f"one of: {', '.join(LAWS.names())} (required by --approach parametric)")
    f.add_argument("--approach", choices=APPROACHES, default="parametric",
                   help="compute-optimal allocation by Hoffmann et al.'s approach 1 (envelope: the best run per "
                        "compute level), 2 (isoflop: a parabola in ln N per level) or 3 (parametric: fit --law; "
                        "chinchilla and supervised also print a and b). Default: parametric")
    f.add_argument("--level-tolerance", type=float, default=1.05, metavar="FACTOR",
                   help="envelope/isoflop: runs within this factor of a level's first compute share the level")
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
    f.add_argument("--all-kd", action="store_true",
                   help="distillation: fit every distilled run, not only eq. 8's setting (forward KL, T = 1, "
                        "kd_weight = 1, no top-k)")
    f.add_argument("--method", choices=["fast", "full"], default="fast",
                   help="fast: batched descent of every start, best refined (default); full: L-BFGS-B per start")
    f.add_argument("--out", metavar="FILE.json", help="also write the JSON result here")
    f.add_argument("--json", action="store_true", help="print the result as JSON")
    f.set_defaults(fn=run)
