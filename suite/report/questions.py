"""The seed paper's questions, answered on a sweep's own runs, each with a verdict.

    lines = headline_lines(df, fits, nums)     # called by report.build.headline

Busbridge et al. (2025) state three findings a distillation study should test (verdicts: holds / does not
hold / not identified, the last when the runs or the fits cannot decide):
  1. distillation beats supervised training only below a token budget, and that budget grows with the
     student's size; asked as the paper asks it, with the teacher chosen for the budget (the best measured
     teacher at each size and budget; by the fitted laws, the teacher loss that minimizes the student's loss),
     beside the same question with one fixed teacher, the strongest, for every size and budget;
  2. the capacity gap: at fixed student size and tokens, the student's loss is U-shaped in the teacher's
     loss (a stronger teacher is not always better);
  3. compute-optimal allocation: with the teacher free (amortized) distillation can beat supervised
     training at equal student compute; once the teacher's training is paid for, supervised training wins.
Each answer gives the measured evidence first and the fitted laws' reading second.

Honesty rules. A measured KD-vs-supervised pair is a win or a loss only when its test is significant after
Holm's adjustment across the pairs tested: a t-test over seeds where both arms ran several (paired by seed
where they ran the same seeds, Welch otherwise); where an arm has one seed, a t-test whose noise is the seed SD
of the supervised runs at that same budget D_S, pooled over the sizes that repeated seeds there (never across
budgets: noise falls with tokens); with no repeated seeds at that budget the pair is untested. The headline's
count of significant wins reads the same tests. (`suite compare` and the comparison table use each arm's own
seeds only, so a one-seed arm is tested there against the other arm's seeds alone, with fewer degrees of
freedom.) A verdict drawn
from a fit with a flagged coefficient (report.flags.fit_caveats) carries "(fit caveat)" and names them; a
teacher search or an allocation that ended on its search bound is said to have done so.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.stats import t as student_t

from ..laws import (compute_optimal_distillation, exact_irreducible, get_law, kd_rows, optimal_teacher_loss,
                    supervised_rows)
from ..stats import ALPHA, difference, holm
from .analysis import Fitted, fit_of, supervised_params_of
from .registries import HEADLINES, Headline
from .flags import fit_caveats
from .tables import capacity_gap as capacity_gap_table
from .tables import fmt_count

SEED_COLUMNS = ("seed", "config.train.seed")   # the column that names a run's seed, first found
MAX_TOKENS = 1e12       # the fitted crossovers are looked for up to this many student tokens
CROSSOVER_GRID = 400    # budgets scanned (log-spaced) before a crossover is polished


def _num(x: Any) -> Any:
    """A number as nums states it: int when integral, float otherwise, None when not finite."""
    if x is None:
        return None
    x = float(x)
    if not math.isfinite(x):
        return None
    return int(x) if x.is_integer() and abs(x) < 2 ** 53 else x


def _tokens(d: float) -> str:
    return fmt_count(d)


def _seed_column(df: pd.DataFrame) -> str | None:
    return next((c for c in SEED_COLUMNS if c in df and df[c].notna().any()), None)


def _by_seed(rows: pd.DataFrame, col: str | None) -> pd.Series:
    """Finite losses of one arm, one per seed (a seed run twice is averaged); without a seed column, one per run."""
    rows = rows[np.isfinite(rows["loss"].to_numpy(dtype=float))]
    if col is None or rows[col].isna().any():
        return rows["loss"].reset_index(drop=True).astype(float)
    return rows.groupby(col)["loss"].mean().astype(float).sort_index()


def budget_seed_sd(df: pd.DataFrame) -> dict[int | float, dict[str, Any]]:
    """{D_S: {"sd", "dof", "cells"}}: the seed-to-seed SD of supervised runs at each budget, pooled over the student
    sizes that ran several seeds at that budget (never across budgets: noise falls with tokens)."""
    sup = supervised_rows(df)
    col = _seed_column(df)
    out: dict[int | float, dict[str, Any]] = {}
    for d, g in sup.groupby("D_S"):
        ss, dof, cells = 0.0, 0, 0
        for _, h in g.groupby("N_S"):
            x = _by_seed(h, col)
            if len(x) >= 2:
                ss += float(x.var(ddof=1)) * (len(x) - 1)
                dof += len(x) - 1
                cells += 1
        if dof:
            out[_num(d)] = {"sd": (ss / dof) ** 0.5, "dof": dof, "cells": cells}
    return out


def kd_vs_supervised(df: pd.DataFrame, teacher: str = "best") -> list[dict[str, Any]]:
    """One comparison per (N_S, D_S) with a supervised run and a distilled one: KD from the best measured teacher
    there (`teacher="best"`, seeds averaged) or from the strongest teacher of the sweep (`"strongest"`, pairs
    without it left out). `diff` is supervised - KD (positive: KD ahead); `outcome` is win / loss / tie /
    untested by the rule named in `rule` (see the module docstring), with n, CI, p and Holm-adjusted p."""
    sup, kd = supervised_rows(df), kd_rows(df)
    if sup.empty or kd.empty:
        return []
    col = _seed_column(df)
    sds = budget_seed_sd(df)
    strongest = float(kd["L_T"].min())
    out: list[dict[str, Any]] = []
    for (n, d), k in kd.groupby(["N_S", "D_S"]):
        s = sup[(sup["N_S"] == n) & (sup["D_S"] == d)]
        means = k.groupby("L_T")["loss"].mean().dropna()
        if s.empty or means.empty:
            continue
        if teacher == "best":
            lt = float(means.idxmin())
        elif teacher == "strongest":
            if strongest not in means.index:
                continue
            lt = strongest
        else:
            raise ValueError(f"teacher must be 'best' or 'strongest', got {teacher!r}")
        a, b = _by_seed(s, col), _by_seed(k[k["L_T"] == lt], col)
        if a.empty or b.empty:
            continue
        rec: dict[str, Any] = {"N_S": _num(n), "D_S": _num(d), "teacher_L_T": lt, "n_supervised": len(a),
                               "n_kd": len(b), "supervised": float(a.mean()), "kd": float(b.mean()),
                               "diff": float(a.mean() - b.mean()), "ci": None, "test": None, "p": None,
                               "p_adjusted": None, "seed_sd_at_budget": None}
        sd = sds.get(_num(d))
        if len(a) >= 2 and len(b) >= 2:   # a t-test over seeds: paired or Welch
            paired = col is not None and len(a) == len(b) and list(a.index) == list(b.index)
            r = difference(a.to_numpy(), b.to_numpy(), paired=paired)
            rec.update(diff=r.diff, ci=[r.ci_low, r.ci_high], test=r.test, p=r.p,
                       rule=f"{'paired' if r.test == 'paired' else 'Welch'} t-test over seeds")
        elif sd is not None:   # an arm with one seed: the budget's supervised seed SD (pooled over sizes) is the noise
            se = sd["sd"] * math.sqrt(1 / len(a) + 1 / len(b))
            t = rec["diff"] / se if se > 0 else math.inf
            h = float(student_t.ppf(0.975, sd["dof"])) * se
            rec.update(ci=[rec["diff"] - h, rec["diff"] + h], test="budget_sd", seed_sd_at_budget=sd["sd"],
                       p=float(2 * student_t.sf(abs(t), sd["dof"])),
                       rule=f"an arm has one seed: t-test with the seed SD of supervised runs at this budget "
                            f"({sd['dof']} degrees of freedom)")
        else:
            rec.update(rule="untested: one seed a side and no repeated seeds at this budget", outcome="untested")
        out.append(rec)
    tested = [i for i, r in enumerate(out) if r["p"] is not None]
    adj = holm([out[i]["p"] for i in tested])
    for i, p in zip(tested, adj):
        r = out[i]
        r["p_adjusted"] = float(p)
        r["outcome"] = ("win" if r["diff"] > 0 else "loss") if p < ALPHA else "tie"
        r["rule"] += f", Holm-adjusted across the {len(tested)} pairs tested"
    return out


def _measured(pairs: list[dict[str, Any]]) -> tuple[dict[int, dict[str, Any]], list[str]]:
    """Per student size: the budgets where KD wins, loses, ties and could not be tested; and a phrase for each."""
    by_n: dict[int, dict[str, Any]] = {}
    words = []
    for n in sorted({p["N_S"] for p in pairs}):
        g = sorted((p for p in pairs if p["N_S"] == n), key=lambda p: p["D_S"])
        at = {o: [p["D_S"] for p in g if p["outcome"] == o] for o in ("win", "loss", "tie", "untested")}
        wins, losses = at["win"], at["loss"]
        below = (bool(wins) and all(w < min(losses) for w in wins)) if losses else bool(wins)
        by_n[n] = {"kd_wins_at": wins, "kd_loses_at": losses, "ties_at": at["tie"], "untested_at": at["untested"],
                   "wins_only_below": below, "last_win": max(wins) if wins else None,
                   "first_loss": min(losses) if losses else None}
        parts = [f"{w} at {', '.join(map(_tokens, at[o]))}" for o, w in
                 (("win", "KD ahead"), ("loss", "behind"), ("tie", "tied"), ("untested", "untested")) if at[o]]
        words.append(f"{fmt_count(n)}: " + ", ".join(parts))
    return by_n, words


def _tie_rule_text(pairs: list[dict[str, Any]]) -> str:
    tested = [p for p in pairs if p["p"] is not None]
    untested = sorted({p["D_S"] for p in pairs if p["outcome"] == "untested"})
    names = {"paired": "paired by seed", "welch": "Welch",
             "budget_sd": "an arm with one seed, against the budget's supervised seed SD"}
    parts = []
    if tested:
        tests = sorted({p["test"] for p in tested})
        sds = sorted({(p["D_S"], p["seed_sd_at_budget"]) for p in tested if p["seed_sd_at_budget"] is not None})
        parts.append(f"the {len(tested)} pair(s) are t-tested ({'; '.join(names[t] for t in tests)}"
                     + (": seed SD " + ", ".join(f"{_tokens(d)} {v:.4f}" for d, v in sds) if sds else "")
                     + f") and Holm-adjusted across them (p < {ALPHA:g})")
    if untested:
        parts.append(f"pairs at {', '.join(map(_tokens, untested))} tokens are untested (no repeated seeds at that "
                     f"budget, so its seed noise is unknown)")
    return "A win or loss must be significant beyond seed noise: " + "; ".join(parts)


def _teacher_floor(df: pd.DataFrame, dist: Fitted) -> tuple[float, str]:
    """No teacher is better than the data's irreducible loss: the exact E when the runs carry it, else the E
    of the supervised law the distillation fit was fitted on."""
    e = exact_irreducible(df)
    return (e, "exact") if e is not None else (float(supervised_params_of(dist)["E"]), "the supervised fit's")


def fitted_crossovers(df: pd.DataFrame, dist: Fitted, teacher: str = "chosen") -> dict[int, dict[str, Any]]:
    """Per student size, the smallest budget (from the smallest D_S run up to MAX_TOKENS) at which the fitted
    supervised law catches up with the fitted distillation law. `teacher="chosen"`: at each budget the teacher
    loss that minimizes the student's predicted loss, searched from E up (Busbridge et al.'s question);
    `"strongest"`: the strongest teacher run, the same for every size and budget. `tokens` is None where
    there is no crossover in range (`verdict` says which side is ahead throughout)."""
    kd = kd_rows(df)
    sup_params = supervised_params_of(dist)
    sup_law, law, params = get_law("supervised"), dist.law, dist.result.params
    floor, _ = _teacher_floor(df, dist)
    fixed_lt = float(kd["L_T"].min())
    d = np.geomspace(float(kd["D_S"].min()), MAX_TOKENS, CROSSOVER_GRID)
    t = np.linspace(0.0, 1.0, 201)[None, :]

    def gap_grid(n: float) -> np.ndarray:
        s = sup_law.predict(sup_params, N=np.full_like(d, n), D=d)
        if teacher == "strongest":
            return s - law.predict(params, N_S=np.full_like(d, n), D_S=d, L_T=np.full_like(d, fixed_lt))
        lt = floor + t * (2 * s[:, None] - floor)       # optimal_teacher_loss's default range, from E up
        ls = law.predict(params, N_S=np.full_like(lt, n), D_S=np.broadcast_to(d[:, None], lt.shape), L_T=lt)
        return s - ls.min(axis=1)

    def exact(n: float, x: float) -> dict[str, Any]:
        if teacher == "strongest":
            s = float(sup_law.predict(sup_params, N=n, D=x))
            ls = float(law.predict(params, N_S=n, D_S=x, L_T=fixed_lt))
            return {"gain": s - ls, "L_T": fixed_lt, "at_search_bound": False}
        return optimal_teacher_loss(sup_params, params, n, x, L_T_range=(floor, None))

    out: dict[int, dict[str, Any]] = {}
    for n in sorted(kd["N_S"].unique()):
        gap = gap_grid(float(n))
        first, last = exact(float(n), d[0]), exact(float(n), d[-1])
        rec: dict[str, Any] = {"teacher": teacher, "gain_at_smallest": first["gain"], "gain_at_max": last["gain"],
                               "L_T_at_max": last["L_T"], "at_search_bound_at_max": bool(last["at_search_bound"])}
        if first["gain"] <= 0:
            rec.update(verdict="supervised ahead from the smallest budget", tokens=None)
        else:
            cross = np.flatnonzero((gap[:-1] > 0) & (gap[1:] <= 0))
            if cross.size:
                lo, hi = np.log(d[cross[0]]), np.log(d[cross[0] + 1])
                f = lambda x, n=n: exact(float(n), float(np.exp(x)))["gain"]   # noqa: E731
                x = brentq(f, lo, hi, xtol=1e-10) if f(lo) > 0 >= f(hi) else hi
                at = exact(float(n), float(np.exp(x)))
                rec.update(verdict="supervised catches up", tokens=float(np.exp(x)), L_T_at_crossover=at["L_T"],
                           at_search_bound_at_crossover=bool(at["at_search_bound"]))
            else:
                rec.update(verdict="distillation ahead throughout", tokens=None)
        out[int(n)] = rec
    return out


def _cross_value(v: dict[str, Any]) -> float:
    """A crossover as a number: tokens, 0 when supervised is ahead from the start, inf when never."""
    if v.get("tokens"):
        return float(v["tokens"])
    return 0.0 if str(v.get("verdict", "")).startswith("supervised") else float("inf")


def _cross_text(n: int, v: dict[str, Any], teacher: str) -> str:
    c = _cross_value(v)
    if c == 0:
        return f"{fmt_count(n)} → supervised ahead from the smallest budget"
    if c == float("inf"):
        s = (f"{fmt_count(n)} → KD ahead up to {MAX_TOKENS:.0e} tokens (gain there {v['gain_at_max']:+.4f}"
             .replace("e+", "e"))
        if teacher == "chosen":
            s += f", teacher L_T = {v['L_T_at_max']:.4f}" + (" = E, on the search bound" if
                                                           v["at_search_bound_at_max"] else "")
        return s + ")"
    s = f"{fmt_count(n)} → {c:.3g} tokens"
    if teacher == "chosen":
        s += f" (teacher L_T = {v['L_T_at_crossover']:.4f}" + (" = E, on the search bound" if
                                                             v["at_search_bound_at_crossover"] else "") + ")"
    return s


def _budget_verdict(by_n: dict[int, dict[str, Any]], pairs: list[dict[str, Any]],
                    cross: dict[int, dict[str, Any]] | None) -> tuple[str, str, bool]:
    """(verdict, why, drawn from the fit) for one variant of Q1."""
    cv = {n: _cross_value(v) for n, v in (cross or {}).items()}
    sizes = sorted(cv)
    finite = [n for n in sizes if 0 < cv[n] < float("inf")]
    grows = (all(cv[a] <= cv[b] for a, b in zip(sizes, sizes[1:]))
             and all(cv[a] < cv[b] for a, b in zip(finite, finite[1:])))
    listed = ", ".join(f"{fmt_count(n)} → {cv[n]:.3g} tokens" for n in sizes)
    if all(p["outcome"] == "untested" for p in pairs):
        return ("not identified", "no measured pair could be tested: no budget with a distilled student has repeated "
                "seeds, so seed noise is unknown there", False)
    if not any(v["kd_wins_at"] for v in by_n.values()):
        return ("not identified", "distillation is not ahead of supervised training beyond seed noise at any "
                "measured student size and budget, so where it stops winning is not measured", False)
    bad = [f"{fmt_count(n)} (ahead at {', '.join(map(_tokens, v['kd_wins_at']))}, behind at "
           f"{', '.join(map(_tokens, v['kd_loses_at']))})" for n, v in by_n.items()
           if v["kd_wins_at"] and not v["wins_only_below"]]
    if bad:
        return ("does not hold", "in the measured runs KD also wins above a budget at which it loses: "
                + "; ".join(bad), False)
    if cross is None:
        return "not identified", "there is no distillation fit to place the crossover budgets", False
    if len(finite) < 2:
        return ("not identified", "the fitted laws put a crossover within reach (above the smallest budget run, "
                f"below {MAX_TOKENS:.0e} tokens) for fewer than two sizes".replace("e+", "e"), True)
    if grows:
        return ("holds", "where KD wins it wins at the small budgets, and the fitted crossover budget grows with "
                "size: " + listed, True)
    return "does not hold", "the fitted crossover budgets do not grow with size: " + listed, True


def _caveat_sentence(dist: Fitted, cav: dict[str, str]) -> str:
    """'Fit caveat: the distillation fit 'd' has c1 on its search bound; A, B with bootstrap intervals ...' (the
    full reasons are in nums' fit_caveats)."""
    kinds: dict[str, list[str]] = {}
    for k, why in cav.items():
        kind = ("on its search bound" if "bound" in why else
                "with a bootstrap interval wider than a decade" if "decade" in why else
                "with a bootstrap interval crossing zero" if "zero" in why else
                "with no converged start" if k == "search" else why)
        kinds.setdefault(kind, []).append(k)
    said = [f"{', '.join(ks)} {kind}" for kind, ks in kinds.items() if ks != ["search"]]
    said += ["no start of its search converged"] if "search" in cav else []
    return f"Fit caveat: the distillation fit '{dist.name}' has " + "; ".join(said)


def distillation_budget(df: pd.DataFrame, fits: dict[str, Fitted], nums: dict[str, Any]) -> str | None:
    """Q1, with the teacher chosen for each budget (the headline verdict) beside one fixed strongest teacher.
    Reads nothing from nums: the fitted crossovers are computed here."""
    dist = fit_of(fits, "distillation")
    cav = fit_caveats(dist) if dist is not None else {}
    variants: dict[str, Any] = {}
    texts: dict[str, tuple[str, list[str], str, str]] = {}
    for key, pick, fit_pick in (("chosen_teacher", "best", "chosen"), ("fixed_strongest_teacher", "strongest",
                                                                        "strongest")):
        pairs = kd_vs_supervised(df, pick)
        if not pairs:
            continue
        by_n, words = _measured(pairs)
        cross = fitted_crossovers(df, dist, fit_pick) if dist is not None else None
        verdict, why, from_fit = _budget_verdict(by_n, pairs, cross)
        if from_fit and cav:
            verdict += " (fit caveat)"
        variants[key] = {"verdict": verdict, "why": why, "drawn_from_fit": from_fit, "measured": by_n,
                         "pairs": pairs, "fitted": cross,
                         "fitted_crossover": ({n: (None if _cross_value(v) == float("inf") else _cross_value(v))
                                               for n, v in cross.items()} if cross is not None else None)}
        texts[key] = (verdict, words, why, "" if cross is None else
                      "; ".join(_cross_text(n, v, fit_pick) for n, v in cross.items()))
    if "chosen_teacher" not in variants:
        return None
    head = variants["chosen_teacher"]
    kd = kd_rows(df)
    strongest = float(kd["L_T"].min())
    floor = _teacher_floor(df, dist) if dist is not None else None
    nums["question.distillation_budget"] = {
        "verdict": head["verdict"], "question": "teacher chosen for each budget (Busbridge et al.)",
        "measured": head["measured"], "pairs": head["pairs"], "fitted_crossover": head["fitted_crossover"],
        "variants": variants, "strongest_teacher_L_T": strongest,
        "seed_sd_by_budget": budget_seed_sd(df), "tie_rule": _tie_rule_text(head["pairs"]),
        "teacher_search_floor": None if floor is None else {"E": floor[0], "source": floor[1]},
        "fit": dist.name if dist is not None else None, "fit_caveats": cav,
        "source": "results (supervised vs KD at equal N_S, D_S, by seed) and the fitted laws (crossovers up to "
                  f"{MAX_TOKENS:.0e} student tokens)"}
    v, words, why, fitted = texts["chosen_teacher"]
    s = (f"Q1. Distillation beats supervised training only below a budget that grows with student size, with the "
         f"teacher chosen for each budget as Busbridge et al. ask it: verdict: {v}. Measured, best measured teacher "
         f"at each size and budget: {'; '.join(words)}. {why[0].upper() + why[1:]}.")
    if fitted:
        s += (f" Fitted, the teacher loss that minimizes the student's predicted loss at each budget (searched from "
              f"E = {floor[0]:.4f}, {floor[1]}): {fitted}.")
    if "fixed_strongest_teacher" in texts:
        v2, words2, why2, fitted2 = texts["fixed_strongest_teacher"]
        same = [(p["N_S"], p["D_S"], p["teacher_L_T"], p["outcome"]) for p in head["pairs"]] == \
            [(p["N_S"], p["D_S"], p["teacher_L_T"], p["outcome"]) for p in variants["fixed_strongest_teacher"]["pairs"]]
        measured2 = ("the same pairs (the strongest teacher is the best measured one at every size and budget)"
                     if same else "; ".join(words2))
        s += (f" With one fixed teacher for every size and budget, the strongest (L_T = {strongest:.3f}): verdict: "
              f"{v2}; measured: {measured2}; {why2}")
        s += f"; fitted crossovers: {fitted2}." if fitted2 and "→" not in why2 else "."
    s += f" {_tie_rule_text(head['pairs'])}."
    if dist is not None and cav:
        s += f" {_caveat_sentence(dist, cav)}."
    return s


def capacity_gap(df: pd.DataFrame, fits: dict[str, Fitted], nums: dict[str, Any]) -> str | None:
    kd = kd_rows(df)
    if kd.empty:
        return None
    dist = fit_of(fits, "distillation")
    cav = fit_caveats(dist) if dist is not None else {}
    table = capacity_gap_table(df, fits) if dist is not None else None
    opt = {} if table is None else {(r["N_S"], r["D_S"]): r for r in table[1].to_dict(orient="records")}
    groups, both_sides, interior, on_bound = {}, [], [], []
    for (n, d), g in kd.groupby(["N_S", "D_S"]):
        g = g.groupby("L_T")["loss"].mean().sort_index()
        if len(g) < 3:
            continue
        best_lt = float(g.idxmin())
        rec: dict[str, Any] = {"teachers": len(g), "measured_best_L_T": best_lt,
                               "measured_interior": bool(g.index[0] < best_lt < g.index[-1])}
        r = opt.get((int(n), int(d)))
        if r is not None:
            rec.update(fitted_L_T_opt=float(r["L_T_opt"]), at_search_bound=bool(r["at_search_bound"]),
                       search_bound=r["search_bound"] or None, search_range=[r["search_low"], r["search_high"]])
            rec["points_both_sides"] = bool((g.index < r["L_T_opt"]).any() and (g.index > r["L_T_opt"]).any())
            if rec["points_both_sides"]:
                both_sides.append(f"{fmt_count(n)}/{fmt_count(d)} (fitted best L_T = {r['L_T_opt']:.3f})")
            if rec["at_search_bound"]:
                on_bound.append(f"{fmt_count(n)}/{fmt_count(d)}")
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
    if cav and dist is not None:   # the fitted optimum takes part in every verdict when there is a fit
        verdict += " (fit caveat)"
    search = None
    if table is not None:
        raw = table[1]
        search = {"low": float(raw["search_low"].iloc[0]), "high": float(raw["search_high"].iloc[0]),
                  "E": float(raw["E"].iloc[0]), "E_source": str(raw["E_source"].iloc[0])}
    nums["question.capacity_gap"] = {"verdict": verdict, "students": groups, "teacher_search": search,
                                     "fit": dist.name if dist is not None else None, "fit_caveats": cav,
                                     "source": "results (KD rows, seeds averaged) and the fitted distillation law "
                                               "(tables/capacity_gap.csv)"}
    s = (f"Q2. The capacity gap (student loss U-shaped in teacher loss): verdict: {verdict}. "
         f"Students whose best measured teacher is neither the strongest nor the weakest: "
         f"{', '.join(interior) or 'none'}. "
         f"Students with measured teachers on both sides of the fitted optimum: {', '.join(both_sides) or 'none'}.")
    if search is not None:
        s += f" The fitted optimum is searched over L_T in [{search['low']:.4f}, {search['high']:.4f}]"
        which = "the exact E" if search["E_source"].startswith("exact") else "the supervised fit's E"
        s += (f" (from {which}: no teacher is better than the data's irreducible loss)"
              if search["low"] == search["E"] else "")
        s += (f"; it lies on the search bound, not at a bottom of the U, for {', '.join(on_bound)}."
              if on_bound else ".")
    if cav and dist is not None:
        s += f" {_caveat_sentence(dist, cav)}."
    return s


def _bound_name(v: float) -> str:
    return f"{v:.0e}".replace("e+0", "e").replace("e+", "e")


def _count(v: float) -> str:
    """fmt_count up to billions, then powers of ten (1e12, not 1e+03B)."""
    return fmt_count(v) if v < 1e12 else f"{v:.3g}".replace("e+", "e")


def allocation(df: pd.DataFrame, fits: dict[str, Fitted], nums: dict[str, Any]) -> str | None:
    dist = fit_of(fits, "distillation")
    kd = kd_rows(df)
    if dist is None or kd.empty:
        return None
    sup = supervised_params_of(dist)
    cav = fit_caveats(dist)
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
        at = {k: float(r[k]) for k in r["at_bound"]}
        out[scen] = {"gain": r["distillation_gain"], "L_S": r["L_S"], "L_supervised": r["supervised"]["L"],
                     "N_T": r["N_T"], "D_T": r["D_T"], "D_S": r["D_S"], "at_bound": list(r["at_bound"]),
                     "at_bound_values": at, "bounds": list(bounds)}
    free, paid = out.get("amortized", {}), out.get("pretraining+inference", {})
    if "gain" not in free or "gain" not in paid:
        verdict = "not identified"
    elif free["gain"] > 0 and paid["gain"] <= 0:
        verdict = "holds"
    else:
        verdict = "does not hold"
    on_bound = any(r.get("at_bound") for r in out.values())
    if cav:
        verdict += " (fit caveat)"
    if on_bound and not verdict.startswith("not identified"):
        verdict += " (search-bound caveat)"
    nums["question.allocation"] = {"verdict": verdict, "N_S": n_s, "C": c, "scenarios": out, "bounds": list(bounds),
                                   "at_bound": on_bound, "fit": dist.name, "fit_caveats": cav,
                                   "source": "fitted laws; compute_optimal_distillation with 2N FLOPs per token, "
                                             f"N_T, D_T, D_S searched in [{bounds[0]:.0e}, {bounds[1]:.0e}]"}

    def say(name, r):
        if "gain" not in r:
            return f"{name}: no allocation ({r.get('error', '')})"
        s = (f"{name}: best KD student {r['L_S']:.4f} vs supervised {r['L_supervised']:.4f} "
             f"({r['gain']:+.4f} nats; teacher N_T = {_count(r['N_T'])}, D_T = {_count(r['D_T'])})")
        who = {"N_T": "teacher", "D_T": "teacher", "D_S": "student"}
        for role in ("teacher", "student"):
            names = [k for k in r["at_bound"] if who[k] == role]
            if names:
                s += (f", {role} at the search bound "
                      + ", ".join(f"{k} = {_bound_name(r['at_bound_values'][k])}" for k in names))
        if r["at_bound"]:
            s += " (the optimum lies at or beyond it: the gain is what the bound allows)"
        return s

    s = (f"Q3. Compute-optimal allocation for a {fmt_count(n_s)} student at C = {c:.3g} FLOPs (Busbridge §5): "
         f"distillation wins with the teacher free and loses once its training is paid: verdict: {verdict}. "
         f"{say('Teacher free (amortized)', free)}; {say('teacher paid (pretraining+inference)', paid)}.")
    if cav:
        s += f" {_caveat_sentence(dist, cav)}."
    return s


def size_order(df: pd.DataFrame, fits: dict[str, Fitted], nums: dict[str, Any]) -> str | None:
    """Is a larger model ever worse than a smaller one at the same tokens (supervised, seeds averaged)? Noise is
    each budget's own seed SD (budget_seed_sd): 2 SDs of it is a tie; a budget without repeated seeds has none."""
    sup = supervised_rows(df)
    sup = sup[sup["D_S"] > 0].groupby(["D_S", "N_S"])["loss"].mean().reset_index()   # untrained baselines: no order
    sds = budget_seed_sd(df)
    budgets, worse, tols = 0, [], {}
    for d, g in sup.groupby("D_S"):
        if len(g) < 2:
            continue
        budgets += 1
        sd = sds.get(_num(d))
        tol = 2 * sd["sd"] if sd else 0.0
        tols[_num(d)] = tol if sd else None
        g = g.sort_values("N_S")
        best_smaller = g["loss"].cummin().shift(1)
        for r, b in zip(g.itertuples(), best_smaller):
            if pd.notna(b) and r.loss > b + tol:
                worse.append(f"{fmt_count(r.N_S)} at {fmt_count(d)} tokens "
                             f"({r.loss:.4f} vs {b:.4f} for a smaller model)")
    if not budgets:
        return None
    nums["check.size_order"] = {"budgets": budgets, "violations": worse, "tolerance_by_budget": tols,
                                "source": "results: supervised runs at equal D_S, seeds averaged; tolerance 2 seed "
                                          "SDs of that budget"}
    known = {d: t for d, t in tols.items() if t is not None}
    noise = ("a difference within 2 seed SDs of its own budget is noise (" +
             ", ".join(f"{_tokens(d)}: {t:.4f}" for d, t in sorted(known.items())) + ")" if known else "")
    if len(known) < len(tols):
        noise += ("; " if noise else "") + "budgets without repeated seeds count any increase"
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


HEADLINES.register("questions", Headline(10, lambda df, fits, nums: headline_lines(df, fits, nums)))
