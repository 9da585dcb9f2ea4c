"""What N and C count: total parameters derived from the shape columns equal the built model's count, the loop
records them, points_for and the approaches take the convention asked for, and approach 3 under a measured
FLOP count agrees with the closed form when that count is 6ND."""
import numpy as np
import pandas as pd
import pytest

from suite.laws import (CONVENTIONS, chinchilla_optimal, envelope, get_convention, get_law, isoflop,
                        parametric_exponents, parametric_measured, points_for, total_params)
from suite.laws.data import approach_points
from suite.models import TINY, build_model, count_non_embedding, count_parameters, model_shape

VOCAB = 500


def _row(name: str, model, **extra) -> dict:
    return {"N_S": count_non_embedding(model), "student": name,
            **{f"model_shape.{k}": v for k, v in model_shape(model).items()}, **extra}


@pytest.mark.parametrize("name", ["tiny-0.007M", "tiny-0.1M", "qwen2-0.05M", "qwen2-0.2M"])
def test_total_from_the_shape_columns_is_the_built_tiny_models_count(name):
    model = build_model(name, vocab_size=VOCAB, seed=0)
    got = total_params(pd.DataFrame([_row(name, model)]))
    assert got.iloc[0] == count_parameters(model)
    assert count_parameters(model) - count_non_embedding(model) == 2 * VOCAB * model_shape(model)["d_model"]


def test_every_tiny_config_is_untied_and_derivable():
    # total_params assumes untied embeddings for tiny names without a recorded tie_embeddings: keep that true
    for name in TINY.names():
        cfg = TINY.get(name)
        assert not cfg.tie_embeddings, name
        row = {"N_S": 1000, "student": name, "model_shape.family": cfg.family, "model_shape.vocab_size": VOCAB,
               "model_shape.d_model": cfg.hidden}
        assert total_params(pd.DataFrame([row])).iloc[0] == 1000 + 2 * VOCAB * cfg.hidden, name


def test_tied_embeddings_count_once():
    from transformers import AutoModelForCausalLM

    from suite.models import TinyConfig

    model = AutoModelForCausalLM.from_config(TinyConfig("llama", 32, 1, 2, 2, 64, tie_embeddings=True).to_hf(VOCAB))
    assert model.get_input_embeddings().weight is model.get_output_embeddings().weight
    row = _row("tiny-0.01M", model, **{"model_shape.tie_embeddings": True})
    assert total_params(pd.DataFrame([row])).iloc[0] == count_parameters(model)


def test_a_recorded_total_wins_and_unknown_models_get_none():
    df = pd.DataFrame([
        {"cell_id": "a", "N_S": 100, "N_S_total": 12345, "student": "tiny-0.1M", "model_shape.family": "llama",
         "model_shape.vocab_size": 10, "model_shape.d_model": 4, "teacher_id": None},
        {"cell_id": "b", "N_S": 100, "N_S_total": np.nan, "student": "tiny-0.1M", "model_shape.family": "llama",
         "model_shape.vocab_size": 10, "model_shape.d_model": 4, "teacher_id": "a"},
        {"cell_id": "c", "N_S": 100, "N_S_total": np.nan, "student": "Qwen/Qwen2-0.5B", "model_shape.family": "qwen2",
         "model_shape.vocab_size": 10, "model_shape.d_model": 4, "teacher_id": None},
    ])
    s = total_params(df)
    assert s.iloc[0] == 12345 and s.iloc[1] == 180 and np.isnan(s.iloc[2])   # a hub model may tie: unknown
    t = total_params(df, "T")
    assert np.isnan(t.iloc[0]) and t.iloc[1] == 12345   # the teacher's own cell gives its count


def test_the_loop_records_total_parameters(tmp_path):
    from suite.config import config_from_dict
    from suite.train import train

    cfg = config_from_dict({
        "name": "t", "student": "tiny-0.007M", "method": "supervised",
        "data": {"kind": "synthetic", "language": "synthetic-small", "seq_len": 32, "heldout_examples": 8},
        "optim": {"lr": 3e-3, "warmup": 1},
        "train": {"tokens": 256, "batch_size": 8, "eval_batch_size": 8}}, "test")
    result = train(cfg, tmp_path, progress=False)
    model = build_model(str(tmp_path / "model"))
    assert result["N_S_total"] == count_parameters(model) and result["N_T_total"] is None
    row = pd.json_normalize(result)
    assert total_params(row.drop(columns=["N_S_total"])).iloc[0] == result["N_S_total"]   # derived = recorded


def _sweep(totals: dict[float, float] | None = None):
    """A results table of supervised runs on a Chinchilla-form world, with N_S_total and flops.student_train."""
    law = {"E": 1.9, "A": 60.0, "B": 40.0, "alpha": 0.4, "beta": 0.3}
    chin = get_law("chinchilla")
    rows = []
    for c in (1e11, 4e11, 1.6e12, 6.4e12):
        for n in chinchilla_optimal(law, c)[0] * np.geomspace(1 / 8, 8, 5):
            d = c / (6 * n)
            rows.append({"method": "supervised", "N_S": n, "D_S": d, "loss": float(chin.predict(law, N=n, D=d)),
                         "N_S_total": n + 3e4 if totals is None else totals[n], "flops.student_train": 6 * n * d * 1.5})
    return pd.DataFrame(rows)


