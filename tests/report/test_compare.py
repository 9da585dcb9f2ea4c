"""suite compare and the report's comparison table: arms, paired/Welch choice, Holm, bold, flags, errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as ss

from suite.cli import main
from suite.config import ConfigError
from suite.report.compare import Comparison, compare, with_arms
from suite.report.flags import benchmark_flags, fit_caveats

ROOT = Path(__file__).resolve().parents[2]


def _results(shift: float = 0.05, seeds=(0, 1, 2, 3)) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for student in ("s1", "s2"):
        base = rng.normal(1.0, 0.01, len(seeds))
        for method, d in (("supervised", 0.0), ("kd", -shift), ("other", 0.001)):
            for s, b in zip(seeds, base):
                rows.append({"name": f"{method}-{student}-s{s}", "cell_id": f"{method}{student}{s}",
                             "student": student, "method": method, "config.train.seed": s,
                             "loss": b + d + rng.normal(0, 0.002), "score": 50 - 100 * d + rng.normal(0, 0.5)})
    return pd.DataFrame(rows)


def test_paired_by_seed_when_arms_share_seeds_else_welch():
    df = _results()
    raw = compare(df, Comparison(("loss",), "method=supervised", ("student",), arm="method"))
    kd = raw[(raw["arm"] == "kd") & (raw["student"] == "s1")].iloc[0]
    g = df[df["student"] == "s1"].sort_values("config.train.seed")
    a, b = g[g["method"] == "kd"]["loss"].to_numpy(), g[g["method"] == "supervised"]["loss"].to_numpy()
    assert kd["test"] == "paired" and kd["p"] == pytest.approx(ss.ttest_rel(a, b).pvalue)
    assert kd["diff"] == pytest.approx(a.mean() - b.mean())
    # drop one KD seed: the seed sets differ, so Welch
    raw = compare(df.drop(index=df[(df["method"] == "kd") & (df["config.train.seed"] == 3)].index),
                  Comparison(("loss",), "method=supervised", ("student",), arm="method"))
    kd = raw[(raw["arm"] == "kd") & (raw["student"] == "s1")].iloc[0]
    assert kd["test"] == "welch" and kd["p"] == pytest.approx(ss.ttest_ind(a[:3], b, equal_var=False).pvalue)
    # --unpaired forces Welch
    raw = compare(df, Comparison(("loss",), "method=supervised", ("student",), arm="method", paired=False))
    assert set(raw.loc[raw["arm"] != raw["baseline"], "test"]) == {"welch"}


def test_holm_across_the_table_and_bold_only_when_significant():
    raw = compare(_results(), Comparison(("loss", "score"), "method=supervised", ("student",), arm="method"))
    diffs = raw[raw["arm"] != raw["baseline"]]
    assert len(diffs) == 8
    best = raw[raw["best"]]
    # kd is 0.05 lower on every seed: significantly best on loss (lower) and on score (higher) for both students
    assert set(best["arm"]) == {"kd"} and len(best) == 4
    assert (raw.loc[raw["arm"] == "kd", "significant"]).all()
    other = raw[raw["arm"] == "other"]
    assert not other["significant"].any() and (other["p_adjusted"] >= other["p"]).all()
    # no real difference anywhere: nothing is bold
    flat = compare(_results(shift=0.0), Comparison(("loss",), "method=supervised", ("student",), arm="method"))
    assert not flat["best"].any()


def test_arm_labels_strip_the_seed_and_errors_name_the_choices():
    df = _results()
    arms = with_arms(df)
    assert set(arms["arm"]) == {"supervised", "kd", "other"}
    assert arms["seed"].tolist() == df["config.train.seed"].tolist()
    with pytest.raises(ConfigError, match="no row has method = 'supervsed'.*did you mean 'supervised'"):
        compare(df, Comparison(("loss",), "method=supervsed", ("student",), arm="method"))
    with pytest.raises(ConfigError, match="metric 'los' is not a results column.*did you mean 'loss'"):
        compare(df, Comparison(("los",), "method=supervised", ("student",), arm="method"))
    with pytest.raises(ConfigError, match="matches 3 arms at student=s1: supervised; kd; other"):
        compare(df.assign(kind="x"), Comparison(("loss",), "kind=x", ("student",), arm="method"))


def test_cli_json_rows_carry_the_promised_keys(tmp_path, capsys):
    p = tmp_path / "r.parquet"
    _results().to_parquet(p)
    assert main(["compare", str(p), "--metric", "loss", "--baseline", "method=supervised", "--by", "student",
                 "--arm", "method", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    need = {"arm", "n", "mean", "ci_low", "ci_high", "diff", "diff_ci_low", "diff_ci_high", "p", "p_adjusted",
            "significant", "mde"}
    assert len(rows) == 6 and all(need <= set(r) for r in rows)
    assert main(["compare", str(p), "--metric", "loss", "--baseline", "method=nope", "--arm", "method"]) == 2
    assert "no row has method = 'nope'" in capsys.readouterr().err


def test_committed_genrecal_study_compares_and_finds_no_significant_genrecal_effect(capsys):
    res = ROOT / "reports" / "genrecal_toy" / "results.parquet"
    assert main(["compare", str(res), "--metric", "loss", "--baseline", "arm=SFT", "--by", "student",
                 "--where", "`vlm.answers` != 'teacher' and `config.vlm.epochs` != 0", "--json"]) == 0
    rows = {(r["student"], r["arm"]): r for r in json.loads(capsys.readouterr().out)}
    g = rows[("tiny-qwen2vl", "GenRecal (L_reg ce+kl)")]
    assert g["n"] == 3 and g["test"] == "paired" and not g["significant"]
    assert g["diff_ci_low"] < 0 < g["diff_ci_high"] and g["mde"] > abs(g["diff"])


def test_entropy_flag_on_constant_letter_predictions():
    df = pd.DataFrame({"cell_id": ["a", "b"], "benchmarks.ai2d.overall": [30.0, 55.0],
                       "benchmarks.ai2d.n": [160, 160], "benchmarks.ai2d.top_answer_share": [1.0, 0.4],
                       "benchmarks.ai2d.top_answer": ["B", "A"], "benchmarks.ai2d.answer_entropy": [0.0, 1.9],
                       "benchmarks.ai2d.chance": [25.0, 25.0]})   # percent, as the scorer stores it
    flags = {f["reason"]: f for f in benchmark_flags(df)}
    const = next(f for r, f in flags.items() if r.startswith("one answer"))
    assert const["cells"] == ["a"] and const["metric"] == "benchmarks.ai2d.overall"
    chance = next(f for r, f in flags.items() if r.startswith("within chance"))
    assert chance["cells"] == ["a"]   # 30% of 160 items: chance 25% inside [23.4, 37.4]; 55% is not


def test_mmlu_tied_choices_are_flagged():
    df = pd.DataFrame({"cell_id": ["a"], "benchmarks.mmlu.overall": [0.25], "benchmarks.mmlu.n": [1000],
                       "benchmarks.mmlu.tied_fraction": [1.0]})
    reasons = [f["reason"] for f in benchmark_flags(df)]
    assert any(r.startswith("choices tie") for r in reasons) and any(r.startswith("within chance") for r in reasons)


def test_fit_caveats_name_bounds_wide_intervals_and_dead_searches():
    from types import SimpleNamespace

    res = SimpleNamespace(at_bound=("f1",), ci={"A": (1.0, 200.0), "alpha": (0.3, 0.4), "E": (1.9, 1.9),
                                                 "c0": (-1.0, 2.0)},
                          ci_level=0.9, context={"fixed": {"E": 1.9}}, searched=100, converged=0)
    cav = fit_caveats(SimpleNamespace(result=res))
    assert set(cav) == {"f1", "A", "c0", "search"}
    assert "2.3 decades" in cav["A"] and "crosses zero" in cav["c0"]


def test_searches_on_their_bound_are_flagged_from_the_tables():
    from suite.report.flags import collect

    raw = pd.DataFrame({"N_S": [1000, 2000], "D_S": [10**6, 10**6], "at_search_bound": [True, False],
                        "search_bound": ["E", None]})
    flags = collect(pd.DataFrame({"loss": [2.0]}), {}, {}, {"capacity_gap": (None, raw, "")})
    assert [f["metric"] for f in flags] == ["tables.capacity_gap.1000/1000000"]
    assert "(E)" in flags[0]["reason"]


def test_the_best_arm_is_bold_in_markdown_latex_and_html():
    from suite.report.compare import shown_table
    from suite.report.tables import to_html, to_latex, to_markdown

    raw = compare(_results(), Comparison(("loss",), "method=supervised", ("student",), arm="method"))
    shown = shown_table(raw, ("student",))
    bold = shown[shown["mean [95% CI]"].str.startswith("**")]
    assert list(bold["arm"]) == ["kd", "kd"]
    assert "| **" in to_markdown(shown)
    assert to_latex(shown, "c", "x").count(r"\textbf{") == 2 and "**" not in to_latex(shown, "c", "x")
    assert to_html(shown).count("<strong>") == 2 and "**" not in to_html(shown)


def test_every_analysis_spec_in_the_repository_loads_with_its_comparison():
    from suite.report.spec import load_spec

    for p in sorted((ROOT / "analysis").glob("*.yaml")):
        spec = load_spec(p)
        assert "comparison" in spec.tables and spec.comparison, p.name
