"""Report pieces for continual-learning sweeps (GeRe and its baselines): tables, figures, headline lines.

    figures: [continual_general, continual_accuracy]    tables: [continual, continual_stages]

They read the stage cells of a results table (columns `continual.*`, one row per stage cell; the base model
is the row that the stages' `continual.general_loss_base` describes). A variant is a method with its LoRA rank
and constraint weight ("gere w=100", "gere LoRA r8 w=dy"); seeds are averaged and their spread is the
sample standard deviation (± in the tables, bands in the figures). F1 is the GeRe paper's: the harmonic mean of
MMLU accuracy and AP, shown when the stages measured MMLU. "F1 (retention)" puts the general retention
exp(L_base − L) in MMLU's place: our loss-based score, for every stage, not comparable to the paper's F1.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .figures import STYLE, _plt
from .registries import FIGURES, HEADLINES, TABLES, Headline
from .tables import fmt

STAGE = "continual.stage"
_METRICS = {  # column -> (label in tables, digits)
    "continual.general_loss": ("general loss", 3),
    "continual.general_loss_nobos": ("general loss, no BOS", 3),
    "continual.general_retention": ("retention", 3),
    "continual.ap": ("AP", 3),
    "continual.forgetting": ("forgetting", 3),
    "continual.f1": ("F1 (MMLU, AP)", 3),   # the paper's F1; computed by stage_rows when the stages measured MMLU
    "continual.f1_retention": ("F1 (retention, AP)", 3),
    "last_task_acc": ("last-task acc", 3),
    "benchmarks.mmlu.overall": ("MMLU", 3),
}


def stage_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The stage cells with a `variant` label, `seed` and the accuracy on each stage's own task."""
    if STAGE not in df or df[STAGE].isna().all():
        return df.iloc[0:0]
    rows = df[df[STAGE].notna()].copy()
    rows[STAGE] = rows[STAGE].astype(int)
    rows["variant"] = rows.apply(_variant, axis=1)
    seed = "config.train.seed"
    rows["seed"] = rows[seed] if seed in rows else 0
    rows["last_task_acc"] = rows.apply(lambda r: r.get(f"continual.accuracy.{r['continual.task']}"), axis=1)
    from ..continual.metrics import harmonic_mean

    if "continual.f1_retention" not in rows and "continual.f1" in rows:
        rows["continual.f1_retention"] = rows["continual.f1"]  # results written when `f1` meant the retention's
    mmlu = rows["benchmarks.mmlu.overall"] if "benchmarks.mmlu.overall" in rows else [None] * len(rows)
    rows["continual.f1"] = [harmonic_mean(m, a) for m, a in zip(mmlu, rows["continual.ap"])]
    rows["continual.f1"] = rows["continual.f1"].astype(float)
    return rows


def _variant(r) -> str:
    lora = r.get("continual.lora")
    w = r.get("method_params.weight")
    s = str(r["method"])
    if pd.notna(lora) and lora:
        s += f" LoRA r{int(lora)}"
    if w is not None and not (isinstance(w, float) and np.isnan(w)):
        try:
            w = f"{float(w):g}"
        except ValueError:
            pass
        s += f" w={w}"
    return s


def _order(variants) -> list[str]:
    rank = {"seq-ft": 0, "replay": 1, "replay-kl": 2, "replay-l1": 3, "replay-l2": 4, "gere": 5}
    return sorted(variants, key=lambda v: ("LoRA" in v, rank.get(v.split()[0], 9), v))


def _base_loss(rows: pd.DataFrame, col: str = "continual.general_loss_base") -> float | None:
    vals = rows[col].dropna() if col in rows else pd.Series(dtype=float)
    return float(vals.iloc[0]) if len(vals) else None


def _final(rows: pd.DataFrame) -> pd.DataFrame:
    k = rows["continual.n_stages"].max() if "continual.n_stages" in rows else rows[STAGE].max()
    return rows[rows[STAGE] == k]


@TABLES.register("continual")
def continual_table(df: pd.DataFrame, fits: dict) -> tuple[pd.DataFrame, pd.DataFrame, str] | None:
    rows = stage_rows(df)
    if rows.empty:
        return None
    final = _final(rows)
    cols = [c for c in _METRICS if c in final and final[c].notna().any()]
    raw_rows, shown_rows = [], []
    base, base_nb = _base_loss(rows), _base_loss(rows, "continual.general_loss_nobos_base")
    if base is not None:
        raw_rows.append({"variant": "base model (before task 1)", "seeds": 1, "continual.general_loss.mean": base,
                         "continual.general_loss_nobos.mean": base_nb})
        shown_rows.append({"method": "base model (before task 1)", "seeds": "–",
                           **{_METRICS[c][0]: "–" for c in cols},
                           "general loss": fmt(base, 3) if "continual.general_loss" in cols else "–",
                           **({"general loss, no BOS": fmt(base_nb, 3)} if "continual.general_loss_nobos" in cols
                              and base_nb is not None else {})})
    for v in _order(final["variant"].unique()):
        g = final[final["variant"] == v]
        rec, show = {"variant": v, "seeds": int(g["seed"].nunique())}, {"method": v, "seeds": str(g["seed"].nunique())}
        for c in cols:
            m, s = g[c].mean(), g[c].std(ddof=1)
            rec[f"{c}.mean"], rec[f"{c}.std"] = m, s
            label, digits = _METRICS[c]
            show[label] = f"{m:.{digits}f}" + (f" ± {s:.{digits}f}" if len(g) > 1 and np.isfinite(s) else "")
        raw_rows.append(rec)
        shown_rows.append(show)
    k = int(final[STAGE].max())
    return (pd.DataFrame(shown_rows), pd.DataFrame(raw_rows),
            f"After the last task (stage {k}): general held-out loss (nats/token; with BOS as in pretraining, and "
            f"without, the replay rows' format), retention exp(L_base − L), average accuracy over the {k} tasks "
            f"(AP), forgetting, F1 of the retention and AP (our loss-based score; the paper's F1, of MMLU and AP, "
            f"where the stages measured MMLU) and the accuracy on the last task; mean ± standard deviation over "
            f"seeds.")


