"""`suite demo`: the quickstart. Runs sweeps/quickstart.yaml with the local executor (a teacher, then
students of 3 sizes × 2 budgets × {supervised, kd} on the synthetic language), collects
runs/quickstart/results.parquet and prints held-out losses, supervised beside KD.

    suite demo                              # ~7 minutes on 2 CPU cores; rerunning resumes
    suite demo --grid sweeps/my.yaml --executor slurm
"""
from __future__ import annotations

from pathlib import Path

QUICKSTART = "sweeps/quickstart.yaml"


def find(path: str | Path) -> Path:
    """A path relative to the working directory, else to the repository this package lives in."""
    p = Path(path)
    if p.exists() or p.is_absolute():
        return p
    return Path(__file__).resolve().parent.parent / p


def demo(grid: str | Path = QUICKSTART, executor: str = "local", runs: str | Path = "runs",
         progress: bool = True):
    import pandas as pd

    from .sweep import collect, open_sweep, submit

    sw = open_sweep(find(grid), runs=runs)
    submit(sw, executor=executor, progress=progress)
    df = pd.read_parquet(collect(sw))
    print()
    print(comparison_table(df))
    return df


def comparison_table(df) -> str:
    """Held-out loss of each student size and budget, supervised beside KD, with the teacher and E."""
    if df.empty:
        return "(no finished cells)"
    lines = []
    teachers = df[df.group == "teacher"] if "group" in df else df.iloc[:0]
    for _, t in teachers.iterrows():
        lines.append(f"teacher {t['name']}: N = {t['N_S']:,}, D = {t['D_S']:,}, held-out loss {t['loss']:.4f}")
    if "bayes_loss" in df and df["bayes_loss"].notna().any():
        lines.append(f"irreducible loss E (exact, synthetic language): {df['bayes_loss'].dropna().iloc[0]:.4f} nats/token")
    students = df[df.group != "teacher"] if "group" in df else df
    head = f"{'student':<10} {'N_S':>9} {'D_S':>9} {'supervised':>11} {'kd':>9} {'kd - sup':>9}"
    lines += ["", head, "-" * len(head)]
    for (student, n, d), g in students.groupby(["student", "N_S", "D_S"], sort=False):
        sup = g.loc[g.method == "supervised", "loss"]
        kd = g.loc[g.method == "kd", "loss"]
        s = f"{sup.iloc[0]:.4f}" if len(sup) else "-"
        k = f"{kd.iloc[0]:.4f}" if len(kd) else "-"
        diff = f"{kd.iloc[0] - sup.iloc[0]:+.4f}" if len(sup) and len(kd) else "-"
        lines.append(f"{student:<10} {n:>9,} {d:>9,} {s:>11} {k:>9} {diff:>9}")
    return "\n".join(lines)
