"""`suite fit` reads CSV/parquet and sweep results, prints JSON in the issue's shape, and fails clearly."""
import json

import numpy as np
import pandas as pd
import pytest

from suite.cli import main
from suite.laws import get_law, load_points, published

SUP = published("busbridge2025-supervised").params
DIST = published("busbridge2025-distillation").params


def _points(n=40, seed=0):
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(np.log(1e7), np.log(1e10), n))
    D = N * np.exp(rng.uniform(0, np.log(500), n))
    return pd.DataFrame({"N": N, "D": D, "loss": get_law("chinchilla").predict(published("epoch2024").params, N=N, D=D)
                         * np.exp(rng.normal(0, 0.005, n))})


def test_fit_json_has_the_documented_keys(tmp_path, capsys):
    _points().to_csv(tmp_path / "pts.csv", index=False)
    rc = main(["fit", "--law", "chinchilla", "--data", str(tmp_path / "pts.csv"), "--bootstrap", "50",
               "--holdout", "0.25", "--json", "--out", str(tmp_path / "fit.json")])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["law"] == "chinchilla" and set(out["params"]) == {"E", "A", "B", "alpha", "beta"}
    assert out["n_points"] == 40 and out["starts"] == 4500 and 0 < out["converged"] <= 4500
    assert set(out["ci"]) == set(out["params"]) and out["ci_level"] == 0.9
    assert 0 <= out["holdout_rel_error"] < 0.05
    assert abs(out["params"]["alpha"] / 0.3478 - 1) < 0.1
    assert json.loads((tmp_path / "fit.json").read_text())["params"] == out["params"]


def test_fit_reads_parquet_and_prints_a_table(tmp_path, capsys):
    _points().to_parquet(tmp_path / "pts.parquet")
    assert main(["fit", "--law", "supervised", "--data", str(tmp_path / "pts.parquet"), "--fix", "gamma=1"]) == 0
    text = capsys.readouterr().out
    assert "supervised law, 40 points" in text and "gamma = 1" in text


def _sweep_results(tmp_path):
    """A results.parquet shaped like `suite sweep collect`'s: supervised runs and KD students of 3 teachers."""
    rng = np.random.default_rng(1)
    rows = []
    for n in np.logspace(7, 9.5, 6):
        for d in n * np.array([2.0, 10, 50, 200]):
            rows.append({"method": "supervised", "N_S": n, "D_S": d, "L_T": np.nan,
                         "loss": get_law("supervised").predict(SUP, N=n, D=d) * np.exp(rng.normal(0, 1e-3))})
    dist = get_law("distillation", supervised=SUP)
    for lt in (2.0, 2.3, 2.7):
        for n in np.logspace(7, 9, 4):
            for d in n * np.array([5.0, 40, 200]):
                rows.append({"method": "kd", "N_S": n, "D_S": d, "L_T": lt,
                             "loss": dist.predict(DIST, N_S=n, D_S=d, L_T=lt) * np.exp(rng.normal(0, 1e-3))})
    df = pd.DataFrame(rows)
    df["name"] = [f"cell{i}" for i in range(len(df))]
    (tmp_path / "sweep").mkdir()
    df.to_parquet(tmp_path / "sweep" / "results.parquet")
    return tmp_path / "sweep"


def test_sweep_results_feed_both_laws(tmp_path, capsys):
    sweep = _sweep_results(tmp_path)
    assert len(load_points(sweep, get_law("supervised"))) == 24
    assert len(load_points(sweep, get_law("distillation", supervised=SUP))) == 36
    assert main(["fit", "--law", "supervised", "--data", str(sweep), "--json",
                 "--out", str(tmp_path / "sup.json")]) == 0
    sup = json.loads(capsys.readouterr().out)
    assert sup["n_points"] == 24 and abs(sup["params"]["E"] / SUP["E"] - 1) < 0.05
    # the distillation law takes the supervised fit from a file, a published name, or fits it itself
    for extra in (["--supervised-params", str(tmp_path / "sup.json")],
                  ["--supervised-params", "busbridge2025-supervised"], []):
        assert main(["fit", "--law", "distillation", "--data", str(sweep), "--json"] + extra) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["n_points"] == 36 and set(out["params"]) == set(DIST)
        assert set(out["context"]["supervised"]) == set(SUP)


def test_fit_says_which_runs_it_dropped_for_a_non_finite_loss(tmp_path, capsys):
    """Sweep rows whose loss is NaN, inf or not a number are left out of the fit, and the fit says so, naming
    them (on stderr, and under `dropped` in --json): never silently."""
    sweep = _sweep_results(tmp_path)
    df = pd.read_parquet(sweep / "results.parquet")
    sup = df.index[df["method"] == "supervised"][:3]
    df["name"] = [f"cell{i}" for i in range(len(df))]
    df["loss"] = df["loss"].astype(object)
    df.loc[sup, "loss"] = [np.nan, np.inf, "diverged"]
    df.to_csv(tmp_path / "r.csv", index=False)
    assert main(["fit", "--law", "supervised", "--data", str(tmp_path / "r.csv")]) == 0
    err = capsys.readouterr().err
    assert "dropping 3 run(s) without a finite loss" in err and all(f"cell{i}" in err for i in sup)
    assert main(["fit", "--law", "supervised", "--data", str(tmp_path / "r.csv"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_points"] == 21 and "dropping 3 run(s)" in out["dropped"][0]


@pytest.mark.parametrize("args,match", [
    (["--law", "chinchila"], "did you mean 'chinchilla'"),
    (["--law", "distillation"], "needs the student's supervised law"),
    (["--law", "chinchilla", "--fix", "gama=1"], "cannot hold 'gama'"),
])
def test_fit_errors_exit_2_with_a_message(tmp_path, capsys, args, match):
    _points().to_csv(tmp_path / "pts.csv", index=False)
    assert main(["fit", "--data", str(tmp_path / "pts.csv")] + args) == 2
    assert match in capsys.readouterr().err


def test_fit_names_the_file_for_bad_columns(tmp_path, capsys):
    _points().rename(columns={"loss": "ce"}).to_csv(tmp_path / "pts.csv", index=False)
    assert main(["fit", "--law", "chinchilla", "--data", str(tmp_path / "pts.csv")]) == 2
    err = capsys.readouterr().err
    assert "pts.csv" in err and "missing loss" in err
