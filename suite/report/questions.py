"""The seed paper's questions, answered on a sweep's own runs, each with a verdict.

    lines = headline_lines(df, fits, nums)     # called by report.build.headline

Busbridge et al. (2025) state three findings a distillation study should test (verdicts: holds / does not
hold / not identified, the last when the runs or the fits cannot decide):
  1. distillation beats supervised training only below a token budget, and that budget grows with the
     student's size;
  2. the capacity gap: at fixed student size and tokens, the student's loss is U-shaped in the teacher's
     loss (a stronger teacher is not always better);
  3. compute-optimal allocation: with the teacher free (amortized) distillation can beat supervised
     training at equal student compute; once the teacher's training is paid for, supervised training wins.
Each answer gives the measured evidence first and the fitted laws' reading second; a verdict that rests
on a fit with coefficients on a bound says so.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from ..laws import compute_optimal_distillation, kd_rows, optimal_teacher_loss, supervised_rows
from .analysis import Fitted, fit_of, supervised_params_of
from .tables import fmt_count


def _pairs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (N_S, D_S) with both a supervised run and distilled runs: seeds averaged, best teacher."""
    sup = supervised_rows(df).groupby(["N_S", "D_S"])["loss"].mean()
    kd = kd_rows(df)
    if kd.empty or sup.empty:
        return pd.DataFrame()
    best = kd.groupby(["N_S", "D_S", "L_T"])["loss"].mean().groupby(["N_S", "D_S"]).min()
    both = pd.concat({"supervised": sup, "kd": best}, axis=1).dropna().reset_index()
    both["gain"] = both["supervised"] - both["kd"]
    return both


def distillation_budget(df: pd.DataFrame, fits: dict[str, Fitted], nums: dict[str, Any]) -> str | None:
    pairs = _pairs(df)
    if pairs.empty:
        return None
    sigma = seed_noise(df)
    tie = 2 * sigma if sigma else 0.0   # a KD gain within two seed SDs is a tie, neither a win nor a loss
    by_n, measured = {}, []
    for n, g in pairs.groupby("N_S"):
        g = g.sort_values("D_S")
        wins = g[g["gain"] > tie]["D_S"].tolist()
        losses = g[g["gain"] < -tie]["D_S"].tolist()
        below = bool(wins) and all(w < min(losses) for w in wins) if losses else bool(wins)
        by_n[int(n)] = {"kd_wins_at": wins, "kd_loses_at": losses, "wins_only_below": below,
                        "last_win": max(wins) if wins else None, "first_loss": min(losses) if losses else None}
        measured.append(f"{fmt_count(n)}: KD ahead at {', '.join(map(fmt_count, wins)) or 'no budget'}"
                        + (f", behind at {', '.join(map(fmt_count, losses))}" if losses else ""))
    fitted = (nums.get("supervised_vs_distillation") or {}).get("by_N_S", {})
    # no crossover in range: supervised ahead from the start (crossover below it: 0) or KD ahead throughout (inf)
    cross = {n: (v["tokens"] if v.get("tokens") else
                 0.0 if str(v.get("verdict", "")).startswith("supervised") else float("inf"))
             for n, v in fitted.items()}
    dist = fit_of(fits, "distillation")
    bound = list(dist.result.at_bound) if dist is not None else []
    sizes = sorted(cross)
    finite = [n for n in sizes if 0 < cross[n] < float("inf")]
    grows = (all(cross[a] <= cross[b] for a, b in zip(sizes, sizes[1:]))
             and all(cross[a] < cross[b] for a, b in zip(finite, finite[1:])))
    any_win = any(v["kd_wins_at"] for v in by_n.values())
    shape_ok = all(v["wins_only_below"] or not v["kd_wins_at"] for v in by_n.values())
    if not any_win:
        verdict = "not identified"
        why = ("distillation is not ahead of supervised training (beyond seed noise) at any measured student size "
               "and budget, so where it stops winning is not measured")
    elif dist is None or len(finite) < 2:
        verdict = "not identified"
        why = "the fitted laws put a crossover within reach (above 0, below 1e12 tokens) for fewer than two sizes"
    elif grows and shape_ok:
        verdict = "holds"
        why = ("where KD wins it wins at the small budgets, and the fitted crossover budget grows with size: "
               + ", ".join(f"{fmt_count(n)} → {cross[n]:.3g} tokens" for n in sizes))
    elif not shape_ok:
        verdict = "does not hold"
        why = "in the measured runs KD also wins above a budget at which it loses"
    else:
        verdict = "does not hold"
        why = ("the fitted crossover budgets do not grow with size: "
               + ", ".join(f"{fmt_count(n)} → {cross[n]:.3g} tokens" for n in sizes))
    if bound and verdict == "holds":
        verdict = "holds (fit caveat)"
        why += f"; the distillation fit has {', '.join(bound)} on a bound"
    nums["question.distillation_budget"] = {"verdict": verdict, "measured": by_n, "tie_tolerance": tie,
                                           "fitted_crossover": {k: (None if v == float("inf") else v)
                                                                for k, v in cross.items()},
                                           "source": "results (supervised vs best KD at equal N_S, D_S) and the "
                                                     "fitted laws"}
    return (f"Q1. Distillation beats supervised training only below a budget that grows with student size: "
            f"verdict: {verdict}. Measured: {'; '.join(measured)}. {why[0].upper() + why[1:]}.")


