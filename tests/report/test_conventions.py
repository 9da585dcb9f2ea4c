"""The report in both conventions of N (non-embedding and total) and of C (6ND and the loop's measured FLOPs):
the compute_optimal table puts them side by side, a spec fit can count total parameters, and a typo in the
option is a ConfigError naming the file, the key and the valid choices."""
import numpy as np
import pandas as pd
import pytest

from suite.config import ConfigError
from suite.laws import chinchilla_optimal, conventions_sentence, get_law
from suite.report.analysis import fit_laws
from suite.report.spec import LawSpec, ReportSpec, load_spec
from suite.report.tables import TABLES, approaches

LAW = {"E": 1.9577, "A": 60.0, "B": 40.0, "alpha": 0.4, "beta": 0.3}
EMB = 3e4   # embeddings + head of every model: the total count is N + EMB


def _results(seed=0):
    rng = np.random.default_rng(seed)
    chin = get_law("chinchilla")
    rows = []
    for c in (1e11, 4e11, 1.6e12, 6.4e12):
        for n in chinchilla_optimal(LAW, c)[0] * np.geomspace(1 / 8, 8, 5):
            d = c / (6 * n)
            rows.append({"method": "supervised", "N_S": n, "D_S": d, "L_T": np.nan, "N_S_total": n + EMB,
                         "flops.student_train": 6 * (n + 2e4) * d,
                         "loss": float(chin.predict(LAW, N=n, D=d)) * np.exp(rng.normal(0, 1e-4))})
    return pd.DataFrame(rows).assign(bayes_loss=LAW["E"])


def _spec(**laws):
    return ReportSpec(name="t", sweep="x", source="t.yaml", laws=laws)


@pytest.fixture(scope="module")
def fitted():
    df = _results()
    spec = _spec(supervised=LawSpec(law="supervised", bootstrap=30),
                 supervised_total=LawSpec(law="supervised", n_params="total", bootstrap=30))
    fits = fit_laws(spec, df, lambda m: None)
    return df, fits


def test_a_fit_with_n_params_total_fits_the_total_column(fitted):
    df, fits = fitted
    tot, base = fits["supervised_total"], fits["supervised"]
    np.testing.assert_array_equal(tot.points["N"], df["N_S_total"])
    np.testing.assert_array_equal(tot.points["N_S_non_embedding"], df["N_S"])
    np.testing.assert_array_equal(base.points["N"], df["N_S"])
    assert tot.result.context["n_params"] == "total" and "n_params" not in base.result.context
    assert tot.result.params != base.result.params


def test_compute_optimal_table_shows_every_convention(fitted):
    df, fits = fitted
    shown, raw, caption = TABLES.get("compute_optimal")(df, fits)
    ours = raw[raw["source"] == "ours"].set_index("approach")
    assert list(ours.index) == ["1: envelope (best run per compute level)", "2: isoFLOP parabolas", "3: parametric law"]
    for sx in ("", "_total", "_measured"):
        assert ours[[f"a{sx}", f"b{sx}", f"a{sx}_ci_low", f"a{sx}_ci_high"]].notna().all().all(), sx
    # the world is Chinchilla in non-embedding N: a = beta/(alpha+beta) there, and counting EMB more
    # parameters in every model flattens log N_opt against log C
    a_true = LAW["beta"] / (LAW["alpha"] + LAW["beta"])
    assert ours.loc["2: isoFLOP parabolas", "a"] == pytest.approx(a_true, abs=0.03)
    assert ours.loc["3: parametric law", "a"] == pytest.approx(a_true, abs=0.02)
    assert (ours["a_total"] < ours["a"] - 0.02).all()
    # approach 3 with total N is the spec's total fit
    tot = fits["supervised_total"].result.params
    assert ours.loc["3: parametric law", "a_total"] == pytest.approx(tot["beta"] / (tot["alpha"] + tot["beta"]))
    for head in ("a: N non-emb., C = 6ND", "a: N total, C = 6ND", "a: N non-emb., C measured", "b: N total, C = 6ND"):
        assert head in shown.columns
    assert "N total" in caption and "flops.student_train" in caption
    assert "the spec's fit with n_params: total" in caption
    # published exponents sit under the convention their paper counts N in
    hoff = raw[raw["approach"] == "Hoffmann et al. approach 2"].iloc[0]
    assert np.isnan(hoff["a"]) and hoff["a_total"] == pytest.approx(0.49)
    bus = raw[raw["source"].str.startswith("Busbridge")].iloc[0]
    assert bus["a"] == pytest.approx(0.513) and np.isnan(bus["a_total"])
    # what the headline quotes
    summary = raw.attrs["conventions"]
    assert set(summary) == {"non_embedding", "total", "measured"}
    assert summary["total"]["approaches"]["parametric"]["a"] == ours.loc["3: parametric law", "a_total"]
    line = conventions_sentence(summary)
    assert line.startswith("N counts non-embedding parameters and C = 6ND")
    a_total = ours.loc["3: parametric law", "a_total"]
    assert f"with total parameters (embeddings and LM head included) a = {a_total:.2f}" in line
    assert "with C from the loop's measured FLOPs (flops.student_train) a = " in line