def test_points_for_counts_total_parameters_when_asked():
    df = _sweep()
    for law in (get_law("supervised"), get_law("distillation", supervised={"E": 1.9, "A": 60.0, "B": 40.0,
                                                                          "alpha": 0.4, "beta": 0.3, "gamma": 1.0})):
        d = df.assign(method="kd" if law.name == "distillation" else "supervised", L_T=2.5)
        n = law.inputs[0]
        base, tot = points_for(law, d), points_for(law, d, n_params="total")
        np.testing.assert_array_equal(tot[n], d["N_S_total"])
        np.testing.assert_array_equal(tot["N_S_non_embedding"], base[n])
    with pytest.raises(ValueError, match="n_params: 'totl'.*valid: non_embedding, total"):
        points_for(get_law("supervised"), df, n_params="totl")
    with pytest.raises(ValueError, match="2 run\\(s\\) have no total parameter count"):
        points_for(get_law("supervised"), df.assign(N_S_total=[np.nan, np.nan] + [1e5] * (len(df) - 2)),
                   n_params="total")


def test_approaches_are_invariant_to_a_constant_factor_in_N_or_C():
    # N_total = 3N and C_measured = 1.5·6ND: log N_opt and log C shift by constants, the slopes stay
    pts = approach_points(_sweep())
    pts = pts.assign(N_total=3 * pts["N"])
    for fn in (envelope, isoflop):
        base = fn(pts)
        for key in CONVENTIONS:
            r = fn(pts, convention=key)
            assert r.convention == key
            assert r.a == pytest.approx(base.a, abs=1e-9) and r.b == pytest.approx(base.b, abs=1e-9)
        tot = fn(pts, convention="total").levels
        np.testing.assert_allclose(tot["N_opt"], 3 * base.levels["N_opt"], rtol=1e-9)
        np.testing.assert_allclose(tot["C"], 3 * base.levels["C"], rtol=1e-9)


def test_total_convention_reexpresses_each_levels_optimum():
    pts = approach_points(_sweep())          # N_total = N + 3e4: the embeddings weigh most at small N
    base, tot = envelope(pts), envelope(pts, convention="total")
    np.testing.assert_allclose(tot.levels["N_opt"], base.levels["N_opt"] + 3e4)
    np.testing.assert_allclose(tot.levels["C"], 6 * tot.levels["N_opt"] * base.levels["D_opt"])
    assert tot.a < base.a        # a constant added to N flattens log N_opt against log C
    iso = isoflop(pts, convention="total").levels
    assert iso["used"].all() and (iso["N_opt"] > isoflop(pts).levels["N_opt"]).all()


def test_unknown_convention_and_missing_columns_are_named():
    pts = approach_points(_sweep())
    with pytest.raises(ValueError, match="unknown convention 'totl'.*did you mean 'total'"):
        get_convention("totl")
    with pytest.raises(ValueError, match="needs column\\(s\\) C_measured"):
        isoflop(pts.drop(columns=["C_measured"]), convention="measured")


def test_parametric_under_a_measured_count_of_6ND_is_the_closed_form():
    law = get_law("supervised")
    params = {"E": 1.9, "A": 60.0, "B": 40.0, "alpha": 0.4, "beta": 0.3, "gamma": 0.8}
    pts = approach_points(_sweep()).pipe(lambda p: p.assign(C_measured=6 * p["N"] * p["D"]))
    closed = parametric_exponents(params)
    r = parametric_measured(law, params, pts)
    assert r.a == pytest.approx(closed.a, abs=2e-3) and r.b == pytest.approx(closed.b, abs=2e-3)
    assert r.convention == "measured"
    # a fixed cost per token beyond 6N makes tokens dear while N is small: the optimum moves to larger N at
    # low compute, where that cost weighs most, so N_opt grows more slowly with C and a falls
    heavy = pts.assign(C_measured=6 * pts["N"] * pts["D"] + 6 * 2e4 * pts["D"])
    h = parametric_measured(law, params, heavy)
    assert h.a < closed.a - 0.01
    c0 = h.points["C"].iloc[0]
    assert h.points["N_opt"].iloc[0] > chinchilla_optimal(params, c0)[0]
    samples = np.array([[params[k] * (1 + 0.01 * s) for k in law.param_names] for s in (-1, 0, 1)])
    ci = parametric_measured(law, params, pts, samples=samples, ci=0.9).ci
    assert ci["a"][0] <= r.a + 1e-3 and r.a - 1e-3 <= ci["a"][1]
    with pytest.raises(ValueError, match="closed form assumes C = 6ND"):
        parametric_exponents(params, convention="measured")
