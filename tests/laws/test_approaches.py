"""suite.laws.approaches: Hoffmann et al.'s approaches 1-2 recover known optima; approach 3's closed form."""
import json

import numpy as np
import pandas as pd
import pytest

from suite.cli import main
from suite.laws import (compute_levels, envelope, get_law, isoflop, parametric_exponents, published,
                        chinchilla_optimal)
from suite.laws import fit_parabola

# a known isoFLOP world: at compute C the loss is a parabola in ln N with its vertex at N_opt = 0.1·C^0.45
A_TRUE, K_TRUE = 0.45, 0.1


def _parabolas(levels=(1e12, 1e13, 1e14, 1e15, 1e16), sizes=7, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for C in levels:
        x_opt = np.log(K_TRUE * C ** A_TRUE)
        for x in x_opt + np.linspace(-1.5, 1.5, sizes) + rng.uniform(-0.2, 0.2):
            N = np.exp(x)
            loss = 2.0 + 3.0 * C ** -0.05 + 0.04 * (x - x_opt) ** 2 + rng.normal(0, noise)
            rows.append((N, C / (6 * N), loss))
    return pd.DataFrame(rows, columns=["N", "D", "loss"])


def test_isoflop_recovers_a_known_parabola_exactly():
    r = isoflop(_parabolas())
    assert r.a == pytest.approx(A_TRUE, abs=1e-9) and r.b == pytest.approx(1 - A_TRUE, abs=1e-9)
    assert r.k_N == pytest.approx(K_TRUE, rel=1e-6)
    assert r.levels["used"].all() and len(r.levels) == 5
    n_opt, d_opt = r.optimal(1e14)
    assert n_opt * d_opt * 6 == pytest.approx(1e14, rel=1e-6)


def test_isoflop_bootstrap_interval_covers_the_truth_under_noise():
    r = isoflop(_parabolas(sizes=9, noise=0.002, seed=1), bootstrap=200, seed=0)
    lo, hi = r.ci["a"]
    assert lo < A_TRUE < hi and hi - lo < 0.1
    assert r.ci["b"][0] < 1 - A_TRUE < r.ci["b"][1] and r.n_bootstrap > 150


def test_fit_parabola_is_exact_on_a_parabola():
    x = np.linspace(10, 14, 6)
    assert fit_parabola(x, 0.3 * x ** 2 - 7 * x + 2) == pytest.approx((0.3, -7, 2), rel=1e-8)


def test_envelope_picks_the_best_run_of_each_level():
    df = _parabolas(sizes=13)
    r = envelope(df)
    assert r.a == pytest.approx(A_TRUE, abs=0.03)
    lv = r.levels.iloc[0]
    first = df.assign(C=6 * df.N * df.D).sort_values("C").iloc[:13]
    assert lv["N_opt"] == pytest.approx(first.loc[first["loss"].idxmin(), "N"])


def test_levels_group_within_a_tolerance_and_seeds_are_averaged():
    assert list(compute_levels([1.0, 1.2, 2.0, 2.1, 8.0], tolerance=1.3)) == [0, 0, 1, 1, 2]
    assert list(compute_levels([1.0, 1.04, 1.2])) == [0, 0, 1]   # default: 5%
    df = _parabolas()
    twice = pd.concat([df.assign(loss=df.loss + 0.01), df.assign(loss=df.loss - 0.01)])
    assert isoflop(twice).a == pytest.approx(isoflop(df).a, abs=1e-9)


def test_a_level_without_an_interior_minimum_is_reported_and_left_out():
    df = _parabolas()
    flat = df.assign(C=6 * df.N * df.D)
    top = flat["C"] > 5e15
    df.loc[top, "loss"] = 3.0 - 0.01 * np.log(df.loc[top, "N"])   # monotone: the optimum is past the largest size
    r = isoflop(df)
    assert not r.levels["used"].iloc[-1] and any("level 4" in w for w in r.warnings)
    assert r.a == pytest.approx(A_TRUE, abs=1e-9)
    with pytest.raises(ValueError, match="usable compute level"):
        isoflop(df[top])


def test_parametric_exponents_are_the_closed_form():
    p = published("epoch2024").params
    r = parametric_exponents(p)
    assert r.a == pytest.approx(p["beta"] / (p["alpha"] + p["beta"]))
    n, d = chinchilla_optimal(p, 1e21)
    assert r.optimal(1e21)[0] == pytest.approx(n) and r.optimal(1e21)[1] == pytest.approx(d)


def test_parametric_approach_agrees_with_isoflop_on_law_generated_isoflop_data():
    # Chinchilla's own law sampled on isoFLOP lines: approach 2's parabolas land near the closed form
    p = published("epoch2024").params
    rows = []
    for C in np.geomspace(1e18, 1e22, 5):
        n_opt = chinchilla_optimal(p, C)[0]
        for N in n_opt * np.geomspace(0.25, 4, 9):
            rows.append((N, C / (6 * N)))
    df = pd.DataFrame(rows, columns=["N", "D"])
    df["loss"] = get_law("chinchilla").predict(p, N=df.N, D=df.D)
    assert isoflop(df).a == pytest.approx(parametric_exponents(p).a, abs=0.01)


def test_cli_approaches(tmp_path, capsys):
    _parabolas(noise=0.001).to_csv(tmp_path / "pts.csv", index=False)
    assert main(["fit", "--approach", "isoflop", "--data", str(tmp_path / "pts.csv"), "--bootstrap", "50",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["approach"] == "isoflop" and abs(out["a"] - A_TRUE) < 0.02 and len(out["levels"]) == 5
    assert main(["fit", "--approach", "envelope", "--data", str(tmp_path / "pts.csv")]) == 0
    assert "approach 1 (envelope)" in capsys.readouterr().out
    assert main(["fit", "--approach", "parametric", "--data", str(tmp_path / "pts.csv")]) == 2
    assert "--law is required" in capsys.readouterr().err