def test_without_a_total_fit_the_table_refits_one(fitted):
    df, fits = fitted
    only = {"supervised": fits["supervised"]}
    res = approaches(df, only, bootstrap=0, convention="total")
    direct = fits["supervised_total"].result.params
    assert res["parametric"].a == pytest.approx(direct["beta"] / (direct["alpha"] + direct["beta"]), abs=1e-3)
    assert res["parametric"].convention == "total" and res["parametric"].n_bootstrap == 30
    # the default convention is what the table and figures showed before
    default = approaches(df, only, bootstrap=0)
    assert default["isoflop"].convention == "non_embedding"
    assert approaches(df, only, bootstrap=0, convention="non_embedding")["isoflop"].a == default["isoflop"].a


def test_results_without_total_counts_say_so_in_the_table(fitted):
    df, fits = fitted
    old = df.drop(columns=["N_S_total"])   # not tiny names, no shape columns: no total count to derive
    res = approaches(old, {"supervised": fits["supervised"]}, bootstrap=0, convention="total")
    assert isinstance(res["isoflop"], str) and "N_total" in res["isoflop"]
    assert isinstance(res["parametric"], str) and "no total parameter count" in res["parametric"]


def _write(tmp_path, body: str):
    p = tmp_path / "spec.yaml"
    p.write_text("name: t\nsweep: runs/t\nlaws:\n" + body)
    return p


def test_a_typo_in_n_params_names_file_key_and_choices(tmp_path):
    p = _write(tmp_path, "  sup: {law: supervised, n_params: totl}\n")
    with pytest.raises(ConfigError) as e:
        load_spec(p)
    msg = str(e.value)
    assert str(p) in msg and "laws.sup.n_params" in msg and "'totl'" in msg and "did you mean 'total'" in msg
    assert "non_embedding" in msg and "total" in msg
    p = _write(tmp_path, "  sup: {law: supervised, n_param: total}\n")
    with pytest.raises(ConfigError, match=r"laws\.sup: unknown key 'n_param'.*did you mean 'n_params'"):
        load_spec(p)
    assert load_spec(_write(tmp_path, "  sup: {law: supervised, n_params: total}\n")).laws["sup"].n_params == "total"
    assert load_spec(_write(tmp_path, "  sup: {law: supervised}\n")).laws["sup"].n_params == "non_embedding"


def test_a_distillation_fit_counts_N_as_its_supervised_fit_does(tmp_path):
    p = _write(tmp_path, "  sup: {law: supervised}\n  dist: {law: distillation, supervised: sup, n_params: total}\n")
    with pytest.raises(ConfigError, match=r"laws\.dist\.n_params: 'total', but its supervised fit 'sup' counts N "
                                          r"as 'non_embedding'"):
        load_spec(p)
    p = _write(tmp_path, "  dist: {law: distillation, supervised: busbridge2025-supervised, n_params: total}\n")
    with pytest.raises(ConfigError, match="busbridge2025-supervised' counts N as 'non_embedding'"):
        load_spec(p)
    ok = _write(tmp_path, "  sup: {law: supervised, n_params: total}\n"
                          "  dist: {law: distillation, supervised: sup, n_params: total}\n")
    assert load_spec(ok).laws["dist"].n_params == "total"
