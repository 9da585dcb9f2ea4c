"""`suite report`: from a results table to index.md/html, figures, tables and summary.json, reproducibly."""
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from suite.cli import main
from suite.config import ConfigError
from suite.laws import get_law, published
from suite.report import build_report, load_spec

SUP = published("busbridge2025-supervised").params
DIST = published("busbridge2025-distillation").params
E = 2.1576


def sweep_results(path, noise=2e-3, seed=0):
    """A results.parquet shaped like `suite sweep collect`'s: supervised runs, 3 teachers, KD students."""
    rng = np.random.default_rng(seed)
    sup_law = get_law("supervised")
    sup = {**SUP, "E": E}
    dist = get_law("distillation", supervised=sup)
    rows = []
    for n in (1e5, 4e5, 1e6):
        for d in (1e5, 3e5, 1e6):
            rows.append({"method": "supervised", "N_S": int(n), "D_S": int(d), "L_T": np.nan,
                         "loss": sup_law.predict(sup, N=n, D=d) * np.exp(rng.normal(0, noise))})
    teachers = []
    for n, d in ((2e6, 1.5e6), (4e5, 3e5), (1e5, 1e5)):
        tid = f"t{len(teachers)}"
        rows.append({"method": "supervised", "N_S": int(n), "D_S": int(d), "L_T": np.nan, "cell_id": tid,
                     "group": "teacher", "loss": sup_law.predict(sup, N=n, D=d)})
        teachers.append((tid, rows[-1]["loss"]))
    for tid, lt in teachers:
        for n in (1e5, 4e5, 1e6):
            for d in (1e5, 3e5):
                rows.append({"method": "kd", "N_S": int(n), "D_S": int(d), "L_T": lt, "teacher_id": tid,
                             "loss": dist.predict(DIST, N_S=n, D_S=d, L_T=lt) * np.exp(rng.normal(0, noise))})
    df = pd.DataFrame(rows)
    df["cell_id"] = df["cell_id"].fillna(pd.Series([f"c{i}" for i in range(len(df))]))
    df["name"] = df["cell_id"]
    df["bayes_loss"] = E
    path.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path / "results.parquet")
    return df


def write_spec(tmp_path, **over):
    spec = {"name": "toy", "title": "Toy study", "sweep": str(tmp_path / "sweep"),
            "laws": {"supervised": {"law": "supervised", "fixed": {"E": "bayes_loss"}, "bootstrap": 50},
                     "distillation": {"law": "distillation", "supervised": "supervised"}},
            "figures": ["loss_vs_tokens", "capacity_gap", "crossover", "residuals", "method_bars", "forgetting"],
            "tables": ["results", "fits", "fit_quality", "capacity_gap"],
            "published": ["busbridge2025_table6"], **over}
    p = tmp_path / "toy.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


@pytest.fixture
def study(tmp_path):
    sweep_results(tmp_path / "sweep")
    return write_spec(tmp_path)


def test_report_writes_every_artifact_and_states_its_numbers(study, tmp_path):
    page = build_report(study, out=tmp_path / "rep", progress=lambda m: None)
    rep = tmp_path / "rep"
    assert page == rep / "index.html"
    for name in ("loss_vs_tokens", "capacity_gap", "crossover", "residuals", "method_bars"):
        for ext in ("png", "svg"):
            f = rep / "figures" / f"{name}.{ext}"
            assert f.exists() and f.stat().st_size > 2000, f
        assert f'src="figures/{name}.png"' in page.read_text()
    assert not (rep / "figures" / "forgetting.png").exists()  # no continual-learning runs: said, not drawn
    for name in ("results", "fits", "fit_quality", "capacity_gap"):
        for ext in ("md", "tex", "csv"):
            assert (rep / "tables" / f"{name}.{ext}").exists()
    assert "\\begin{tabular}" in (rep / "tables" / "fits.tex").read_text()
    summary = json.loads((rep / "summary.json").read_text())
    assert summary["n_runs"] == 30 and summary["results"] == "results.parquet"
    assert summary["fits"]["supervised"]["params"]["E"] == pytest.approx(E)      # held at the exact E
    assert "E" in summary["fits"]["supervised"]["context"]["fixed"]
    # the supervised law's exponents come back from 9 noisy points with E known
    assert summary["fits"]["supervised"]["params"]["alpha"] == pytest.approx(SUP["alpha"], rel=0.25)
    kd = summary["headline"]["kd_minus_supervised"]
    assert kd["pairs"] == 6 and len(kd["values"]) == 6
    fits_csv = pd.read_csv(rep / "tables" / "fits.csv")
    assert set(fits_csv["fit"]) == {"supervised", "distillation"}
    assert (fits_csv.loc[fits_csv["parameter"] == "beta", "published"].to_numpy()
            == pytest.approx([SUP["beta"], DIST["beta"]]))
    md = (rep / "index.md").read_text()
    assert md.startswith("# Toy study") and "| N_S | D_S | supervised |" in md
    assert "Busbridge et al. 2025" in md                   # the published table carries its citation
    assert pd.read_parquet(rep / "results.parquet").shape[0] == 30