def capacity_gap(df: pd.DataFrame, fits: dict[str, Fitted], nums: dict[str, Any]) -> str | None:
    kd = kd_rows(df)
    if kd.empty:
        return None
    dist = fit_of(fits, "distillation")
    groups, both_sides, interior = {}, [], []
    for (n, d), g in kd.groupby(["N_S", "D_S"]):
        g = g.groupby("L_T")["loss"].mean().sort_index()
        if len(g) < 3:
            continue
        best_lt = float(g.idxmin())
        rec: dict[str, Any] = {"teachers": len(g), "measured_best_L_T": best_lt,
                               "measured_interior": bool(g.index[0] < best_lt < g.index[-1])}
        if dist is not None:
            r = optimal_teacher_loss(supervised_params_of(dist), dist.result.params, n, d,
                                     L_T_range=(float(kd["L_T"].min()) * 0.8, float(kd["L_T"].max()) * 1.3))
            rec["fitted_L_T_opt"] = r["L_T"]
            rec["points_both_sides"] = bool((g.index < r["L_T"]).any() and (g.index > r["L_T"]).any())
            if rec["points_both_sides"]:
                both_sides.append(f"{fmt_count(n)}/{fmt_count(d)} (fitted best L_T = {r['L_T']:.3f})")
        if rec["measured_interior"]:
            interior.append(f"{fmt_count(n)}/{fmt_count(d)} (best measured teacher L_T = {best_lt:.3f})")
        groups[f"{int(n)}/{int(d)}"] = rec
    if not groups:
        return None
    if interior and both_sides:
        verdict = "holds"
    elif not interior and not both_sides:
        verdict = "does not hold"
    else:
        verdict = "not identified"
    if dist is not None and dist.result.at_bound and verdict == "holds":
        verdict = "holds (fit caveat)"
    nums["question.capacity_gap"] = {"verdict": verdict, "students": groups,
                                     "source": "results (KD rows, seeds averaged) and the fitted distillation law"}
    return (f"Q2. The capacity gap (student loss U-shaped in teacher loss): verdict: {verdict}. "
            f"Students whose best measured teacher is neither the strongest nor the weakest: "
            f"{', '.join(interior) or 'none'}. "
            f"Students with measured teachers on both sides of the fitted optimum: {', '.join(both_sides) or 'none'}.")


