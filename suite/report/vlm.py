"""Report pieces for vision-language distillation sweeps (GenRecal and its baselines): tables, figure, headline.

    figures: [vlm_benchmarks]    tables: [vlm, vlm_stages]

They read the VLM cells of a results table (columns `vlm.*`, one row per cell). A variant is the student with
its method: "tiny-qwen2vl baseline" (epochs 0: the student before training), "SFT", "KD (forward_kl)" (with
", λ 0.5: SFT + KD" when the hard-label CE is mixed in), "MiniLLM (on-policy)", "DistiLLM (on-policy, skew_kl)",
"GenRecal (L_reg ce+kl)" and "LLaVA-KD (DPT → SFT → DFT)" (their stage-3 cells; the stage table shows every
stage); " · App. F teacher answers" when the cell trained on the teacher's detailed answers. Seeds are averaged;
± is the sample standard deviation over seeds. Benchmarks are percentages (VLMEvalKit's scale); the held-out loss is
the student's cross-entropy on the answer tokens of held-out items (nats per student token).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .figures import _plt
from .flags import benchmark_flags, flag_mark, item_stderr, marks
from .registries import FIGURES, HEADLINES, TABLES, Headline

KIND = "vlm.method"
_METRICS = {  # column -> (label, digits)
    "benchmarks.ai2d.overall": ("AI2D %", 1),
    "benchmarks.mathvista.overall": ("MathVista %", 1),
    "benchmarks.mmvet.overall": ("MM-Vet", 1),
    "loss": ("held-out answer CE", 3),
}
_STAGE_METRICS = {**_METRICS, "vlm.heldout_main_ce": ("Recalibrator CE (teacher tokens)", 3),
                  "vlm.heldout_main_kl": ("Recalibrator KL", 4)}


def vlm_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The VLM cells with `variant`, `seed` and `stage` columns."""
    if KIND not in df or df[KIND].isna().all():
        return df.iloc[0:0]
    rows = df[df[KIND].notna()].copy()
    rows["seed"] = rows["config.train.seed"] if "config.train.seed" in rows else 0
    rows["stage"] = rows["vlm.stage"].fillna(0).astype(int) if "vlm.stage" in rows else 0
    teachers = {t[len("cell:"):] for t in df.get("teacher", pd.Series(dtype=object)).dropna()
                if isinstance(t, str) and t.startswith("cell:")}
    rows["variant"] = [(f"{r['student']} teacher (SFT)" if r.get("cell_id") in teachers else _variant(r)) + _answers(r)
                       for _, r in rows.iterrows()]
    return rows


def _answers(r) -> str:
    """What the cell trained on, where not the benchmark's short answers (GenRecal App. F)."""
    a = r.get("vlm.answers")
    return {"detailed": " · detailed answers", "teacher": " · App. F teacher answers"}.get(a, "") \
        if isinstance(a, str) else ""


def _param(r, key: str, default=None):
    """A method parameter as the loss used it: the resolved value (results since method_params_resolved), else
    the configured one, else `default` (the method's default, for results written before)."""
    for col in (f"method_params_resolved.{key}", f"method_params.{key}"):
        v = r.get(col)
        if not (v is None or (isinstance(v, float) and np.isnan(v))):
            return v
    return default


def _variant(r) -> str:
    student = str(r.get("student"))
    epochs = r.get("config.vlm.epochs")
    if r[KIND] == "supervised":
        return f"{student} baseline (untrained)" if epochs == 0 else f"{student} SFT"
    if r[KIND] == "kd":
        lam = float(_param(r, "kd_weight", 1.0))
        mix = f", λ {lam:g}: SFT + KD" if lam < 1 else ""
        return f"{student} KD ({_param(r, 'divergence', 'forward_kl')}{mix})"
    if r[KIND] == "minillm":
        return f"{student} MiniLLM (on-policy)"
    if r[KIND] == "distillm":
        return f"{student} DistiLLM (on-policy, {_param(r, 'divergence', 'skew_kl')})"
    if r[KIND] == "llavakd":
        return f"{student} LLaVA-KD (DPT → SFT → DFT)"
    return f"{student} GenRecal (L_reg {_param(r, 'regularization', 'ce+kl')})"


def _order(variants) -> list[str]:
    rank = {"teacher": -1, "baseline": 0, "SFT": 1, "KD": 2, "MiniLLM": 3, "DistiLLM": 4, "LLaVA-KD": 5,
            "GenRecal": 6}

    def key(v: str):
        student, _, rest = v.partition(" ")
        return student, next((k for w, k in rank.items() if rest.startswith(w)), 9), v

    return sorted(variants, key=key)


