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
from ..laws import (envelope, exact_irreducible, get_law, isoflop, kd_rows, optimal_teacher_loss, parametric_exponents,
                    points_for, published, supervised_rows)
from .analysis import comparison_set, fit_of, supervised_params_of
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
        pub_name = comparison_set(f)
        pub = published(pub_name) if pub_name else None
        for k, v in res.params.items():
            lo, hi = (res.ci or {}).get(k, (np.nan, np.nan))
            plo, phi = (pub.ci.get(k, (np.nan, np.nan)) if pub else (np.nan, np.nan))
            held = k in (res.context.get("fixed") or {})
            rows.append({"fit": f.name, "law": f.spec.law, "search": res.method, "parameter": k, "ours": v, "ours_ci_low": lo,
                         "ours_ci_high": hi, "ours_ci_level": res.ci_level if res.ci else np.nan, "held": held,
                         "published": pub.params.get(k, np.nan) if pub else np.nan, "published_ci_low": plo,
                         "published_ci_high": phi, "published_ci_level": pub.ci_level if pub else np.nan,
                         "published_source": pub_name or ""})
    raw = pd.DataFrame(rows)

    def ci(lo, hi):
        return f"[{fmt(lo)}, {fmt(hi)}]" if pd.notna(lo) else "–"

    shown = pd.DataFrame({
        "fit": raw["fit"], "search": raw["search"], "parameter": raw["parameter"],
        "ours (measured)": [fmt(v) + (" (held)" if h else "") for v, h in zip(raw["ours"], raw["held"])],
        "ours CI": [ci(a, b) + (f" ({lv:.0%})" if pd.notna(a) else "")
                    for a, b, lv in zip(raw["ours_ci_low"], raw["ours_ci_high"], raw["ours_ci_level"])],
        "published": raw["published"].map(fmt),
        "published CI": [ci(a, b) + (f" ({lv:.0%})" if pd.notna(a) and pd.notna(lv) else "")
                         for a, b, lv in zip(raw["published_ci_low"], raw["published_ci_high"],
                                             raw["published_ci_level"])],
        "published source": raw["published_source"]})
    return shown, raw, ("Fitted law coefficients (ours, on this sweep's tiny models and synthetic data) beside the "
                        "published coefficients of the same law (other models, other data: compare shapes, "
                        "not values). N and D are raw counts, losses in nats/token. search: the multi-start "
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
        shown[c] = raw[c].map(lambda v: fmt(v) if c != "holdout_mean_rel_error" or v is None or pd.isna(v)
                              else f"{v:.2%}")
    return shown, raw, ("How each fit went: summed Huber objective, starts of the multi-start grid (searched: those "
                        "that descended after the cheap screening of large grids; converged: of those), bootstrap "
                        "resamples, held-out extrapolation error (fit on low compute, scored on the highest) "
                        "and parameters that ended on a bound.")


@TABLES.register("capacity_gap")
def capacity_gap(df: pd.DataFrame, fits: dict) -> tuple[pd.DataFrame, pd.DataFrame, str] | None:
    """From the fitted laws: the best teacher loss for each student size at each budget, and its gain."""
    dist = fit_of(fits, "distillation")
    kd = kd_rows(df)
    if dist is None or kd.empty:
        return None
    rows = []
    for n, d in sorted({(n, d) for n, d in zip(kd["N_S"], kd["D_S"])}):
        r = optimal_teacher_loss(supervised_params_of(dist), dist.result.params, n, d,
                                 L_T_range=(float(kd["L_T"].min()) * 0.8, float(kd["L_T"].max()) * 1.3))
        rows.append({"N_S": int(n), "D_S": int(d), "L_T_opt": r["L_T"], "L_S_opt": r["L_S"],
                     "L_supervised": r["L_supervised"], "gain": r["gain"]})
    raw = pd.DataFrame(rows)
    shown = pd.DataFrame({"N_S": raw["N_S"].map(fmt_count), "D_S": raw["D_S"].map(fmt_count),
                          "best teacher L_T": raw["L_T_opt"].map(fmt), "student L_S": raw["L_S_opt"].map(fmt),
                          "supervised L": raw["L_supervised"].map(fmt),
                          "gain (nats)": raw["gain"].map(lambda v: f"{v:+.4f}")})
    return shown, raw, ("The fitted laws' answer to 'which teacher?': the teacher loss that minimizes the student's "
                        "loss (bottom of the capacity-gap U, searched within 0.8x-1.3x the teachers we ran), the "
                        "student loss it gives and its gain over supervised training at the same tokens.")


def approaches(df: pd.DataFrame, fits: dict, bootstrap: int = 400) -> dict[str, Any]:
    """Hoffmann et al.'s approaches 1-3 on the supervised runs: {name: ApproachResult or error string}."""
    pts = points_for(get_law("supervised"), df)   # the supervised runs with a finite loss, as N, D, loss
    out: dict[str, Any] = {}
    if len(pts) >= 6:
        for name, fn in (("envelope", envelope), ("isoflop", isoflop)):
            try:
                out[name] = fn(pts, bootstrap=bootstrap, seed=0)
            except ValueError as e:
                out[name] = str(e)
    f = fit_of(fits, "supervised", "chinchilla")
    if f is not None:
        out["parametric"] = parametric_exponents(f.result.params, f.result.samples, f.law.param_names,
                                                 ci=f.result.ci_level or 0.9)
    return out


@TABLES.register("compute_optimal")
def compute_optimal(df: pd.DataFrame, fits: dict) -> tuple[pd.DataFrame, pd.DataFrame, str] | None:
    """N_opt ∝ C^a, D_opt ∝ C^b by approaches 1, 2 and 3, beside Hoffmann et al. Table 2 and Busbridge/Epoch."""
    res = approaches(df, fits)
    if not any(not isinstance(r, str) for r in res.values()):
        return None
    labels = {"envelope": "1: envelope (best run per compute level)", "isoflop": "2: isoFLOP parabolas",
              "parametric": "3: parametric law"}
    rows = []
    for name in ("envelope", "isoflop", "parametric"):
        r = res.get(name)
        if r is None:
            continue
        if isinstance(r, str):
            rows.append({"approach": labels[name], "source": "ours", "a": np.nan, "a_ci_low": np.nan,
                         "a_ci_high": np.nan, "b": np.nan, "b_ci_low": np.nan, "b_ci_high": np.nan,
                         "levels": np.nan, "note": r.splitlines()[0]})
            continue
        ci = r.ci or {}
        used = int(r.levels["used"].sum()) if r.levels is not None else np.nan
        rows.append({"approach": labels[name], "source": "ours", "a": r.a, "a_ci_low": ci.get("a", (np.nan,))[0],
                     "a_ci_high": ci.get("a", (np.nan, np.nan))[1], "b": r.b,
                     "b_ci_low": ci.get("b", (np.nan,))[0], "b_ci_high": ci.get("b", (np.nan, np.nan))[1],
                     "levels": used, "note": "; ".join(r.warnings)})
    pub_dir = Path(__file__).resolve().parents[2] / "analysis" / "published"
    for fname in ("chinchilla2022_table2", "busbridge2025_table6", "epoch2024_table1"):
        p = pub_dir / f"{fname}.csv"
        if not p.exists():
            continue
        t = pd.read_csv(p)
        t = t[t["metric"] == "compute_optimal_exponent"]
        for model, g in t.groupby("model", sort=False):
            if model == "distillation":   # a' of the distillation law is another quantity (the student's D-N split)
                continue
            g = g.set_index("quantity")
            if not {"a", "b"} <= set(g.index):
                continue
            rows.append({"approach": str(model), "source": str(g["citation"].iloc[0]).split(",")[0],
                         "a": g.loc["a", "value"], "a_ci_low": g.loc["a", "ci_low"], "a_ci_high": g.loc["a", "ci_high"],
                         "b": g.loc["b", "value"], "b_ci_low": g.loc["b", "ci_low"], "b_ci_high": g.loc["b", "ci_high"],
                         "levels": np.nan, "note": str(g["table"].iloc[0])})
    raw = pd.DataFrame(rows)

    def with_ci(v, lo, hi):
        return fmt(v, 3) + (f" [{lo:.3f}, {hi:.3f}]" if pd.notna(lo) and pd.notna(hi) else "")

    shown = pd.DataFrame({"approach": raw["approach"], "source": raw["source"],
                          "a (N_opt ∝ C^a)": [with_ci(*x) for x in zip(raw["a"], raw["a_ci_low"], raw["a_ci_high"])],
                          "b (D_opt ∝ C^b)": [with_ci(*x) for x in zip(raw["b"], raw["b_ci_low"], raw["b_ci_high"])],
                          "compute levels": raw["levels"].map(lambda v: "–" if pd.isna(v) else str(int(v)))})
    return shown, raw, ("Compute-optimal exponents by Hoffmann et al.'s three approaches on our supervised runs "
                        "(C = 6ND; 90% bootstrap intervals: approaches 1-2 resample runs within each compute level, "
                        "approach 3 uses the supervised fit's bootstrap), beside Hoffmann et al. Table 2 and Busbridge "
                        "et al.'s supervised law (other models and data: compare how the approaches agree, not "
                        "the values).")


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
    return "".join(_TEX.get(ch, ch) for ch in str(s))


def to_latex(df: pd.DataFrame, caption: str, label: str) -> str:
    spec = "l" * 1 + "r" * (len(df.columns) - 1)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(tex_escape(c) for c in df.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(tex_escape(v) for v in row) + r" \\" for row in df.astype(str).itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{tex_escape(caption)}}}", rf"\label{{tab:{label}}}",
              r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_html(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in df.astype(str).itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write(out_dir: Path, name: str, shown: pd.DataFrame, raw: pd.DataFrame, caption: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.md", out_dir / f"{name}.tex", out_dir / f"{name}.csv"]
    atomic_write_text(paths[0], to_markdown(shown))
    atomic_write_text(paths[1], to_latex(shown, caption, name))
    atomic_write_text(paths[2], raw.to_csv(index=False, float_format="%.10g"))
    return paths
