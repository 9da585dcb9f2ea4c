"""Report figures: each is a function of the results table and the fits, registered by name.

A figure function returns (matplotlib Figure, caption), or None with nothing to draw (the report says so).
Files are written as PNG and SVG with fixed metadata so regenerating gives the same bytes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..laws import exact_irreducible, fit_parabola, get_law, kd_rows, supervised_rows
from .analysis import fit_of, supervised_params_of
from .registries import FIGURES
from .tables import approaches, fmt_count

STYLE = {"figsize": (6.4, 4.2), "dpi": 110, "cmap": "viridis", "marker_size": 36, "band_alpha": 0.18}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "suite", "axes.grid": True, "grid.alpha": 0.3, "font.size": 9,
                         "axes.spines.top": False, "axes.spines.right": False})
    return plt


def save(fig, out_dir: Path, name: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    fig.savefig(png, dpi=STYLE["dpi"], bbox_inches="tight", metadata={"Software": None})
    fig.savefig(svg, bbox_inches="tight", metadata={"Date": None, "Creator": None})
    _plt().close(fig)
    return [png, svg]


def _colors(n: int):
    plt = _plt()
    cmap = plt.get_cmap(STYLE["cmap"])
    return [cmap(x) for x in np.linspace(0.05, 0.85, max(n, 1))]


def _band(fitted, inputs: dict[str, np.ndarray], level: float = 0.9):
    """Percentile band of the law's prediction over the bootstrap resamples, or None."""
    res = fitted.result
    if res.samples is None or len(res.samples) < 10:
        return None
    law, names = fitted.law, list(fitted.law.param_names)
    thetas = np.array([law.from_params(dict(zip(names, s))) for s in res.samples])
    preds = np.exp(law.log_predict(thetas, law.prepare(inputs)))  # every resample in one batched call
    q = (1 - level) / 2 * 100
    return np.nanpercentile(preds, [q, 100 - q], axis=0)


def _ylim_to_data(ax, lo: float, hi: float) -> None:
    """Limit the y axis to the measured range: fitted bands and extrapolations may run off, the data decides."""
    ax.set_ylim(lo - 0.05 * (hi - lo) - 0.02, hi + 0.1 * (hi - lo) + 0.02)


def _irreducible(ax, df: pd.DataFrame) -> float | None:
    """Draw the data's exact irreducible loss (synthetic language) when the results carry it."""
    e = exact_irreducible(df)
    if e is not None:
        ax.axhline(e, color="0.3", ls=":", lw=1, label=f"irreducible E = {e:.3f} (exact)")
    return e


@FIGURES.register("loss_vs_tokens")
def loss_vs_tokens(df: pd.DataFrame, fits: dict) -> tuple[Any, str] | None:
    sup = supervised_rows(df)
    if sup.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=STYLE["figsize"])
    fitted = fit_of(fits, "supervised", "chinchilla")
    sizes = sorted(sup["N_S"].unique())
    banded = False
    d = np.geomspace(sup["D_S"].min() / 2, sup["D_S"].max() * 4, 120)
    for c, n in zip(_colors(len(sizes)), sizes):
        g = sup[sup["N_S"] == n].sort_values("D_S")
        ax.scatter(g["D_S"], g["loss"], color=c, s=STYLE["marker_size"], zorder=3, label=f"N = {fmt_count(n)}")
        if fitted is not None:
            ax.plot(d, fitted.law.predict(fitted.result.params, N=np.full_like(d, n), D=d), color=c, lw=1.4)
            band = _band(fitted, {"N": np.full_like(d, n), "D": d})
            if band is not None:
                ax.fill_between(d, band[0], band[1], color=c, alpha=STYLE["band_alpha"], lw=0)
                banded = True
    floor = _irreducible(ax, df)
    lo = min(float(sup["loss"].min()), floor if floor is not None else np.inf)
    hi = float(sup["loss"].max())
    _ylim_to_data(ax, lo, hi)
    ax.set_xscale("log")
    ax.set_xlabel("training tokens D (log scale)")
    ax.set_ylabel("held-out cross-entropy L (nats/token)")
    ax.legend(fontsize=8, frameon=False)
    cap = "Held-out loss of supervised runs against tokens, one colour per model size"
    if fitted is not None:
        cap += f"; lines: the fitted {fitted.spec.law} law ({fitted.name})"
        cap += ", bands: its 90% bootstrap interval" if banded else ""
    return fig, cap + "."


