"""`suite report analysis/NAME.yaml`: results table -> fitted laws -> figures, tables, index.md/html, summary.json.

    suite report analysis/quickstart.yaml               # writes reports/quickstart/
    suite report analysis/quickstart.yaml --out /tmp/r

The page is a list of blocks (heading, text, figure, table) rendered twice, as Markdown and as one
self-contained HTML file (inline CSS, relative image links). summary.json holds every number the page
states, each with where it came from; timings are left out so the same results give the same files.
"""
from __future__ import annotations

import functools
import html
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .._io import atomic_write_json, atomic_write_text
from ..config import ConfigError
from ..laws import exact_irreducible
from .analysis import Fitted, comparison_set, fit_laws, load_results, reading_columns
from .compare import comparison_table  # noqa: F401  (registers TABLES["comparison"])
from . import compute, continual, vlm  # noqa: F401  (register their tables, figures and headline parts)
from .figures import save as save_figure
from .flags import caveat_text, fit_caveats
from .flags import collect as collect_flags
from .questions import kd_vs_supervised
from .registries import FIGURES, HEADLINES, TABLES
from .spec import ReportSpec, load_spec
from .tables import fmt, to_html, to_markdown
from .tables import write as write_table

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Block:
    kind: str                 # h1 | h2 | p | figure | table | list
    text: str = ""
    path: str = ""            # figure: relative png path
    table: pd.DataFrame | None = None
    items: tuple[str, ...] = ()


