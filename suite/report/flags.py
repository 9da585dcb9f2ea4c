"""Numbers that are artifacts, flagged where they are printed and listed in summary.json's `flags`.

    flags = collect(df, fits, nums)     # report.build: [{"metric", "cells", "reason"}, ...]
    fit_caveats(fitted)                 # {coefficient: reason} for a fitted law; empty when every one is identified

A flag says why a number cannot carry a conclusion: a model that gives one answer to every question (its
accuracy is that letter's share of the test set), a score inside the interval of chance, MMLU whose choices
tie because the tokenizer maps them to unknown tokens, a fitted coefficient on its search bound or with a
bootstrap interval wider than a decade, an allocation or a teacher search that ended on its bound.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import pandas as pd

from ..stats import wilson_interval

DECADE = 10.0          # an interval hi/lo wider than this does not identify a coefficient
CONSTANT_SHARE = 0.95  # a model whose most frequent answer is >= 95% of its answers gives one answer
LOW_ENTROPY_BITS = 0.3
TIED_FRACTION = 0.5    # MMLU: at least half of the questions with all choice log-likelihoods equal


def fit_caveats(fitted) -> dict[str, str]:
    """{coefficient (or "search"): reason} for a report.analysis.Fitted: on a bound, an interval spanning more
    than a decade (or crossing zero), no converged start. Held coefficients are not fitted and not flagged."""
    r = fitted.result
    held = set((r.context.get("fixed") or {}))
    out: dict[str, str] = {}
    for k in r.at_bound:
        out[k] = "on its search bound (not identified by these runs)"
    for k, (lo, hi) in (r.ci or {}).items():
        if k in held or k in out or lo == hi:
            continue
        if not (np.isfinite(lo) and np.isfinite(hi)):
            out[k] = "bootstrap interval not finite"
        elif lo <= 0 < hi:
            out[k] = f"{r.ci_level:.0%} bootstrap interval [{lo:.3g}, {hi:.3g}] crosses zero"
        elif lo > 0 and hi / lo > DECADE:
            out[k] = (f"{r.ci_level:.0%} bootstrap interval [{lo:.3g}, {hi:.3g}] spans "
                      f"{math.log10(hi / lo):.1f} decades")
    if r.searched and r.converged == 0:
        out["search"] = f"0 of {r.searched} searched starts converged"
    return out


def caveat_text(caveats: dict[str, str]) -> str:
    """'A (interval spans 2.1 decades), f1 (on its search bound)' for a headline."""
    return "; ".join(f"{k}: {v}" for k, v in caveats.items())


# ---- benchmark scores ------------------------------------------------------------------------------------
def _benchmarks(df: pd.DataFrame) -> list[str]:
    return sorted({c.split(".")[1] for c in df.columns
                   if c.startswith("benchmarks.") and c.endswith(".overall") and c.count(".") == 2})


def _entry(bench: str, field: str, default: Any) -> Any:
    """A field of the benchmark's registry entry (scale, chance, multiple_choice, dataset), or `default` for
    results of a benchmark not registered here."""
    from ..config import BENCHMARKS
    from ..registry import UnknownNameError

    try:
        return getattr(BENCHMARKS.get(bench), field, default)
    except (UnknownNameError, ImportError):
        return default


def _test_letters(df: pd.DataFrame, bench: str) -> tuple[dict[str, float], float] | None:
    """({letter: share of the test set}, mean 1/options) of a multiple-choice benchmark's TSV, read from the
    cells' eval data root; None when the file is not here (results from elsewhere) or the benchmark is not one."""
    roots = df["config.eval.data_root"].dropna().unique() if "config.eval.data_root" in df else []
    if not _entry(bench, "multiple_choice", False) or _entry(bench, "dataset", None) is None or len(roots) != 1:
        return None
    return _letters_of(bench, str(roots[0]))


@functools.lru_cache(maxsize=8)
def _letters_of(bench: str, root: str) -> tuple[dict[str, float], float] | None:
    """The test set's letter shares, read once per (benchmark, data root): every table of a report asks."""
    try:
        from ..eval.vlm.score import get_benchmark

        data = get_benchmark(bench).load(root)
    except Exception:   # no data here: the fallback check needs the test set, so it is skipped
        return None
    answers = data["answer"].astype(str).str.strip()
    opts = data[[c for c in "ABCDEFGHIJ" if c in data]].notna().sum(axis=1).clip(lower=1)
    return answers.value_counts(normalize=True).to_dict(), float((1.0 / opts).mean())