@FIGURES.register("capacity_gap")
def capacity_gap(df: pd.DataFrame, fits: dict) -> tuple[Any, str] | None:
    kd = kd_rows(df)
    if kd.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=STYLE["figsize"])
    fitted = fit_of(fits, "distillation")
    keys = sorted({(n, d) for n, d in zip(kd["N_S"], kd["D_S"])})
    # no teacher is better than the data's irreducible loss: the curves start at E at the lowest (the exact E
    # when the runs carry it, else the supervised law's the distillation fit was fitted on), as the table's search
    e = exact_irreducible(df)
    if e is None and fitted is not None:
        e = float(supervised_params_of(fitted)["E"])
    lo = max(kd["L_T"].min() - 0.15, 1e-3)
    if e is not None and lo <= e:
        lo = e
        ax.axvline(e, color="0.3", ls=":", lw=1, label=f"E = {e:.3f}: no teacher below")
    lt = np.linspace(lo, kd["L_T"].max() + 0.3, 150)
    for c, (n, d) in zip(_colors(len(keys)), keys):
        g = kd[(kd["N_S"] == n) & (kd["D_S"] == d)].sort_values("L_T")
        ax.scatter(g["L_T"], g["loss"], color=c, s=STYLE["marker_size"], zorder=3,
                   label=f"N_S = {fmt_count(n)}, D_S = {fmt_count(d)}")
        if fitted is not None:
            ax.plot(lt, fitted.law.predict(fitted.result.params, N_S=np.full_like(lt, n), D_S=np.full_like(lt, d),
                                           L_T=lt), color=c, lw=1.2)
    ax.plot(lt, lt, color="0.5", ls="--", lw=1, label="student = teacher")
    ax.set_xlabel("teacher held-out loss L_T (nats/token)")
    ax.set_ylabel("student held-out loss L_S (nats/token)")
    ax.legend(fontsize=7, frameon=False, ncol=2)
    cap = "Distilled students' loss against their teacher's loss, one colour per student size and budget"
    if fitted is not None:
        cap += f"; lines: the fitted distillation law (Busbridge et al. eq. 8, {fitted.name})"
    return fig, cap + ". A U-shape is the capacity gap: a stronger teacher is not always a better one."


@FIGURES.register("crossover")
def crossover(df: pd.DataFrame, fits: dict) -> tuple[Any, str] | None:
    sup, kd = supervised_rows(df), kd_rows(df)
    if sup.empty or kd.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=STYLE["figsize"])
    fd = fit_of(fits, "distillation")
    # the supervised curve is the one the distillation law was fitted against (its L~_S), when there is one
    sup_params, sup_law = ((supervised_params_of(fd), get_law("supervised")) if fd is not None else
                           ((fs.result.params, fs.law) if (fs := fit_of(fits, "supervised", "chinchilla"))
                            else (None, None)))
    best_lt = float(kd["L_T"].min())
    sizes = sorted(kd["N_S"].unique())
    d = np.geomspace(min(sup["D_S"].min(), kd["D_S"].min()) / 2, max(sup["D_S"].max(), kd["D_S"].max()) * 30, 150)
    for c, n in zip(_colors(len(sizes)), sizes):
        s = sup[sup["N_S"] == n].sort_values("D_S")
        k = kd[(kd["N_S"] == n) & np.isclose(kd["L_T"], best_lt)].sort_values("D_S")
        ax.scatter(s["D_S"], s["loss"], color=c, marker="o", s=STYLE["marker_size"], zorder=3,
                   label=f"N = {fmt_count(n)} supervised")
        ax.scatter(k["D_S"], k["loss"], color=c, marker="^", s=STYLE["marker_size"], zorder=3,
                   label=f"N = {fmt_count(n)} KD")
        if sup_params is not None:
            ax.plot(d, sup_law.predict(sup_params, N=np.full_like(d, n), D=d), color=c, lw=1.3)
        if fd is not None:
            ax.plot(d, fd.law.predict(fd.result.params, N_S=np.full_like(d, n), D_S=d, L_T=np.full_like(d, best_lt)),
                    color=c, lw=1.3, ls="--")
    ax.axhline(best_lt, color="0.4", ls="-.", lw=1, label=f"teacher L_T = {best_lt:.3f}")
    floor = _irreducible(ax, df)
    both = pd.concat([sup["loss"], kd["loss"]])
    lo, hi = min(float(both.min()), floor or np.inf, best_lt), float(both.max())
    _ylim_to_data(ax, lo, hi)
    ax.set_xscale("log")
    ax.set_xlabel("student tokens D_S (log scale)")
    ax.set_ylabel("held-out loss (nats/token)")
    ax.legend(fontsize=7, frameon=False, ncol=2)
    return fig, (f"Supervised (circles, solid: supervised law) against distillation from the strongest teacher "
                 f"(triangles, dashed: distillation law at L_T = {best_lt:.3f}), extrapolated 30x beyond the "
                 f"largest budget: where the curves cross, supervised training catches up.")


