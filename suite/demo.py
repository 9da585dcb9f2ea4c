"""`suite demo`: the quickstart, end to end. Runs sweeps/quickstart.yaml with the local executor (supervised
isoFLOP profiles at 2 compute levels x 5 sizes, two teachers, KD students of 2 sizes x 3 budgets from each
beside their supervised baselines, on the `facts` world), collects runs/quickstart/results.parquet, prints
supervised beside KD, then fits the scaling laws and writes the report of analysis/quickstart.yaml to
reports/quickstart/.

    suite demo                              # 7.5 minutes on 2 CPU cores (29 cells); rerunning resumes
    suite demo --grid sweeps/my.yaml --executor slurm --analysis analysis/my.yaml
"""
from __future__ import annotations

from pathlib import Path

QUICKSTART = "sweeps/quickstart.yaml"
ANALYSIS = "analysis/quickstart.yaml"


def find(path: str | Path) -> Path:
    """A path relative to the working directory, else to the repository this package lives in."""
    p = Path(path)
    if p.exists() or p.is_absolute():
        return p
    return Path(__file__).resolve().parent.parent / p


def demo(grid: str | Path = QUICKSTART, executor: str = "local", runs: str | Path = "runs",
         progress: bool = True, analysis: str | Path | None = ANALYSIS, report_dir: str | Path | None = None):
    """Run the grid, collect, print the comparison, and (with `analysis`) write the report; returns the table."""
    import pandas as pd

    from .sweep import collect, open_sweep, submit, status

    sw = open_sweep(find(grid), runs=runs)
    submit(sw, executor=executor, progress=progress)
    results = collect(sw)
    df = pd.read_parquet(results)
    print()
    print(comparison_table(df))
    failed = status(sw)["counts"]["failed"]
    if failed:
        print(f"\n{failed} cell(s) failed: `suite sweep status {sw.root}` shows them; the report uses the rest")
    if analysis:
        from .report import build_report

        page = build_report(find(analysis), out=report_dir, results=results)
        print(f"\nreport: {page}  (and {page.with_suffix('.md').name}, figures/, tables/, summary.json)")
    return df


def comparison_table(df) -> str:
    """Held-out loss of each student size and budget, supervised beside KD from each teacher (the report's
    `results` table), with the exact irreducible loss E of the synthetic world."""
    from .laws import exact_irreducible
    from .report.tables import results

    made = results(df, {}) if not df.empty else None
    if made is None:
        return "(no finished cells)"
    shown, _, _ = made
    lines = []
    e = exact_irreducible(df)
    if e is not None:
        lines.append(f"irreducible loss E (exact, synthetic world): {e:.4f} nats/token; held-out losses below, "
                     f"nats/token")
    lines.append(shown.to_string(index=False))
    return "\n".join(lines)