def benchmark_flags(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Flags on benchmark scores, one per (benchmark, reason) with the cells it covers:
    - one answer to (nearly) every question: the extracted answers' top share >= 95% or entropy < 0.3 bits
      (result columns written at evaluation); for results that predate those columns, a multiple-choice score
      that equals exactly one letter's share of the test set (consistent with one answer to every question);
    - within chance: chance accuracy inside the score's 95% Wilson interval over its n items;
    - MMLU with tied choices: at least half of the questions have all choice log-likelihoods equal."""
    out: dict[tuple[str, str], dict[str, Any]] = {}

    def add(metric: str, reason: str, cell: str, detail: str) -> None:
        f = out.setdefault((metric, reason), {"metric": metric, "reason": reason, "cells": [], "detail": {}})
        f["cells"].append(cell)
        f["detail"][cell] = detail

    ids = df["cell_id"] if "cell_id" in df else pd.Series(df.index.astype(str), index=df.index)
    for b in _benchmarks(df):
        col = f"benchmarks.{b}.overall"
        scale = _entry(b, "scale", 100.0)   # lm-eval reports fractions, VLMEvalKit percent
        letters = None
        for i, r in df[df[col].notna()].iterrows():
            score, cell = float(r[col]), str(ids[i])
            n = r.get(f"benchmarks.{b}.n")
            n = int(n) if n is not None and pd.notna(n) else 0
            share, ent = r.get(f"benchmarks.{b}.top_answer_share"), r.get(f"benchmarks.{b}.answer_entropy")
            if share is not None and pd.notna(share):
                if float(share) >= CONSTANT_SHARE or (ent is not None and pd.notna(ent) and ent < LOW_ENTROPY_BITS):
                    add(col, "one answer to (nearly) every question", cell,
                        f"top answer {r.get(f'benchmarks.{b}.top_answer')!s} in {float(share):.0%} of replies, "
                        f"entropy {float(ent):.2f} bits")
            elif n and score > 0:
                if letters is None:
                    letters = _test_letters(df, b) or ({}, math.nan)
                hit = [k for k, v in letters[0].items() if abs(100 * v - score) < 1e-6]
                if hit:
                    add(col, "score equals one letter's share of the test set: consistent with one answer to "
                             "every question", cell, f"{score:.3f} = share of {hit[0]}")
            chance = r.get(f"benchmarks.{b}.chance")   # stored on the score's scale (percent for VLM benchmarks)
            if chance is not None and pd.notna(chance):
                chance = float(chance) / scale
            else:
                chance = _entry(b, "chance", None) or (letters or _test_letters(df, b) or ({}, math.nan))[1]
            if n and np.isfinite(chance) and chance > 0 and score > 0:
                lo, hi = wilson_interval(score / scale * n, n)
                if lo <= chance <= hi:
                    add(col, "within chance (chance inside the score's 95% Wilson interval over items)", cell,
                        f"{score:.4g} over {n} items, interval [{lo * scale:.4g}, {hi * scale:.4g}], chance "
                        f"{chance * scale:.4g}")
        tied = f"benchmarks.{b}.tied_fraction"
        if tied in df:
            for i, v in df[tied].items():
                if pd.notna(v) and v >= TIED_FRACTION:
                    add(col, "choices tie (the tokenizer maps them to the same or unknown tokens)", str(ids[i]),
                        f"{v:.0%} of questions with all choice log-likelihoods equal")
    return list(out.values())


def collect(df: pd.DataFrame, fits: dict, nums: dict[str, Any], tables: dict | None = None) -> list[dict[str, Any]]:
    """Every flag of a report: benchmark scores, fitted coefficients, searches and allocations on a bound
    (`tables`: the report's computed tables, whose raw frames may carry `at_search_bound`)."""
    flags = benchmark_flags(df)
    for name, made in (tables or {}).items():
        raw = made[1] if made is not None else None
        if raw is None or "at_search_bound" not in raw:
            continue
        for _, r in raw[raw["at_search_bound"].fillna(False).astype(bool)].iterrows():
            where = "/".join(str(int(r[k])) for k in ("N_S", "D_S") if k in r)
            flags.append({"metric": f"tables.{name}.{where}", "cells": [],
                          "reason": f"the search ended on its bound ({r.get('search_bound', 'bound')}): no "
                                    f"optimum inside the searched range"})
    for f in fits.values():
        for k, why in fit_caveats(f).items():
            flags.append({"metric": f"fit.{f.name}.{k}", "cells": [], "reason": why})
    for key, v in nums.items():
        if not isinstance(v, dict):
            continue
        for scen, r in (v.get("scenarios") or {}).items():   # compute-optimal allocations
            if isinstance(r, dict) and r.get("at_bound"):
                flags.append({"metric": f"{key}.{scen}", "cells": [],
                              "reason": f"allocation on its search bound: {', '.join(map(str, r['at_bound']))}"})
    return flags


def marks(flags: list[dict[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """{(cell id, metric): [reason, ...]}: what to print beside one number."""
    out: dict[tuple[str, str], list[str]] = {}
    for f in flags:
        for c in f["cells"]:
            out.setdefault((c, f["metric"]), []).append(f["reason"])
    return out


def flag_mark(flagged: int, n: int) -> str:
    """' ⚑2/3' beside an average whose seeds include flagged numbers ('' when none is)."""
    return f" ⚑{int(flagged)}/{int(n)}" if flagged else ""


def item_stderr(df: pd.DataFrame, bench: str) -> pd.Series:
    """Each cell's standard error of `benchmarks.<bench>.overall` over items: the stored `stderr` where the
    evaluation wrote it, else the binomial one from the score and its n items (exact for 0/1-scored items:
    AI2D, MathVista, MMLU accuracy; MM-Vet's graded scores need the stored one)."""
    col, scale = f"benchmarks.{bench}.overall", _entry(bench, "scale", 100.0)
    se = pd.Series(np.nan, index=df.index)
    if col not in df:
        return se
    stored = df.get(f"benchmarks.{bench}.stderr")
    n = pd.to_numeric(df.get(f"benchmarks.{bench}.n", pd.Series(np.nan, index=df.index)), errors="coerce")
    p = pd.to_numeric(df[col], errors="coerce") / scale
    if bench != "mmvet":
        se = scale * np.sqrt((p * (1 - p)) / n.where(n > 0))
    if stored is not None:
        se = pd.to_numeric(stored, errors="coerce").fillna(se)
    return se