@TABLES.register("continual_stages")
def continual_stages(df: pd.DataFrame, fits: dict) -> tuple[pd.DataFrame, pd.DataFrame, str] | None:
    rows = stage_rows(df)
    if rows.empty:
        return None
    g = rows.groupby(["variant", STAGE])
    raw = g.agg(task=("continual.task", "first"), general_loss=("continual.general_loss", "mean"),
                general_loss_std=("continual.general_loss", "std"), ap=("continual.ap", "mean"),
                ap_std=("continual.ap", "std"), last_task_acc=("last_task_acc", "mean"),
                seeds=("seed", "nunique")).reset_index()
    raw["_o"] = raw["variant"].map({v: i for i, v in enumerate(_order(raw["variant"].unique()))})
    raw = raw.sort_values(["_o", STAGE]).drop(columns="_o").rename(columns={STAGE: "stage"})
    shown = raw[["variant", "stage", "task"]].copy()
    shown["general loss"] = [f"{m:.3f} ± {s:.3f}" if np.isfinite(s) else f"{m:.3f}"
                             for m, s in zip(raw["general_loss"], raw["general_loss_std"])]
    shown["AP"] = [f"{m:.3f} ± {s:.3f}" if np.isfinite(s) else f"{m:.3f}" for m, s in zip(raw["ap"], raw["ap_std"])]
    shown["acc on this task"] = raw["last_task_acc"].map(lambda v: fmt(v, 3))
    return shown, raw, ("Every stage: general held-out loss, AP over the tasks learned so far, and the accuracy on "
                        "the task just learned (mean ± standard deviation over seeds).")


def _by_stage(rows: pd.DataFrame, col: str, base: float | None):
    """{variant: (stages, mean, lo, hi)}: min-max over seeds; stage 0 is the base model when `base` is given."""
    out = {}
    for v in _order(rows["variant"].unique()):
        g = rows[rows["variant"] == v].groupby(STAGE)[col]
        st, m, lo, hi = list(g.mean().index), list(g.mean()), list(g.min()), list(g.max())
        if base is not None:
            st, m, lo, hi = [0] + st, [base] + m, [base] + lo, [base] + hi
        out[v] = (np.array(st), np.array(m), np.array(lo), np.array(hi))
    return out


def _lines(ax, series: dict, ylabel: str) -> None:
    from matplotlib.ticker import MaxNLocator

    colors = _plt().get_cmap("tab10").colors  # methods are categories: one distinct colour each
    for c, (v, (st, m, lo, hi)) in zip(colors * 2, series.items()):
        ls = "--" if "LoRA" in v else "-"
        ax.plot(st, m, marker="o", ms=3, color=c, ls=ls, label=v)
        ax.fill_between(st, lo, hi, color=c, alpha=STYLE["band_alpha"], lw=0)
    ax.set_xlabel("tasks learned (stage)")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


@FIGURES.register("continual_general")
def continual_general(df: pd.DataFrame, fits: dict) -> tuple[Any, str] | None:
    """General ability after each task of a continual-learning sequence, per method (stage 0: the base)."""
    rows = stage_rows(df)
    if rows.empty:
        return None
    plt = _plt()
    panels = [("continual.general_loss", "continual.general_loss_base", "general held-out loss (nats/token)")]
    if "continual.general_loss_nobos" in rows and rows["continual.general_loss_nobos"].notna().any():
        panels.append(("continual.general_loss_nobos", "continual.general_loss_nobos_base",
                       "general held-out loss, no BOS"))
    fig, axes = plt.subplots(1, len(panels), figsize=(STYLE["figsize"][0] * 0.8 * len(panels), STYLE["figsize"][1]),
                             squeeze=False)
    for ax, (col, base_col, label) in zip(axes[0], panels):
        from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

        _lines(ax, _by_stage(rows, col, _base_loss(rows, base_col)), label)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
    axes[0, 0].legend(fontsize=7, frameon=False)
    return fig, ("General ability after each task: held-out cross-entropy of the general corpus (log scale; left: "
                 "documents with BOS as in pretraining; right: without, as the replay rows are), stage 0 is the base "
                 "model; lines: mean over seeds, bands: min-max; dashed: LoRA.")