# A staged method's cells (GenRecal, LLaVA-KD: VLMMethod.staged) record their stage, 1-3, in vlm.stage; every other
# VLM cell records 0. The last stage is the student's result.


def _final(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per seed and variant: a staged method's (GenRecal, LLaVA-KD) last stage, every other cell as it is."""
    gen = rows[rows["stage"] > 0]
    last = gen[gen["stage"] == gen.groupby("variant")["stage"].transform("max")] if not gen.empty else gen
    return pd.concat([rows[rows["stage"] <= 0], last])


def _summarize(g: pd.DataFrame, cols, metrics, marked: dict | None = None) -> tuple[dict, dict]:
    """Mean ± SD over seeds; for benchmark scores also the cells' standard error over items (`se`, the root mean
    square of the seeds' SEs) and ⚑k/n when k of the n seeds' scores are flagged (report/flags.py)."""
    rec, show = {"seeds": int(g["seed"].nunique())}, {"seeds": str(g["seed"].nunique())}
    ids = g["cell_id"].astype(str) if "cell_id" in g else g.index.astype(str)
    for c in cols:
        m, s = g[c].mean(), g[c].std(ddof=1)
        rec[f"{c}.mean"], rec[f"{c}.std"] = m, s
        label, digits = metrics[c]
        text = ("–" if pd.isna(m) else f"{m:.{digits}f}" +
                (f" ± {s:.{digits}f}" if len(g) > 1 and np.isfinite(s) else ""))
        if c.startswith("benchmarks.") and c.endswith(".overall"):
            se = item_stderr(g, c.split(".")[1])
            rec[f"{c}.item_se"] = float(np.sqrt((se ** 2).mean())) if se.notna().any() else np.nan
            if np.isfinite(rec[f"{c}.item_se"]) and pd.notna(m) and m > 0:
                text += f" (se {rec[f'{c}.item_se']:.{digits}f})"
            k = sum(bool((marked or {}).get((i, c))) for i in ids)
            rec[f"{c}.flagged"] = k
            text += flag_mark(k, len(g))
        show[label] = text
    return rec, show


@TABLES.register("vlm")
def vlm_table(df: pd.DataFrame, fits: dict) -> tuple[pd.DataFrame, pd.DataFrame, str] | None:
    rows = vlm_rows(df)
    if rows.empty:
        return None
    final = _final(rows)
    cols = [c for c in _METRICS if c in final and final[c].notna().any()]
    raw, shown = [], []
    marked = marks(benchmark_flags(df))
    for v in _order(final["variant"].unique()):
        rec, show = _summarize(final[final["variant"] == v], cols, _METRICS, marked)
        raw.append({"variant": v, **rec})
        shown.append({"student / method": v, **show})
    return (pd.DataFrame(shown), pd.DataFrame(raw),
            "Toy benchmarks of every student (GenRecal: after its last stage): AI2D-format accuracy (exact "
            "matching of the option letter), MathVista-format accuracy (VLMEvalKit's rule-based prefetch, no "
            "judge; rows trained on detailed or App. F teacher answers reply at length, and the `rule` judge "
            "reads their final 'The answer is X.'), and the held-out answer cross-entropy (nats per student "
            "token, on the answers the row trained on: App. F rows' held-out answers are the teacher's, so "
            "compare their CE only with each other); mean ± standard deviation over seeds; (se x): the score's "
            "standard error over the benchmark's items (binomial, root mean square over the seeds); ⚑k/n: k of "
            "the n seeds' scores are flagged (one answer to every question, or within chance: see Flags). "
            "Differences between methods, with intervals and adjusted p, are in the comparison table.")


@TABLES.register("vlm_stages")
def vlm_stages(df: pd.DataFrame, fits: dict) -> tuple[pd.DataFrame, pd.DataFrame, str] | None:
    rows = vlm_rows(df)
    rows = rows[rows["stage"] > 0] if not rows.empty else rows  # no VLM cells: no stage column either
    if rows.empty:
        return None
    cols = [c for c in _STAGE_METRICS if c in rows and rows[c].notna().any()]
    marked = marks(benchmark_flags(df))
    raw, shown = [], []
    for v in _order(rows["variant"].unique()):
        for k in sorted(rows[rows["variant"] == v]["stage"].unique()):
            rec, show = _summarize(rows[(rows["variant"] == v) & (rows["stage"] == k)], cols, _STAGE_METRICS,
                                   marked)
            raw.append({"variant": v, "stage": int(k), **rec})
            shown.append({"variant": v, "after stage": str(int(k)), **show})
    return (pd.DataFrame(shown), pd.DataFrame(raw),
            "GenRecal and LLaVA-KD after each stage (the paper's Tab. 9 check: GenRecal's stage 1 trains only the "
            "Recalibrator, so the student still scores as the baseline; LLaVA-KD's stage 1 trains only the "
            "projector). The Recalibrator columns are its main path on held-out items, "
            "read through the teacher's frozen head: CE against the teacher's answer tokens and KL to the teacher's "
            "own answer distribution (stages 1 and 2; stage 3 has no Recalibrator).")


def _color(variant: str) -> str:
    """One colour per method family (the method is named after the student: "<student> <method ...>")."""
    method = variant.split(" ", 1)[1] if " " in variant else variant
    for key, color in (("baseline", "#999999"), ("teacher", "#555555"), ("GenRecal (L_reg none", "#C44E52"),
                       ("GenRecal", "#55A868"), ("LLaVA-KD", "#8172B3"), ("MiniLLM", "#937860"),
                       ("DistiLLM", "#937860"), ("KD", "#DD8452"), ("SFT", "#4C72B0")):
        if method.startswith(key):
            return color
    return "#4C72B0"


@FIGURES.register("vlm_benchmarks")
def vlm_benchmarks(df: pd.DataFrame, fits: dict) -> tuple[Any, str] | None:
    rows = vlm_rows(df)
    if rows.empty:
        return None
    final = _final(rows)
    cols = [c for c in _METRICS if c in final and final[c].notna().any()]
    if not cols:
        return None
    plt = _plt()
    order = _order(final["variant"].unique())
    fig, axes = plt.subplots(1, len(cols), figsize=(3.4 * len(cols), 0.32 * len(order) + 1.6), squeeze=False)
    y = np.arange(len(order))
    for ax, c in zip(axes[0], cols):
        g = final.groupby("variant")[c]
        mean, lo, hi = g.mean().reindex(order), g.min().reindex(order), g.max().reindex(order)
        bars = ax.barh(y, mean.values, color=[_color(v) for v in order], alpha=0.85)
        for bar, v in zip(bars, order):  # trained on detailed / App. F teacher answers: hatched
            if " · " in v:
                bar.set_hatch("//")
                bar.set_edgecolor("white")
        ax.errorbar(mean.values, y, xerr=[mean.values - lo.values, hi.values - mean.values], fmt="none",
                    ecolor="black", capsize=2, lw=0.8)
        for s in final["seed"].unique():  # each seed as a dot
            pts = final[final["seed"] == s].set_index("variant")[c].reindex(order)
            ax.scatter(pts.values, y, s=8, color="black", zorder=3)
        ax.set_title(_METRICS[c][0])
        ax.set_yticks(y)
        ax.set_yticklabels(order if ax is axes[0][0] else [], fontsize=7)
        ax.invert_yaxis()
    fig.tight_layout()
    return fig, ("Toy benchmarks per student and method (GenRecal and LLaVA-KD after stage 3): bars are the mean "
                 "over seeds, whiskers min–max, dots the seeds; hatched: trained on detailed or App. F teacher "
                 "answers. Lower is better for the held-out answer CE.")


def headline_lines(df: pd.DataFrame, nums: dict) -> list[str]:
    """Sentences for the report's headline (the paper's claims, checked), and their numbers in `nums`."""
    rows = vlm_rows(df)
    if rows.empty:
        return []
    final = _final(rows)
    cols = [c for c in _METRICS if c in final and final[c].notna().any()]
    stats = {v: {c.split(".")[-2] if c.startswith("benchmarks") else c: float(final[final["variant"] == v][c].mean())
                 for c in cols} for v in _order(final["variant"].unique())}
    nums["vlm"] = {"final": stats, "source": "tables/vlm.csv (GenRecal after its last stage, seeds averaged)"}

    def line(student: str) -> str | None:
        mine = {v.split(" ", 1)[1]: s for v, s in stats.items() if v.startswith(student + " ")}
        if not mine:
            return None
        parts = []
        for v, s in mine.items():
            vals = [f"{k} {s[k]:.1f}" for k in ("ai2d", "mathvista") if k in s]
            if "loss" in s:
                vals.append(f"CE {s['loss']:.3f}")
            parts.append(f"{v}: " + ", ".join(vals))
        return f"{student} (mean over seeds): " + "; ".join(parts) + "."

    lines = [ln for ln in (line(s) for s in sorted({v.split(" ")[0] for v in stats})) if ln]
    if lines:
        lines.append("These are means; a difference between two of them is only read from the comparison table "
                     "(seeds, 95% intervals, Holm-adjusted p, detectable effect), and a flagged score (⚑) from "
                     "none.")
    return lines


HEADLINES.register("vlm", Headline(30, lambda df, fits, nums: headline_lines(df, nums)))
