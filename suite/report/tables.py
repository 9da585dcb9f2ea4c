"""Report tables: functions of the results and fits, registered by name, written as Markdown, LaTeX and CSV.

A table function returns (DataFrame, caption) or None. Cells are preformatted strings; CSV files keep
full precision (the `raw` frame) so a reader can recompute anything the report states.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..registry import Registry

TABLES: Registry[Callable[..., Any]] = Registry("table")


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
    from ..laws import published
    from .analysis import comparison_set

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
            rows.append({"fit": f.name, "law": f.spec.law, "parameter": k, "ours": v, "ours_ci_low": lo,
                         "ours_ci_high": hi, "ours_ci_level": res.ci_level if res.ci else np.nan, "held": held,
                         "published": pub.params.get(k, np.nan) if pub else np.nan, "published_ci_low": plo,
                         "published_ci_high": phi, "published_ci_level": pub.ci_level if pub else np.nan,
                         "published_source": pub_name or ""})
    raw = pd.DataFrame(rows)

    def ci(lo, hi):
        return f"[{fmt(lo)}, {fmt(hi)}]" if pd.notna(lo) else "–"

    shown = pd.DataFrame({
        "fit": raw["fit"], "parameter": raw["parameter"],
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
                        "not values). N and D are raw counts, losses in nats/token.")


@TABLES.register("fit_quality")
def fit_quality(df: pd.DataFrame, fits: dict) -> tuple[pd.DataFrame, pd.DataFrame, str] | None:
    if not fits:
        return None
    rows = []
    for f in fits.values():
        r = f.result
        rows.append({"fit": f.name, "law": f.spec.law, "points": r.n_points, "huber_delta": r.delta,
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
    from ..laws import optimal_teacher_loss

    from ..laws import kd_rows
    from .analysis import fit_of, supervised_params_of

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
    from .._io import atomic_write_text

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.md", out_dir / f"{name}.tex", out_dir / f"{name}.csv"]
    atomic_write_text(paths[0], to_markdown(shown))
    atomic_write_text(paths[1], to_latex(shown, caption, name))
    atomic_write_text(paths[2], raw.to_csv(index=False, float_format="%.10g"))
    return paths