def _round(x: Any) -> Any:
    """Numbers as the JSON states them: floats to 10 significant digits (stable across platforms)."""
    if isinstance(x, dict):
        return {str(k): _round(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_round(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else float(f"{float(x):.10g}")
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def headline(df: pd.DataFrame, fits: dict[str, Fitted], results: tuple | None = None
             ) -> tuple[list[str], dict[str, Any]]:
    """The sentences at the top of the report and the numbers behind them; `results` is the results table
    (TABLES["results"]'s output), computed here when not given."""
    lines, nums = [], {}
    e = exact_irreducible(df)
    if e is not None:
        nums["irreducible_loss_exact"] = {"value": e, "source": "results: bayes_loss (exact entropy rate of the "
                                                                 "synthetic language)"}
        lines.append(f"The data's irreducible loss is known exactly: E = {e:.4f} nats/token.")
    made = results if results is not None else TABLES.get("results")(df, fits)
    if made is not None:
        raw = made[1]
        diffs = raw[raw.columns[-1]].dropna().tolist()  # best distilled - supervised, seeds averaged
        if diffs:
            below = sum(x < 0 for x in diffs)
            pairs = kd_vs_supervised(df, "best")   # the tests Q1 reads: one rule for the whole report
            tested = [p for p in pairs if p["p"] is not None]
            wins = sum(p["outcome"] == "win" for p in tested)
            losses = sum(p["outcome"] == "loss" for p in tested)
            nums["kd_minus_supervised"] = {"values": diffs, "below": below, "pairs": len(diffs),
                                           "pairs_tested": len(tested), "significant_wins": wins,
                                           "significant_losses": losses, "tests": pairs,
                                           "source": f"tables/results.csv: {raw.columns[-1]}; tests: "
                                                     f"report/questions.py kd_vs_supervised (best teacher)"}
            lines.append(f"The best distilled student is below supervised training in {below} of {len(diffs)} "
                         f"student/budget pairs (best distilled minus supervised from {min(diffs):+.4f} to "
                         f"{max(diffs):+.4f} nats/token, seeds averaged). Tested against seed noise ({len(tested)} "
                         f"pairs with a test, Holm across them): {wins} significant wins, {losses} significant "
                         f"losses" + (f"; {len(pairs) - len(tested)} pairs untested (no repeated seeds at their "
                                      f"budget)" if len(pairs) > len(tested) else "")
                         + (". An arm with one seed is tested against the seed SD of the supervised runs at its "
                            "budget, pooled over the sizes that repeated seeds there (the comparison table uses "
                            "only the baseline arm's own seeds, with fewer degrees of freedom, so it can call "
                            "the same difference not significant)"
                            if any(p.get("test") == "budget_sd" for p in tested) else "") + ".")
    for f in fits.values():   # each law states its own fit (Law.summary), the rest is the same for every law
        key = f"fit.{f.name}"
        nums[key] = {"params": f.result.params,
                     "source": f"tables/fits.csv ({f.spec.law} law on {f.result.n_points} points)"}
        said, numbers = f.law.summary(f.result, f.name, exact_E=e)
        lines += said
        nums[key].update(numbers)
        if f.result.holdout:
            h = f.result.holdout
            nums[key]["holdout"] = h
            lines.append(f"Extrapolating the {f.name} fit from the lower-compute {h['n_fit']} points to the top "
                         f"{h['n_test']}: mean relative error {h['mean_rel_error']:.2%}.")
        caveats = fit_caveats(f)
        if caveats:
            nums[key]["caveats"] = caveats
            lines.append(f"⚑ Fit caveat, {f.name}: {caveat_text(caveats)}. Those coefficients are not identified "
                         f"by these runs; a verdict drawn from this fit says '(fit caveat)'.")
    for _, part in sorted(HEADLINES.items(), key=lambda kv: kv[1].order):  # questions, continual, vlm, ...
        lines += part.lines(df, fits, nums)
    return lines, nums


def _flag_blocks(flags: list[dict[str, Any]]) -> list[Block]:
    """The report's artifacts, each with the cells it covers (summary.json's `flags` holds them whole)."""
    if not flags:
        return [Block("h2", "Flags"), Block("p", "No number in this report is flagged as an artifact (constant "
                                                  "answers, chance level, tied choices, a coefficient or a search "
                                                  "on its bound, an interval wider than a decade).")]
    items = []
    for f in flags:
        cells = f.get("cells") or []
        where = f" ({len(cells)} cells)" if cells else ""
        items.append(f"⚑ {f['metric']}{where}: {f['reason']}")
    return [Block("h2", "Flags"),
            Block("p", "Numbers that cannot carry a conclusion; tables mark them with ⚑ (with how many seeds of "
                       "an average are flagged). Every flag, with its cells, is under `flags` in summary.json."),
            Block("list", items=tuple(items))]


def render_markdown(title: str, blocks: list[Block]) -> str:
    out = [f"# {title}", ""]
    for b in blocks:
        if b.kind == "h2":
            out += [f"## {b.text}", ""]
        elif b.kind == "p":
            out += [b.text, ""]
        elif b.kind == "list":
            out += [f"- {it}" for it in b.items] + [""]
        elif b.kind == "figure":
            out += [f"![{b.text}]({b.path})", "", f"*{b.text}*", ""]
        elif b.kind == "table":
            out += [to_markdown(b.table), f"*{b.text}*", ""]
    return "\n".join(out).rstrip() + "\n"


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;
color:#1d1d1f;line-height:1.5}
h1{font-size:1.7em;border-bottom:2px solid #ddd;padding-bottom:.3em}h2{font-size:1.3em;margin-top:1.8em}
figure{margin:1.2em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption,.caption{color:#555;font-size:.9em;margin-top:.3em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0;display:block;overflow-x:auto}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:right;white-space:nowrap}
th{background:#f5f5f7}td:first-child,th:first-child{text-align:left}
ul{padding-left:1.3em}.meta{color:#777;font-size:.85em}
"""


def render_html(title: str, blocks: list[Block]) -> str:
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
             f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    for b in blocks:
        if b.kind == "h2":
            parts.append(f"<h2>{html.escape(b.text)}</h2>")
        elif b.kind == "p":
            parts.append(f"<p>{html.escape(b.text)}</p>")
        elif b.kind == "list":
            parts.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in b.items) + "</ul>")
        elif b.kind == "figure":
            parts.append(f"<figure><img src=\"{html.escape(b.path)}\" alt=\"{html.escape(b.text)}\">"
                         f"<figcaption>{html.escape(b.text)}</figcaption></figure>")
        elif b.kind == "table":
            parts.append(to_html(b.table) + f"<p class=\"caption\">{html.escape(b.text)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _rel(p: Path) -> str:
    """Paths as the report states them: relative to the repository when inside it (the same from any working
    directory, and what `suite report` run from the repository root accepts), else absolute."""
    p = Path(p).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def _published_table(name: str) -> tuple[pd.DataFrame, str]:
    p = Path(name) if Path(name).exists() else ROOT / "analysis" / "published" / f"{name}.csv"
    df = pd.read_csv(p)
    return df, str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def build_report(spec_path: str | Path, out: str | Path | None = None, results: str | Path | None = None,
                 progress: Callable[[str], None] | None = None) -> Path:
    """Regenerate a report directory from an analysis spec; returns the path of index.html.
    `results` overrides the spec's sweep (a sweep directory or results file). The results table is copied
    into the report as results.parquet, so a committed report can be regenerated from itself. Every fit,
    table and figure is made before the first file is written: a spec or results error leaves no directory."""
    say = progress or (lambda m: print(m, file=sys.stderr))
    spec: ReportSpec = load_spec(spec_path)
    df, results_path = load_results(spec, ROOT, results)
    out_dir = Path(out or spec.out or Path("reports") / spec.name)
    own = out_dir / "results.parquet"
    say(f"report {spec.name}: {len(df)} runs from {results_path} -> {out_dir}")
    fits = fit_laws(spec, df, say)
    title = spec.title or f"Report: {spec.name}"
    reads = functools.partial(reading_columns, spec, df, results_path)
    tables = {}  # each table computed once: the headline reads the results table too
    for name in dict.fromkeys(("results", *spec.tables)):
        say(f"table {name}")
        fn = TABLES.get(name)
        with reads(f"tables: {name}" if name in spec.tables else "the headline's results table"):
            tables[name] = fn(df, fits, spec) if getattr(fn, "wants_spec", False) else fn(df, fits)
    with reads("the headline"):
        lines, nums = headline(df, fits, tables["results"])
    co = tables.get("compute_optimal")
    if co is not None and co[1].attrs.get("conventions"):   # which N and C the exponents count, and the others
        from ..laws import conventions_sentence

        nums["conventions"] = {"by_convention": co[1].attrs["conventions"], "source": "tables/compute_optimal.csv"}
        lines.append(conventions_sentence(co[1].attrs["conventions"]))
    with reads("the flags"):
        flags = collect_flags(df, fits, nums, tables)
    figures = {}
    for name in spec.figures:
        say(f"figure {name}")
        with reads(f"figures: {name}"):
            figures[name] = FIGURES.get(name)(df, fits)

    out_dir.mkdir(parents=True, exist_ok=True)   # everything is made: now write
    if not own.exists() or own.resolve() != results_path.resolve():
        tmp = own.with_suffix(".parquet.tmp")
        df.to_parquet(tmp, index=False)
        tmp.replace(own)
    blocks: list[Block] = []
    if spec.description:
        blocks.append(Block("p", spec.description))
    blocks += [Block("h2", "Headline"), Block("list", items=tuple(lines))]
    import hashlib

    digest = hashlib.sha256(df.to_csv(index=False).encode()).hexdigest()[:16]
    spec_rel = _rel(Path(spec.source))
    summary: dict[str, Any] = {"name": spec.name, "results": "results.parquet", "results_sha256": digest,
                               "n_runs": int(len(df)), "spec": spec_rel,
                               "headline": nums, "flags": _round(flags), "fits": {}, "figures": {}, "tables": {},
                               "published": {}}
    for f in fits.values():
        d = f.result.to_dict()
        d.pop("seconds", None)
        d["compare_with"] = comparison_set(f)
        summary["fits"][f.name] = d

    fig_dir, tab_dir = out_dir / "figures", out_dir / "tables"
    if spec.figures:
        blocks.append(Block("h2", "Figures"))
    for name, made in figures.items():
        if made is None:
            blocks.append(Block("p", f"({name}: nothing to draw for these runs.)"))
            summary["figures"][name] = None
            continue
        fig, caption = made
        paths = save_figure(fig, fig_dir, name)
        blocks.append(Block("figure", caption, path=f"figures/{name}.png"))
        summary["figures"][name] = {"caption": caption, "files": [str(p.relative_to(out_dir)) for p in paths]}

    if spec.tables:
        blocks.append(Block("h2", "Tables"))
    for name in spec.tables:
        made = tables[name]
        if made is None:
            summary["tables"][name] = None
            continue
        shown, raw, caption = made
        write_table(tab_dir, name, shown, raw, caption)
        blocks.append(Block("table", caption + f" (tables/{name}.csv, .md, .tex)", table=shown))
        summary["tables"][name] = {"caption": caption, "rows": _round(raw.to_dict(orient="records"))}

    blocks += _flag_blocks(flags)
    if spec.published:
        blocks.append(Block("h2", "Published reference tables"))
        blocks.append(Block("p", "Published numbers, as printed by their sources; every row carries its citation. "
                                 "Our measured numbers are in the tables above and marked 'ours'."))
    for name in spec.published:
        pub, rel = _published_table(name)
        cols = [c for c in ("model", "quantity", "metric", "value", "ci_low", "ci_high") if c in pub]
        shown = pub[cols].copy()
        for c in ("value", "ci_low", "ci_high"):
            if c in shown:
                shown[c] = shown[c].map(lambda v: fmt(v) if pd.notna(v) else "–")
        cites = sorted(set(pub["citation"].dropna())) if "citation" in pub else []
        blocks.append(Block("table", f"{name}: " + "; ".join(cites) + f" ({rel})", table=shown))
        summary["published"][name] = {"file": rel, "rows": int(len(pub)), "citations": cites}

    blocks += [Block("h2", "Provenance"),
               Block("list", items=(f"results: results.parquet beside this page ({len(df)} runs; sha256 of its "
                                    f"CSV form {digest})",
                                    f"analysis spec: {spec_rel}",
                                    f"regenerate: suite report {spec_rel} --results {_rel(own)} "
                                    f"--out {_rel(out_dir)}"))]
    atomic_write_text(out_dir / "index.md", render_markdown(title, blocks))
    atomic_write_text(out_dir / "index.html", render_html(title, blocks))
    atomic_write_json(out_dir / "summary.json", _round(summary))
    say(f"wrote {out_dir / 'index.html'}")
    return out_dir / "index.html"


def main_report(a) -> int:
    try:
        path = build_report(a.spec, a.out, results=a.results, progress=(lambda m: None) if a.quiet else None)
    except ConfigError as e:
        print(f"suite report: error: {e}", file=sys.stderr)
        return 2
    print(path)
    if a.check:
        from .browser import check_page

        try:
            res = check_page(path, Path(path).parent / "screenshot.png")
        except RuntimeError as e:  # no chromium, or it would not start: say so, no traceback
            print(f"suite report: --check: {e}", file=sys.stderr)
            return 2
        print(json.dumps({k: v for k, v in res.items() if k != "screenshot_bytes"}, indent=2))
        bad = res["console_errors"] or res["page_errors"] or res["broken_images"] or res.get("failed_requests")
        return 1 if bad else 0
    return 0