def test_regenerating_from_the_report_copy_gives_the_same_files(study, tmp_path):
    rep = tmp_path / "rep"
    build_report(study, out=rep, progress=lambda m: None)
    first = {p.relative_to(rep): p.read_bytes() for p in rep.rglob("*") if p.is_file()}
    build_report(study, out=rep, results=rep / "results.parquet", progress=lambda m: None)
    second = {p.relative_to(rep): p.read_bytes() for p in rep.rglob("*") if p.is_file()}
    assert first.keys() == second.keys()
    changed = [str(k) for k in first if first[k] != second[k]]
    assert not changed, changed


def test_cli_report_and_its_errors(study, tmp_path, capsys):
    assert main(["report", str(study), "--out", str(tmp_path / "r2"), "--quiet"]) == 0
    assert capsys.readouterr().out.strip().endswith("index.html")
    bad = write_spec(tmp_path, sweep=str(tmp_path / "nope"))
    assert main(["report", str(bad), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("over,match", [
    ({"laws": {"s": {"law": "supervsed"}}}, "did you mean 'supervised'"),
    ({"figures": ["capacity_gapp"]}, "did you mean 'capacity_gap'"),
    ({"tables": ["fit"]}, "unknown table 'fit'"),
    ({"published": ["busbridge2025"]}, "no table 'busbridge2025'"),
    ({"laws": {"d": {"law": "distillation", "supervised": "sup"}}}, "neither a fit of this spec"),
    ({"laws": {"s": {"law": "supervised", "boostrap": 10}}}, "unknown key 'boostrap'"),
    ({"laws": {"s": {"law": "supervised", "search": "fulll"}}}, "search: 'fulll'.*did you mean 'full'"),
])
def test_spec_errors_name_the_file_key_and_choices(tmp_path, over, match):
    with pytest.raises(ConfigError, match=match) as e:
        load_spec(write_spec(tmp_path, **over))
    assert "toy.yaml" in str(e.value)


def test_each_fit_says_which_search_produced_it(tmp_path, monkeypatch):
    # a 2-per-coordinate start grid keeps L-BFGS-B from every start to 64 runs
    small = {k: v[1:3] for k, v in get_law("supervised").grid.items()}
    monkeypatch.setattr(type(get_law("supervised")), "grid", small)
    sweep_results(tmp_path / "sweep")
    spec = write_spec(tmp_path, laws={"sup_full": {"law": "supervised", "search": "full"},
                                      "sup_fast": {"law": "supervised"}},
                      figures=[], tables=["fits", "fit_quality"])
    build_report(spec, out=tmp_path / "rep", progress=lambda m: None)
    fits = pd.read_csv(tmp_path / "rep" / "tables" / "fits.csv")
    assert fits.groupby("fit")["search"].agg(set).to_dict() == {"sup_full": {"full"}, "sup_fast": {"fast"}}
    quality = pd.read_csv(tmp_path / "rep" / "tables" / "fit_quality.csv").set_index("fit")
    assert quality.loc["sup_full", "starts"] == quality.loc["sup_full", "searched"] == 64
    assert "| search |" in (tmp_path / "rep" / "tables" / "fits.md").read_text()
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert summary["fits"]["sup_full"]["method"] == "full"


def test_missing_column_is_a_clear_error(tmp_path):
    df = sweep_results(tmp_path / "sweep").drop(columns=["loss"])
    df.to_parquet(tmp_path / "sweep" / "results.parquet")
    with pytest.raises(ConfigError, match="laws.supervised.*missing loss"):
        build_report(write_spec(tmp_path), out=tmp_path / "rep", progress=lambda m: None)


def _regenerate(name: str, tmp_path):
    """Build analysis/<name>.yaml from the committed reports/<name>/results.parquet into tmp_path/<name>:
    (new report dir, committed dir, new summary, committed summary)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    committed, out = root / "reports" / name, tmp_path / name
    build_report(root / "analysis" / f"{name}.yaml", out=out, results=committed / "results.parquet",
                 progress=lambda m: None)
    new, old = (json.loads((d / "summary.json").read_text()) for d in (out, committed))
    return out, committed, new, old


def test_committed_quickstart_report_regenerates_from_its_results(tmp_path):
    """reports/quickstart/ is what `suite report analysis/quickstart.yaml` makes of its own results.parquet.
    Measured numbers and tables must match exactly; fitted coefficients to 3 significant digits where the
    fit is well posed (degenerate fits, flagged at_bound, may move along their ridge with the last bits of
    exp/log on another CPU); images are compared by name (font rasterizing differs between machines)."""
    out, committed, new, old = _regenerate("quickstart", tmp_path)
    for key in ("results_sha256", "n_runs", "spec", "figures"):
        assert new[key] == old[key], key
    assert new["headline"]["kd_minus_supervised"] == old["headline"]["kd_minus_supervised"]
    assert new["tables"]["results"] == old["tables"]["results"]
    results = pd.read_parquet(committed / "results.parquet")
    for name, fit in old["fits"].items():
        mine = new["fits"][name]
        assert set(mine["params"]) == set(fit["params"]) and mine["n_points"] == fit["n_points"]
        # what a fit pins down even on a ridge: its objective and its predictions at the data
        assert mine["objective"] == pytest.approx(fit["objective"], rel=1e-4), name
        ctx = fit.get("context", {})
        law = get_law(fit["law"], supervised=ctx["supervised"]) if fit["law"] == "distillation" else get_law(fit["law"])
        from suite.laws import points_for
        pts = points_for(law, results)
        np.testing.assert_allclose(law.predict(mine["params"], pts), law.predict(fit["params"], pts), rtol=1e-3)
        for k, v in fit["params"].items():  # coefficients away from any bound: to 3 digits
            if k not in fit["at_bound"] and f"log_{k}" not in fit["at_bound"] and not fit["at_bound"]:
                assert mine["params"][k] == pytest.approx(v, rel=1e-3), (name, k)
    for rel in ("tables/results.md", "tables/results.tex", "tables/results.csv"):
        assert (out / rel).read_text() == (committed / rel).read_text(), rel
    assert (sorted(p.name for p in (out / "figures").iterdir())
            == sorted(p.name for p in (committed / "figures").iterdir()))


def test_benchmark_bars_and_forgetting_curves_draw_from_benchmark_columns():
    from suite.report.figures import forgetting, method_bars

    rows = []
    for method, drop in (("sequential", 0.08), ("gere", 0.02)):
        for stage in range(4):
            rows.append({"method": method, "stage": stage, "N_S": 1e5, "D_S": 1e5, "L_T": np.nan,
                         "loss": 2.5, "benchmarks.mmlu": 0.6 - drop * stage, "benchmarks.ai2d": 0.5 - drop * stage})
    df = pd.DataFrame(rows)
    fig, cap = forgetting(df, {})
    lines = fig.axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == ["gere", "sequential"]
    assert np.allclose(lines[1].get_ydata(), [0.55 - 0.08 * s for s in range(4)])
    fig, cap = method_bars(df, {})
    assert len(fig.axes) == 2 and "each benchmark" in cap
    assert forgetting(df.drop(columns=["stage"]), {}) is None


def test_committed_genrecal_toy_report_regenerates_and_keeps_the_stage_1_check(tmp_path):
    """reports/genrecal_toy/ is what `suite report analysis/genrecal_toy.yaml` makes of its results.parquet, and
    its stage table shows the paper's Tab. 9 check: after stage 1 (Recalibrator only) the student scores exactly
    as the untrained baseline of the same seeds."""
    out, committed, new, old = _regenerate("genrecal_toy", tmp_path)
    for key in ("results_sha256", "n_runs", "spec", "figures", "headline", "tables"):
        assert new[key] == old[key], key
    for rel in ("tables/vlm.md", "tables/vlm.csv", "tables/vlm_stages.md", "tables/vlm_stages.tex"):
        assert (out / rel).read_text() == (committed / rel).read_text(), rel
    stages = pd.read_csv(committed / "tables" / "vlm_stages.csv")
    table = pd.read_csv(committed / "tables" / "vlm.csv").set_index("variant")
    base = table.loc["tiny-qwen2vl baseline (untrained)"]
    # GenRecal on the benchmark's short answers, as its baseline (App. F cells train another tokenizer on other
    # answers; LLaVA-KD's stage 1 trains the projector, so it is meant to move)
    check = stages[(stages["stage"] == 1) & stages["variant"].str.contains("GenRecal")
                   & ~stages["variant"].str.contains("·")]
    assert len(check) == 2
    for _, row in check.iterrows():
        assert row["loss.mean"] == pytest.approx(base["loss.mean"], abs=1e-9)
        assert row["benchmarks.ai2d.overall.mean"] == base["benchmarks.ai2d.overall.mean"]
    assert set(stages["stage"]) == {1, 2, 3} and table.loc["tiny-llava-m teacher (SFT)", "seeds"] == 1


def test_committed_scaling_lab_report_regenerates_and_keeps_its_acceptance_numbers(tmp_path):
    """reports/scaling_lab/ is what `suite report analysis/scaling_lab.yaml` makes of its results.parquet, and
    what the lab was built for still holds on it: the supervised law with E free lands within 2% of the exact E,
    has no coefficient on a bound and extrapolates to the top 20% of compute within 1%; approach 2 uses the five
    isoFLOP levels whose optimum is bracketed (the sixth has 4 sizes, its smallest the best), and approach 3's N_opt
    exponent lies within approach 2's interval; eq. 8 with every
    coefficient free puts only c1 on its bound (the ridge the report explains), and with c1 = 100 nothing; at
    least one student has measured teachers on both sides of the fitted capacity-gap optimum."""
    out, committed, new, old = _regenerate("scaling_lab", tmp_path)
    for key in ("results_sha256", "n_runs", "spec", "figures"):
        assert new[key] == old[key], key
    assert new["tables"]["compute_optimal"] == old["tables"]["compute_optimal"]
    sup = new["fits"]["supervised"]
    assert sup["at_bound"] == [] and sup["holdout"]["mean_rel_error"] < 0.01
    assert abs(sup["params"]["E"] / 1.9577 - 1) < 0.02
    assert new["fits"]["distillation"]["at_bound"] == ["c1"]
    assert new["fits"]["distillation_c1_100"]["at_bound"] == []
    co = pd.read_csv(out / "tables" / "compute_optimal.csv").set_index("approach")
    two, three = co.loc["2: isoFLOP parabolas"], co.loc["3: parametric law"]
    assert two["levels"] == 5
    # approach 3's exponent lies in approach 2's interval and the intervals overlap (measured: 0.627 in
    # [0.490, 0.681]; 0.576 sits just below approach 3's [0.580, 0.657])
    assert two["a_ci_low"] <= three["a"] <= two["a_ci_high"] and three["a_ci_low"] <= two["a_ci_high"]
    gap = new["headline"]["question.capacity_gap"]
    assert any(s.get("points_both_sides") for s in gap["students"].values())