def allocation(df: pd.DataFrame, fits: dict[str, Fitted], nums: dict[str, Any]) -> str | None:
    dist = fit_of(fits, "distillation")
    kd = kd_rows(df)
    if dist is None or kd.empty:
        return None
    sup = supervised_params_of(dist)
    # tiny models: training costs 6ND (forward 2N per token), sizes from 1k parameters
    flops, bounds = (lambda n: 2.0 * n), (1e3, 1e12)
    n_s = float(kd["N_S"].max())
    c = float(6 * n_s * kd["D_S"].max())
    out: dict[str, Any] = {}
    for scen in ("amortized", "pretraining+inference"):
        try:
            r = compute_optimal_distillation(sup, dist.result.params, n_s, c, scen, flops=flops, bounds=bounds)
        except (RuntimeError, ValueError) as e:
            out[scen] = {"error": str(e)}
            continue
        out[scen] = {"gain": r["distillation_gain"], "L_S": r["L_S"], "L_supervised": r["supervised"]["L"],
                     "N_T": r["N_T"], "D_T": r["D_T"], "D_S": r["D_S"], "at_bound": r["at_bound"]}
    free, paid = out.get("amortized", {}), out.get("pretraining+inference", {})
    if "gain" not in free or "gain" not in paid:
        verdict = "not identified"
    elif free["gain"] > 0 and paid["gain"] <= 0:
        verdict = "holds"
    else:
        verdict = "does not hold"
    if dist.result.at_bound and verdict != "not identified":
        verdict += " (fit caveat)"
    nums["question.allocation"] = {"verdict": verdict, "N_S": n_s, "C": c, "scenarios": out,
                                   "source": "fitted laws; compute_optimal_distillation with 2N FLOPs per token"}

    def say(name, r):
        if "gain" not in r:
            return f"{name}: no allocation ({r.get('error', '')})"
        return (f"{name}: best KD student {r['L_S']:.4f} vs supervised {r['L_supervised']:.4f} "
                f"({r['gain']:+.4f} nats; teacher N_T = {fmt_count(r['N_T'])}, D_T = {fmt_count(r['D_T'])})")

    return (f"Q3. Compute-optimal allocation for a {fmt_count(n_s)} student at C = {c:.3g} FLOPs (Busbridge §5): "
            f"distillation wins with the teacher free and loses once its training is paid: verdict: {verdict}. "
            f"{say('Teacher free (amortized)', free)}; {say('teacher paid (pretraining+inference)', paid)}.")


def seed_noise(df: pd.DataFrame) -> float | None:
    """Pooled standard deviation of the loss across seeds of the same cell (supervised runs), or None."""
    sup = supervised_rows(df)
    g = sup.groupby(["N_S", "D_S"])["loss"]
    var = g.var(ddof=1).dropna()
    if var.empty:
        return None
    dof = (g.count()[var.index] - 1)
    return float((var * dof).sum() / dof.sum()) ** 0.5


def size_order(df: pd.DataFrame, fits: dict[str, Fitted], nums: dict[str, Any]) -> str | None:
    """Is a larger model ever worse than a smaller one at the same tokens (supervised, seeds averaged)?"""
    sup = supervised_rows(df)
    sup = sup[sup["D_S"] > 0].groupby(["D_S", "N_S"])["loss"].mean().reset_index()   # untrained baselines: no order
    sigma = seed_noise(df)
    tol = 2 * sigma if sigma else 0.0
    budgets, worse = 0, []
    for d, g in sup.groupby("D_S"):
        if len(g) < 2:
            continue
        budgets += 1
        g = g.sort_values("N_S")
        best_smaller = g["loss"].cummin().shift(1)
        for r, b in zip(g.itertuples(), best_smaller):
            if pd.notna(b) and r.loss > b + tol:
                worse.append(f"{fmt_count(r.N_S)} at {fmt_count(d)} tokens ({r.loss:.4f} vs {b:.4f} for a smaller model)")
    if not budgets:
        return None
    nums["check.size_order"] = {"budgets": budgets, "violations": worse, "seed_sd": sigma, "tolerance": tol,
                                "source": "results: supervised runs at equal D_S, seeds averaged"}
    noise = (f"the seed-to-seed standard deviation is {sigma:.4f} nats, so differences under {tol:.4f} are noise"
             if sigma else "no seeds were repeated, so any increase counts")
    if not worse:
        return (f"Size order: at each of the {budgets} budgets run with several sizes, no model is worse than a "
                f"smaller one at the same tokens ({noise}).")
    return (f"Size order: larger models worse than a smaller one at the same tokens: {'; '.join(worse)} ({noise}). "
            f"A larger model with the same tokens takes fewer effective updates per parameter; see the "
            f"learning-rate rule and warmup in the sweep's header.")


def headline_lines(df: pd.DataFrame, fits: dict[str, Fitted], nums: dict[str, Any]) -> list[str]:
    """The size-order check, and the three verdicts for sweeps with distilled students."""
    out = [size_order(df, fits, nums)]
    if not kd_rows(df).empty:
        out += [q(df, fits, nums) for q in (distillation_budget, capacity_gap, allocation)]
    return [s for s in out if s]