@FIGURES.register("residuals")
def residuals(df: pd.DataFrame, fits: dict) -> tuple[Any, str] | None:
    if not fits:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=STYLE["figsize"])
    for c, f in zip(_colors(len(fits)), fits.values()):
        pred = f.law.predict(f.result.params, f.points)
        r = np.log(pred) - np.log(f.points["loss"].to_numpy(dtype=float))
        ax.scatter(f.law.compute(f.points), r * 100, color=c, s=STYLE["marker_size"], label=f"{f.name} ({f.spec.law})")
    ax.axhline(0, color="0.3", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("training compute 6·N·D (FLOPs, log scale)")
    ax.set_ylabel("log residual, log L_fit − log L_obs (%)")
    ax.legend(fontsize=8, frameon=False)
    return fig, "Fit residuals in log space (percent of the loss) against each run's training compute."


@FIGURES.register("method_bars")
def method_bars(df: pd.DataFrame, fits: dict) -> tuple[Any, str] | None:
    bench = [c for c in df.columns if c.startswith("benchmarks.") and df[c].notna().any()]
    metrics = bench or ["loss"]
    students = df[df["method"].notna()] if "method" in df else df
    if students.empty:
        return None
    plt = _plt()
    fig, axes = plt.subplots(len(metrics), 1, figsize=(STYLE["figsize"][0] * 1.3, 3.2 * len(metrics)), squeeze=False)
    label = students.apply(lambda r: r["method"] + (f" (T L={r['L_T']:.2f})" if pd.notna(r.get("L_T")) else ""), axis=1)
    students = students.assign(_variant=label, _cell=students.apply(
        lambda r: f"N={fmt_count(r['N_S'])}\nD={fmt_count(r['D_S'])}", axis=1))
    variants = sorted(students["_variant"].unique(), key=lambda v: (not v.startswith("supervised"), v))
    cells = list(dict.fromkeys(students.sort_values(["N_S", "D_S"])["_cell"]))
    width = 0.8 / len(variants)
    for ax, m in zip(axes[:, 0], metrics):
        for j, (c, v) in enumerate(zip(_colors(len(variants)), variants)):
            g = students[students["_variant"] == v].groupby("_cell")[m].mean()
            x = [i + (j - (len(variants) - 1) / 2) * width for i, cell in enumerate(cells) if cell in g.index]
            ax.bar(x, [g[cell] for cell in cells if cell in g.index], width=width, color=c, label=v)
        ax.set_xticks(range(len(cells)), cells, fontsize=7)
        ax.set_ylabel("held-out loss (nats/token)" if m == "loss" else m.removeprefix("benchmarks."))
        if m == "loss":
            _irreducible(ax, df)
            lo = min(students[m].min(), exact_irreducible(df) or np.inf)
            ax.set_ylim(lo - 0.1 * (students[m].max() - lo) - 0.02, None)
        ax.legend(fontsize=7, frameon=False, ncol=min(len(variants), 4))
    what = "held-out loss (lower is better)" if metrics == ["loss"] else "each benchmark"
    return fig, f"Method comparison on {what}, per student size and budget."


@FIGURES.register("forgetting")
def forgetting(df: pd.DataFrame, fits: dict) -> tuple[Any, str] | None:
    """General-ability score across continual-learning tasks (columns `stage` and `benchmarks.*`)."""
    if "stage" not in df or not any(c.startswith("benchmarks.") for c in df.columns):
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=STYLE["figsize"])
    metrics = [c for c in df.columns if c.startswith("benchmarks.")]
    methods = sorted(df["method"].dropna().unique())
    for c, m in zip(_colors(len(methods)), methods):
        g = df[df["method"] == m].groupby("stage")[metrics].mean().mean(axis=1)
        ax.plot(g.index, g.values, marker="o", color=c, label=m)
    ax.set_xlabel("continual-learning stage (tasks learned)")
    ax.set_ylabel("mean general-benchmark score")
    ax.legend(fontsize=8, frameon=False)
    return fig, "Forgetting: mean general-ability score after each task, per method."


