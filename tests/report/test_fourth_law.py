"""A fourth scaling law is one class: registered at test time, a report spec lists it under `laws:` and the report
states it (its own headline summary, its parameters in the fits table) with no change to suite/report/ or
suite/laws/; `suite fit` takes it too."""
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from suite.cli import main
from suite.laws import LAWS, Law, fit, get_law
from suite.laws.forms import _lse
from suite.report import build_report

TRUE = {"E": 1.8, "A": 40.0, "alpha": 0.35}


class KaplanN(Law):
    """L(N) = E + A/N^alpha: a law of model size alone (the test's fourth law)."""

    name = "test-kaplan-n"
    inputs = ("N",)
    fit_names = ("log_A", "log_E", "alpha")
    param_names = ("E", "A", "alpha")
    log_params = frozenset({"E", "A"})
    bounds = ((-20.0, 60.0), (-10.0, 5.0), (0.0, 5.0))
    grid = {"log_A": (0, 5, 10), "log_E": (-1, 0, 1), "alpha": (0.2, 0.5, 1.0)}

    def log_predict(self, theta, z):
        theta = np.atleast_2d(theta)
        size = theta[:, 0, None] - theta[:, 2, None] * z["log_N"]          # log(A/N^alpha), (S, n)
        return _lse(size, np.broadcast_to(theta[:, 1, None], size.shape))

    def summary(self, res, name, exact_E=None):
        p = res.params
        return ([f"Size alone ('{name}'): loss - E ~ N^-{p['alpha']:.3f} with E = {p['E']:.4f}."],
                {"size_exponent": p["alpha"]})


@pytest.fixture
def kaplan():
    LAWS.register(KaplanN.name, KaplanN)
    try:
        yield KaplanN
    finally:
        LAWS._items.pop(KaplanN.name)


def _sweep(path, noise=1e-3, seed=0):
    """A results.parquet of supervised runs whose loss depends on N alone, by the fourth law (2 seeds each)."""
    rng = np.random.default_rng(seed)
    law = KaplanN()
    rows = [{"method": "supervised", "N_S": int(n), "D_S": int(d), "L_T": np.nan, "seed": s,
             "loss": law.predict(TRUE, N=n) * np.exp(rng.normal(0, noise))}
            for n in (1e5, 3e5, 1e6, 3e6, 1e7) for d in (1e6, 3e6) for s in (0, 1)]
    df = pd.DataFrame(rows)
    df["cell_id"] = [f"c{i}" for i in range(len(df))]
    df["name"] = df["cell_id"]
    path.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path / "results.parquet")
    return df


def test_a_fourth_law_in_a_report_states_its_summary_and_parameters(kaplan, tmp_path):
    _sweep(tmp_path / "sweep")
    spec = {"name": "four", "sweep": str(tmp_path / "sweep"),
            "laws": {"supervised": {"law": "supervised"}, "size": {"law": kaplan.name, "bootstrap": 20}},
            "figures": ["residuals"], "tables": ["results", "fits", "fit_quality"]}
    (tmp_path / "four.yaml").write_text(yaml.safe_dump(spec))
    build_report(tmp_path / "four.yaml", out=tmp_path / "rep", progress=lambda m: None)

    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    got = summary["fits"]["size"]
    assert got["law"] == kaplan.name and got["n_points"] == 20 and got["compare_with"] is None
    assert got["params"]["alpha"] == pytest.approx(TRUE["alpha"], rel=0.02)
    assert got["params"]["E"] == pytest.approx(TRUE["E"], rel=0.01)
    head = summary["headline"]["fit.size"]
    assert head["size_exponent"] == got["params"]["alpha"]            # the law's own numbers
    assert head["source"] == f"tables/fits.csv ({kaplan.name} law on 20 points)"
    md = (tmp_path / "rep" / "index.md").read_text()
    assert f"- Size alone ('size'): loss - E ~ N^-{got['params']['alpha']:.3f} with E = " in md
    assert "- Fitted supervised law 'supervised' (20 points)" in md    # the three laws state theirs as before
    fits = pd.read_csv(tmp_path / "rep" / "tables" / "fits.csv")
    mine = fits[fits["fit"] == "size"].set_index("parameter")
    assert list(mine.index) == ["E", "A", "alpha"] and (mine["law"] == kaplan.name).all()
    assert mine.loc["alpha", "ours"] == pytest.approx(TRUE["alpha"], rel=0.02)
    assert mine.loc["alpha", "ours_ci_low"] < mine.loc["alpha", "ours"] < mine.loc["alpha", "ours_ci_high"]
    assert mine["published_source"].isna().all()                        # no published set for this law
    assert "| size | fast | alpha | 0.3" in (tmp_path / "rep" / "tables" / "fits.md").read_text()
    assert summary["figures"]["residuals"] is not None


def test_a_law_without_its_own_summary_states_its_coefficients(kaplan):
    """Law.summary by default: one sentence of every coefficient, with its bootstrap interval."""
    class Plain(KaplanN):
        summary = Law.summary

    N = np.logspace(5, 8, 10)
    res = fit(Plain(), {"N": N, "loss": Plain().predict(TRUE, N=N)}, bootstrap=10)
    lines, nums = Plain().summary(res, "plain")
    assert nums == {} and len(lines) == 1
    assert lines[0].startswith("Fitted test-kaplan-n law 'plain' (10 points; 90% bootstrap intervals): E = 1.8")
    assert ", A = 40" in lines[0] and ", alpha = 0.35" in lines[0]


def test_suite_fit_takes_the_fourth_law_and_asks_it_what_applies(kaplan, tmp_path, capsys):
    df = _sweep(tmp_path / "sweep")
    assert main(["fit", "--law", kaplan.name, "--data", str(tmp_path / "sweep"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_points"] == len(df) and "compute_optimal" not in out and "effective_break" not in out
    assert out["params"]["alpha"] == pytest.approx(TRUE["alpha"], rel=0.02)
    # approach 3 is for laws with its closed form (Law.compute_optimal), not this one
    assert main(["fit", "--approach", "isoflop", "--law", kaplan.name, "--data", str(tmp_path / "sweep")]) == 2
    assert f"--law {kaplan.name} does not apply" in capsys.readouterr().err


def test_laws_declare_what_they_need_and_what_to_compare_with():
    assert get_law("distillation", supervised={"E": 1.0, "A": 1.0, "B": 1.0, "alpha": 0.3, "beta": 0.3,
                                               "gamma": 1.0}).built_on()["supervised"]["E"] == 1.0
    assert {n: LAWS.get(n).needs for n in ("chinchilla", "supervised", "distillation")} == \
        {"chinchilla": (), "supervised": (), "distillation": ("supervised",)}
    assert [n for n in ("chinchilla", "supervised", "distillation") if LAWS.get(n).compute_optimal] == \
        ["chinchilla", "supervised"]
    assert get_law("supervised").built_on() == {}