@FIGURES.register("continual_accuracy")
def continual_accuracy(df: pd.DataFrame, fits: dict) -> tuple[Any, str] | None:
    rows = stage_rows(df)
    if rows.empty:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(STYLE["figsize"][0] * 1.6, STYLE["figsize"][1]), squeeze=False)
    _lines(axes[0, 0], _by_stage(rows, "continual.ap", None), "AP: mean accuracy over tasks learned so far")
    _lines(axes[0, 1], _by_stage(rows, "last_task_acc", None), "accuracy on the task just learned")
    for ax in axes[0]:
        ax.set_ylim(-0.03, 1.03)
    axes[0, 0].legend(fontsize=7, frameon=False)
    return fig, ("Task accuracy (exact match of the generated label) after each task: the average over every task "
                 "learned so far (left) and on the task just learned (right); mean over seeds, bands: min-max.")


def headline_lines(df: pd.DataFrame, nums: dict) -> list[str]:
    """Sentences for the report's headline, and their numbers in `nums` (summary.json)."""
    rows = stage_rows(df)
    if rows.empty:
        return []
    final = _final(rows)
    base = _base_loss(rows)
    k = int(final[STAGE].max())
    stats = {}
    for v in _order(final["variant"].unique()):
        g = final[final["variant"] == v]
        stats[v] = {c.split(".")[-1]: (float(g[c].mean()), float(g[c].std(ddof=1)) if len(g) > 1 else None)
                    for c in ("continual.general_loss", "continual.general_loss_nobos", "continual.ap",
                              "continual.forgetting", "last_task_acc") if c in g and g[c].notna().any()}
        stats[v]["seeds"] = int(g["seed"].nunique())
    nums["continual"] = {"stages": k, "base_general_loss": base, "final": stats,
                         "source": "tables/continual.csv (stage cells of the last task, seeds averaged)"}
    lines = [f"Base model: general held-out loss {base:.3f} nats/token before the first task."] if base else []
    lines.append(f"After {k} tasks (mean over seeds), general loss / AP: " + "; ".join(
        f"{v} {s['general_loss'][0]:.3f} / {s['ap'][0]:.3f}" for v, s in stats.items()
        if "general_loss" in s and "ap" in s) + ".")
    plain = {v: s["general_loss_nobos"][0] for v, s in stats.items() if "general_loss_nobos" in s}
    base_nb = _base_loss(rows, "continual.general_loss_nobos_base")
    if plain and base_nb is not None:
        lines.append(f"The same held-out documents without BOS (the replay samples' format): base {base_nb:.3f}; "
                     + "; ".join(f"{v} {x:.3f}" for v, x in plain.items()) + ".")
    full = {v: s for v, s in stats.items() if "LoRA" not in v}
    gere = next((v for v in full if v.startswith("gere")), None)
    sft = next((v for v in full if v.startswith("seq-ft")), None)
    others = [v for v in full if v.split()[0] in ("replay", "replay-kl", "replay-l1", "replay-l2")]
    if gere and sft and base is not None and others:
        g_rise = full[gere]["general_loss"][0] - base
        s_rise = full[sft]["general_loss"][0] - base
        best_other = min(others, key=lambda v: full[v]["general_loss"][0])
        o_rise = full[best_other]["general_loss"][0] - base
        ap_g = full[gere]["ap"][0]
        ap_o = {v: full[v]["ap"][0] for v in others}
        spread = max((full[v]["ap"][1] or 0.0) for v in [gere, *others])
        keeps = g_rise < 0.5 * s_rise and g_rise <= o_rise
        no_worse = ap_g >= max(ap_o.values()) - spread
        nums["continual"]["claim"] = {"gere_rise": g_rise, "seq_ft_rise": s_rise, "best_other_replay": best_other,
                                      "best_other_rise": o_rise, "gere_ap": ap_g, "other_ap": ap_o,
                                      "ap_spread": spread, "keeps_general": keeps, "ap_no_worse": no_worse}
        lines.append(
            f"The paper's claim, tested on full fine-tuning: general loss rises by {g_rise:+.3f} nats with GeRe "
            f"({gere}), {s_rise:+.3f} with sequential FT and {o_rise:+.3f} with the best other replay method "
            f"({best_other}); criterion 'GeRe rises less than half as much as sequential FT and no more than any "
            f"other replay method': {'met' if keeps else 'NOT met'}. GeRe's AP {ap_g:.3f} vs the other replay "
            f"methods' " + ", ".join(f"{v} {a:.3f}" for v, a in ap_o.items())
            + f"; criterion 'no worse than the best of them minus the largest seed spread ({spread:.3f})': "
            + f"{'met' if no_worse else 'NOT met'}.")
    return lines


HEADLINES.register("continual", Headline(20, lambda df, fits, nums: headline_lines(df, nums)))