@FIGURES.register("isoflop")
def isoflop_profiles(df: pd.DataFrame, fits: dict) -> tuple[Any, str] | None:
    """Approach 2's isoFLOP profiles (loss against N at each compute level, with the fitted parabolas) and
    the optima of approaches 1-3 against compute."""
    res = approaches(df, fits, bootstrap=0)
    iso = res.get("isoflop")
    if iso is None or isinstance(iso, str):
        return None
    pts = iso.points   # the runs approach 2 used: seeds averaged, each with its compute level
    sup = pts[pts.groupby("level")["N"].transform("nunique") >= 3]   # isoFLOP levels, not stray runs
    plt = _plt()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(STYLE["figsize"][0] * 1.7, STYLE["figsize"][1]))
    levels = iso.levels.set_index("level")
    for c, (lvl, g) in zip(_colors(sup["level"].nunique()), sup.groupby("level")):
        g = g.sort_values("N")
        row = levels.loc[lvl]
        ax.scatter(g["N"], g["loss"], color=c, s=STYLE["marker_size"], zorder=3, label=f"C = {row['C']:.2g}")
        if g["N"].nunique() >= 3:
            x = np.log(g["N"].to_numpy(float))
            c2, c1, c0 = fit_parabola(x, g["loss"].to_numpy(float))
            xs = np.linspace(x.min() - 0.2, x.max() + 0.2, 100)
            ax.plot(np.exp(xs), c2 * xs ** 2 + c1 * xs + c0, color=c, lw=1.2, ls="-" if row["used"] else ":")
            if row["used"]:
                ax.scatter([row["N_opt"]], [row["loss_min"]], color=c, marker="*", s=120, edgecolor="k", zorder=4)
    _irreducible(ax, df)
    ax.set_xscale("log")
    ax.set_xlabel("non-embedding parameters N (log scale)")
    ax.set_ylabel("held-out loss (nats/token)")
    ax.legend(fontsize=7, frameon=False)
    cs = np.geomspace(sup["C"].min() / 1.5, sup["C"].max() * 1.5, 50)
    marks = {"envelope": ("s", "approach 1 (envelope)"), "isoflop": ("*", "approach 2 (isoFLOP)"),
             "parametric": (None, "approach 3 (parametric)")}
    for color, (name, (marker, label)) in zip(("tab:blue", "tab:orange", "tab:green"), marks.items()):
        r = res.get(name)
        if r is None or isinstance(r, str):
            continue
        if r.levels is not None:
            u = r.levels[r.levels["used"]]
            bx.scatter(u["C"], u["N_opt"], color=color, marker=marker, s=60, zorder=3)
        bx.plot(cs, r.optimal(cs)[0], color=color, lw=1.3, label=f"{label}: a = {r.a:.2f}")
    bx.set_xscale("log")
    bx.set_yscale("log")
    bx.set_xlabel("training compute C = 6ND (FLOPs)")
    bx.set_ylabel("compute-optimal N_opt")
    bx.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig, ("Left: isoFLOP profiles, the supervised runs' held-out loss against size at each compute level, with "
                 "the parabola in ln N that approach 2 fits (stars: its minimum; dotted: a level left out). Right: "
                 "the compute-optimal size against compute by approaches 1 (best run per level), 2 (parabola "
                 "minima) and 3 (the parametric law's closed form), with the fitted N_opt ∝ C^a.")
