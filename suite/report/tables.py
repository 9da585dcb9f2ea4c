"""Report tables: functions of the results and fits, registered by name, written as Markdown, LaTeX and CSV.

A table function returns (DataFrame, caption) or None. Cells are preformatted strings; CSV files keep
full precision (the `raw` frame) so a reader can recompute anything the report states.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._io import atomic_write_text
from ..config import ConfigError
from ..laws import (CONVENTIONS, DEFAULT_CONVENTION, approach_points, envelope, exact_irreducible, exponent_summary,
                    get_convention, isoflop, kd_rows, optimal_teacher_loss, parametric_exponents, parametric_measured,
                    published, supervised_rows)
from .analysis import comparison_set, compute_optimal_fits, fit_of, refit, supervised_params_of
from .flags import fit_caveats
from .registries import TABLES


def fmt_count(x: float) -> str:
    for div, suf in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.3g}{suf}"
    return f"{x:.3g}"


def fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if isinstance(v, (int, np.integer)):
        return f"{v:,}"
    if isinstance(v, (float, np.floating)):
        a = abs(v)
        return f"{v:.{digits}g}" if a >= 1e4 or (a and a < 1e-3) else f"{v:.{digits}f}"
    return str(v)


def _variant_labels(rows: pd.DataFrame, df: pd.DataFrame) -> pd.Series:
    """A column label per distilled run: method (+ divergence when it varies) and its teacher, e.g.
    "kd ← T 1.86M/1.5M (L_T 2.241)"; runs that differ only by seed share a label (and are averaged)."""
    teachers: dict[Any, str] = {}
    if "teacher_id" in df and "cell_id" in df:
        by_id = df.drop_duplicates("cell_id").set_index("cell_id")
        for tid in df["teacher_id"].dropna().unique():
            if tid in by_id.index:
                t = by_id.loc[tid]
                teachers[tid] = f"T {fmt_count(t['N_S'])}/{fmt_count(t['D_S'])} (L_T {t['loss']:.3f})"
    div = "method_params.divergence"
    vary = div in rows and rows[div].nunique(dropna=True) > 1

    def label(r) -> str:
        m = str(r["method"]) + (f"/{r[div]}" if vary and pd.notna(r.get(div)) else "")
        t = teachers.get(r.get("teacher_id")) or (f"L_T {r['L_T']:.3f}" if pd.notna(r.get("L_T")) else "")
        return f"{m} ← {t}" if t else m

    return rows.apply(label, axis=1)


@TABLES.register("results")
def results(df: pd.DataFrame, fits: dict) -> tuple[pd.DataFrame, pd.DataFrame, str] | None:
    """Held-out loss per student size and budget: supervised beside each distilled variant (seeds averaged)."""
    if "continual.stage" in df:  # continual-learning stages have their own tables (report/continual.py)
        df = df[df["continual.stage"].isna()]
    if "vlm.method" in df:  # so do vision-language cells (report/vlm.py)
        df = df[df["vlm.method"].isna()]
    if "method" not in df or df.empty:
        return None
    sup = df[df["method"] == "supervised"].groupby(["N_S", "D_S"])["loss"].mean().rename("supervised")
    other = df[df["method"] != "supervised"]
    raw = sup.to_frame()
    cols: list[str] = []
    if not other.empty:
        wide = other.assign(_v=_variant_labels(other, df)).pivot_table(index=["N_S", "D_S"], columns="_v",
                                                                   values="loss", aggfunc="mean")
        cols = sorted(wide.columns)
        raw = raw.join(wide[cols], how="outer")
    raw = raw.sort_index().reset_index()
    raw["N_S"], raw["D_S"] = raw["N_S"].astype(int), raw["D_S"].astype(int)
    best = raw[cols].min(axis=1) if cols else pd.Series(np.nan, index=raw.index)
    raw = raw[["N_S", "D_S", "supervised"] + cols].assign(**{"best distilled − supervised": best - raw["supervised"]})
    shown = raw.copy()
    shown["N_S"] = raw["N_S"].map(fmt_count)
    shown["D_S"] = raw["D_S"].map(fmt_count)
    for c in raw.columns[2:-1]:
        shown[c] = raw[c].map(fmt)
    shown[raw.columns[-1]] = raw[raw.columns[-1]].map(lambda v: f"{v:+.4f}" if pd.notna(v) else "–")
    return shown, raw, ("Held-out cross-entropy (nats/token) of every finished cell, averaged over seeds: supervised "
                        "beside each distilled variant and its teacher; the last column is the best distilled "
                        "student minus supervised at the same size and tokens (negative: distillation helps).")


@TABLES.register("fits")
def fits_table(df: pd.DataFrame, fits: dict) -> tuple[pd.DataFrame, pd.DataFrame, str] | None:
    """Fitted coefficients with bootstrap intervals, beside the published coefficients of the same law."""
    if not fits:
        return None
    rows = []
    for f in fits.values():
        res = f.result
        caveats = fit_caveats(f)
        pub_name = comparison_set(f)
        pub = published(pub_name) if pub_name else None
        for k, v in res.params.items():
            lo, hi = (res.ci or {}).get(k, (np.nan, np.nan))
            plo, phi = (pub.ci.get(k, (np.nan, np.nan)) if pub else (np.nan, np.nan))
            held = k in (res.context.get("fixed") or {})
            rows.append({"fit": f.name, "law": f.spec.law, "search": res.method, "parameter": k, "ours": v,
                         "ours_ci_low": lo, "ours_ci_high": hi,
                         "ours_ci_level": res.ci_level if res.ci else np.nan, "held": held,
                         "published": pub.params.get(k, np.nan) if pub else np.nan, "published_ci_low": plo,
                         "published_ci_high": phi, "published_ci_level": pub.ci_level if pub else np.nan,
                         "published_source": pub_name or "", "caveat": caveats.get(k, "")})
    raw = pd.DataFrame(rows)

    def ci(lo, hi):
        return f"[{fmt(lo)}, {fmt(hi)}]" if pd.notna(lo) else "–"

    shown = pd.DataFrame({
        "fit": raw["fit"], "search": raw["search"], "parameter": raw["parameter"],
        "ours (measured)": [fmt(v) + (" (held)" if h else "") + (" ⚑" if c else "")
                            for v, h, c in zip(raw["ours"], raw["held"], raw["caveat"])],
        "ours CI": [ci(a, b) + (f" ({lv:.0%})" if pd.notna(a) else "")
                    for a, b, lv in zip(raw["ours_ci_low"], raw["ours_ci_high"], raw["ours_ci_level"])],
        "published": raw["published"].map(fmt),
        "published CI": [ci(a, b) + (f" ({lv:.0%})" if pd.notna(a) and pd.notna(lv) else "")
                         for a, b, lv in zip(raw["published_ci_low"], raw["published_ci_high"],
                                             raw["published_ci_level"])],
        "published source": raw["published_source"]})
    return shown, raw, ("Fitted law coefficients (ours, on this sweep's tiny models and synthetic data) beside the "
                        "published coefficients of the same law (other models, other data: compare shapes, "
                        "not values). ⚑: a coefficient these runs do not identify (on its bound, or an interval "
                        "wider than a "
                        "decade; the reason is in the CSV's caveat column and under Flags). N and D are raw counts, "
                        "losses in nats/token. search: the multi-start "
                        "search that produced the fit (fast: batched descent of every start, the best polished "
                        "with L-BFGS-B; full: L-BFGS-B from every start, the papers' recipe).")


@TABLES.register("fit_quality")
def fit_quality(df: pd.DataFrame, fits: dict) -> tuple[pd.DataFrame, pd.DataFrame, str] | None:
    if not fits:
        return None
    rows = []
    for f in fits.values():
        r = f.result
        rows.append({"fit": f.name, "law": f.spec.law, "search": r.method, "points": r.n_points,
                     "huber_delta": r.delta,
                     "objective": r.objective, "starts": r.starts, "searched": r.searched,
                     "converged": r.converged,
                     "bootstrap": r.n_bootstrap, "holdout_mean_rel_error": (r.holdout or {}).get("mean_rel_error"),
                     "at_bound": ", ".join(r.at_bound) or "–"})
    raw = pd.DataFrame(rows)
    shown = raw.copy()
    for c in ("objective", "huber_delta", "holdout_mean_rel_error"):
        shown[c] = raw[c].map(lambda v, c=c: fmt(v) if c != "holdout_mean_rel_error" or v is None or pd.isna(v)
                              else f"{v:.2%}")
    return shown, raw, ("How each fit went: summed Huber objective, starts of the multi-start grid (searched: those "
                        "that descended after the cheap screening of large grids; converged: of those), bootstrap "
                        "resamples, held-out extrapolation error (fit on low compute, scored on the highest) "
                        "and parameters that ended on a bound.")


@TABLES.register("capacity_gap")
def capacity_gap(df: pd.DataFrame, fits: dict) -> tuple[pd.DataFrame, pd.DataFrame, str] | None:
    """From the fitted laws: the best teacher loss for each student size at each budget, and its gain.

    No teacher is better than the data's irreducible loss, so the search starts at E (the exact E when the runs
    carry it, column bayes_loss, else the E of the supervised law the distillation law was fitted on) or at 0.8x
    the strongest teacher run, whichever is higher, and ends at 1.3x the weakest. An optimum on either end is
    flagged (`at_search_bound`, and `search_bound` names the end): there the fitted U has no bottom in range."""
    dist = fit_of(fits, "distillation")
    kd = kd_rows(df)
    if dist is None or kd.empty:
        return None
    sup = supervised_params_of(dist)
    exact = exact_irreducible(df)
    e, e_source = (exact, "exact (bayes_loss)") if exact is not None else (float(sup["E"]), "supervised fit")
    lo = max(e, 0.8 * float(kd["L_T"].min()))
    hi = max(1.3 * float(kd["L_T"].max()), 1.3 * lo)
    ends = {"low": "E" if lo == e else "0.8x strongest teacher", "high": "1.3x weakest teacher"}
    rows = []
    for n, d in sorted({(n, d) for n, d in zip(kd["N_S"], kd["D_S"])}):
        r = optimal_teacher_loss(sup, dist.result.params, n, d, L_T_range=(lo, hi))
        rows.append({"N_S": int(n), "D_S": int(d), "L_T_opt": r["L_T"], "L_S_opt": r["L_S"],
                     "L_supervised": r["L_supervised"], "gain": r["gain"], "at_search_bound": r["at_search_bound"],
                     "search_bound": ends.get(r["search_bound"], ""), "search_low": lo, "search_high": hi,
                     "E": e, "E_source": e_source})
    raw = pd.DataFrame(rows)
    mark = {"E": " (= E: search bound)", "0.8x strongest teacher": " (search bound)",
            "1.3x weakest teacher": " (search bound)", "": ""}
    shown = pd.DataFrame({"N_S": raw["N_S"].map(fmt_count), "D_S": raw["D_S"].map(fmt_count),
                          "best teacher L_T": [fmt(v) + mark[b] for v, b in zip(raw["L_T_opt"], raw["search_bound"])],
                          "student L_S": raw["L_S_opt"].map(fmt), "supervised L": raw["L_supervised"].map(fmt),
                          "gain (nats)": raw["gain"].map(lambda v: f"{v:+.4f}")})
    which = "exact" if exact is not None else "the supervised fit's"
    start = (f"E = {e:.4f} ({which}; no teacher is better than the data's irreducible loss)" if ends["low"] == "E"
             else f"0.8x the strongest teacher ({lo:.4f})")
    return shown, raw, ("The fitted laws' answer to 'which teacher?': the teacher loss that minimizes the student's "
                        f"loss (bottom of the capacity-gap U), searched from {start} to 1.3x the weakest teacher "
                        f"we ran ({hi:.4f}), the student loss it gives and its gain over supervised training at the "
                        "same tokens. A teacher marked 'search bound' is where the search stopped, not a bottom: "
                        "the fitted U keeps falling to that end.")


def approaches(df: pd.DataFrame, fits: dict, bootstrap: int = 400, convention: str = DEFAULT_CONVENTION,
               total_fit_bootstrap: int = 100) -> dict[str, Any]:
    """Hoffmann et al.'s approaches 1-3 on the supervised runs, with N and C counted as `convention` says
    (suite.laws.CONVENTIONS: non_embedding, total, measured): {name: ApproachResult or error string}.
    Approach 3 takes the spec's first fit of a law with a closed-form optimum (Law.compute_optimal: supervised,
    chinchilla) whose N counts the same parameters; with
    total N and no such fit in the spec, the first one is refitted here with total N (its settings, no
    holdout, at most `total_fit_bootstrap` bootstrap resamples)."""
    conv = get_convention(convention)
    pts = approach_points(df)   # the supervised runs with a finite loss: N, D, loss (+ N_total, C_measured)
    out: dict[str, Any] = {}
    if len(pts) >= 6:
        for name, fn in (("envelope", envelope), ("isoflop", isoflop)):
            try:
                out[name] = fn(pts, bootstrap=bootstrap, seed=0, convention=conv)
            except ValueError as e:
                out[name] = str(e)
    laws = compute_optimal_fits(fits)
    f = next((f for f in laws if getattr(f.spec, "n_params", "non_embedding") == conv.n_params), None)
    if f is None and laws and conv.n_params == "total":
        try:
            f = refit(laws[0], df, n_params="total", holdout=None,
                      bootstrap=min(laws[0].spec.bootstrap, total_fit_bootstrap))
        except ConfigError as e:
            out["parametric"] = str(e)
    if f is not None:
        ci = f.result.ci_level or 0.9
        try:
            out["parametric"] = (parametric_exponents(f.result.params, f.result.samples, f.law.param_names, ci=ci,
                                                      convention=conv) if conv.flops == "6ND" else
                                 parametric_measured(f.law, f.result.params, pts, samples=f.result.samples, ci=ci,
                                                     convention=conv))
        except ValueError as e:
            out["parametric"] = str(e)
    return out


@TABLES.register("compute_optimal")
def compute_optimal(df: pd.DataFrame, fits: dict) -> tuple[pd.DataFrame, pd.DataFrame, str] | None:
    """N_opt ∝ C^a, D_opt ∝ C^b by approaches 1, 2 and 3 in each convention of what N and C count (columns), beside
    Hoffmann et al. Table 2, Epoch and Busbridge et al. under the convention each used. The raw frame's attrs
    hold `conventions`: suite.laws.exponent_summary of the results, for a headline (conventions_sentence)."""
    res = {key: approaches(df, fits, convention=key) for key in CONVENTIONS}
    if not any(not isinstance(r, str) for r in res[DEFAULT_CONVENTION].values()):
        return None
    labels = {"envelope": "1: envelope (best run per compute level)", "isoflop": "2: isoFLOP parabolas",
              "parametric": "3: parametric law"}
    suffix = {key: "" if key == DEFAULT_CONVENTION else f"_{key}" for key in CONVENTIONS}
    blank = {f"{q}{suffix[k]}{e}": np.nan for k in CONVENTIONS for q in ("a", "b") for e in ("", "_ci_low", "_ci_high")}
    rows = []
    for name in ("envelope", "isoflop", "parametric"):
        if all(res[k].get(name) is None for k in CONVENTIONS):
            continue
        row: dict[str, Any] = {"approach": labels[name], "source": "ours", **blank, "levels": np.nan}
        for key in CONVENTIONS:
            r, sx = res[key].get(name), suffix[key]
            if r is None:
                continue
            if isinstance(r, str):
                row[f"note{sx}"] = r.splitlines()[0]
                continue
            ci = r.ci or {}
            for q in ("a", "b"):
                row[f"{q}{sx}"] = getattr(r, q)
                row[f"{q}{sx}_ci_low"], row[f"{q}{sx}_ci_high"] = ci.get(q, (np.nan, np.nan))
            if key == DEFAULT_CONVENTION and r.levels is not None:
                row["levels"] = int(r.levels["used"].sum())
            row[f"note{sx}"] = "; ".join(r.warnings)
        rows.append(row)
    # the published exponents, under the convention each paper counts N in (C = 6ND in all three)
    published_in = {"chinchilla2022_table2": "total", "busbridge2025_table6": DEFAULT_CONVENTION,
                    "epoch2024_table1": "total"}
    pub_dir = Path(__file__).resolve().parents[2] / "analysis" / "published"
    for fname, key in published_in.items():
        p = pub_dir / f"{fname}.csv"
        if not p.exists():
            continue
        t = pd.read_csv(p)
        t = t[t["metric"] == "compute_optimal_exponent"]
        sx = suffix[key]
        for model, g in t.groupby("model", sort=False):
            if model == "distillation":   # a' of the distillation law is another quantity (the student's D-N split)
                continue
            g = g.set_index("quantity")
            if not {"a", "b"} <= set(g.index):
                continue
            row = {"approach": str(model), "source": str(g["citation"].iloc[0]).split(",")[0], **blank,
                   "levels": np.nan, "note": str(g["table"].iloc[0])}
            for q in ("a", "b"):
                row[f"{q}{sx}"], row[f"{q}{sx}_ci_low"], row[f"{q}{sx}_ci_high"] = (
                    g.loc[q, "value"], g.loc[q, "ci_low"], g.loc[q, "ci_high"])
            rows.append(row)
    raw = pd.DataFrame(rows)
    for key in CONVENTIONS:   # a note column per convention, blank where there is nothing to say
        c = f"note{suffix[key]}"
        raw[c] = raw[c].fillna("") if c in raw else ""
    raw.attrs["conventions"] = exponent_summary(res)

    def with_ci(v, lo, hi):
        return fmt(v, 3) + (f" [{lo:.3f}, {hi:.3f}]" if pd.notna(lo) and pd.notna(hi) else "")

    head = {"non_embedding": "N non-emb., C = 6ND", "total": "N total, C = 6ND", "measured": "N non-emb., C measured"}
    shown = pd.DataFrame({"approach": raw["approach"], "source": raw["source"]})
    for q in ("a", "b"):
        for key in CONVENTIONS:
            c = f"{q}{suffix[key]}"
            shown[f"{q}: {head.get(key, key)}"] = [with_ci(*x) for x in zip(raw[c], raw[f"{c}_ci_low"],
                                                                            raw[f"{c}_ci_high"])]
    shown["compute levels"] = raw["levels"].map(lambda v: "–" if pd.isna(v) else str(int(v)))
    own_total = any(getattr(f.spec, "n_params", "non_embedding") == "total" for f in compute_optimal_fits(fits))
    base = next(iter(compute_optimal_fits(fits)), None)
    total_fit = ("the spec's fit with n_params: total" if own_total else
                 f"the {base.name} fit refitted here with total N: its settings, no holdout, at most 100 bootstrap "
                 f"resamples" if base is not None else "no fit")
    caption = ("Compute-optimal exponents (N_opt ∝ C^a, D_opt ∝ C^b) by Hoffmann et al.'s three approaches on our "
               "supervised runs, in three conventions of what N and C count: N non-embedding with C = 6ND (the "
               "report's convention, as Busbridge et al.); N total (input embedding and LM head included) with C = "
               "6ND (as Hoffmann et al.); N non-embedding with C the training loop's own FLOP count "
               "(flops.student_train: attention and the LM head included). Approaches 1-2 keep the sweep's compute "
               "levels (designed at 6ND with non-embedding N) and re-express each level's optimum in the "
               "convention; approach 3 is the closed form of the supervised fit (with total N, "
               f"{total_fit}) and, under measured FLOPs, the numeric optimum of the same law, its slope over the "
               "measured compute range. 90% bootstrap intervals (approaches 1-2 resample runs within each compute "
               "level, approach 3 uses the fit's bootstrap). Beside them, Hoffmann et al. Table 2 and Epoch (total "
               "N) and Busbridge et al.'s supervised law (non-embedding N), each under its own convention (other "
               "models and data: compare how the approaches agree, not the values). The CSV keeps every convention "
               "(columns a, a_total, a_measured, ... and a note for each).")
    return shown, raw, caption


@TABLES.register("power_laws")
def power_laws(df: pd.DataFrame, fits: dict) -> tuple[pd.DataFrame, pd.DataFrame, str] | None:
    """Measured exponents of loss - E: slope of log(L - E) on log N at each budget, and on log D at each size."""
    e = exact_irreducible(df)
    sup = supervised_rows(df)
    if e is None or sup.empty:
        return None
    # the held-out tokens' own Bayes loss (E without their sampling noise), when the runs carry it
    if "bayes_loss_heldout" in sup and sup["bayes_loss_heldout"].notna().all():
        e = float(sup["bayes_loss_heldout"].iloc[0])
    g = sup.groupby(["N_S", "D_S"], as_index=False)["loss"].mean()
    if (g["loss"] <= e).any():
        return None   # a run at or below E: the excess has no logarithm (and something is wrong)
    rows = []
    for axis, fixed in (("N", "D_S"), ("D", "N_S")):
        var = "N_S" if axis == "N" else "D_S"
        for v, h in g.groupby(fixed):
            if h[var].nunique() < 3:
                continue
            x, y = np.log(h[var].to_numpy(float)), np.log(h["loss"].to_numpy(float) - e)
            slope, icpt = np.polyfit(x, y, 1)
            r2 = 1 - ((y - (slope * x + icpt)) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-300)
            rows.append({"in": axis, "held": f"{'D' if fixed == 'D_S' else 'N'} = {fmt_count(v)}", "held_value": v,
                         "points": len(h), "range": f"{fmt_count(h[var].min())}–{fmt_count(h[var].max())}",
                         "exponent": -slope, "r2": r2, "excess_min": float(np.exp(y).min()),
                         "excess_max": float(np.exp(y).max())})
    if not rows:
        return None
    raw = pd.DataFrame(rows)
    shown = pd.DataFrame({"L - E against": raw["in"], "held fixed": raw["held"], "points": raw["points"],
                          "range": raw["range"], "exponent": raw["exponent"].map(lambda v: f"{v:.3f}"),
                          "R² (log-log)": raw["r2"].map(lambda v: f"{v:.3f}"),
                          "L - E (nats)": [f"{a:.3f}–{b:.3f}" for a, b in zip(raw["excess_min"], raw["excess_max"])]})
    return shown, raw, ("Measured power laws of the excess loss L - E (E exact): the exponent of L - E ∝ N^-x at "
                        "each token budget, and ∝ D^-x at each size, from straight-line fits in log-log space over "
                        "the supervised runs (seeds averaged); R² near 1 means a straight line, i.e. a power law.")


# ---- writers --------------------------------------------------------------------------------------------
def to_markdown(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(esc(c) for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in df.astype(str).itertuples(index=False)]
    return "\n".join(lines) + "\n"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}", "Δ": r"$\Delta$", "−": "-", "–": "--"}


def tex_escape(s: Any) -> str:
    """LaTeX-safe text; a Markdown-bold cell (**x**, the significant best arm of a comparison) becomes \\textbf{x}."""
    s = str(s)
    if len(s) > 4 and s.startswith("**") and "**" in s[2:]:   # bold part, then e.g. a flag mark
        end = s.index("**", 2)
        return r"\textbf{" + tex_escape(s[2:end]) + "}" + tex_escape(s[end + 2:])
    return "".join(_TEX.get(ch, ch) for ch in s)


def to_latex(df: pd.DataFrame, caption: str, label: str) -> str:
    spec = "l" * 1 + "r" * (len(df.columns) - 1)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(tex_escape(c) for c in df.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(tex_escape(v) for v in row) + r" \\" for row in df.astype(str).itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{tex_escape(caption)}}}", rf"\label{{tab:{label}}}",
              r"\end{table}"]
    return "\n".join(lines) + "\n"


def _html_cell(v: str) -> str:
    """Escaped text; a Markdown-bold part (**x**, the significant best arm of a comparison) becomes <strong>."""
    if v.startswith("**") and "**" in v[2:]:
        end = v.index("**", 2)
        return f"<strong>{html.escape(v[2:end])}</strong>{html.escape(v[end + 2:])}"
    return html.escape(v)


def to_html(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{_html_cell(v)}</td>" for v in row) + "</tr>"
                   for row in df.astype(str).itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write(out_dir: Path, name: str, shown: pd.DataFrame, raw: pd.DataFrame, caption: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.md", out_dir / f"{name}.tex", out_dir / f"{name}.csv"]
    atomic_write_text(paths[0], to_markdown(shown))
    atomic_write_text(paths[1], to_latex(shown, caption, name))
    atomic_write_text(paths[2], raw.to_csv(index=False, float_format="%.10g"))
    return paths
