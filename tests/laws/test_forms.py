"""Published laws evaluate to the spec's sanity values; Jacobians match finite differences; laws register."""
import numpy as np
import pytest

from suite.laws import LAWS, Law, fit, get_law, published
from suite.laws.forms import _lse
from suite.registry import UnknownNameError

SUP = published("busbridge2025-supervised").params
DIST = published("busbridge2025-distillation").params


def test_supervised_law_sanity_values():
    law = get_law("supervised")
    assert law.predict(SUP, N=1.82e9, D=36.4e9) == pytest.approx(2.2509, abs=5e-5)
    assert law.predict(SUP, N=1.98e8, D=3.96e9) == pytest.approx(2.7894, abs=5e-5)
    # infinite data: the floor E + (A N^-alpha)^gamma
    floor = law.predict(SUP, N=np.array([1.43e8, 1.82e9, 7.75e9]), D=np.inf)
    np.testing.assert_allclose(floor, [2.4492, 1.9890, 1.8087], atol=5e-5)
    assert floor[1] == pytest.approx(SUP["E"] + (SUP["A"] * 1.82e9 ** -SUP["alpha"]) ** SUP["gamma"], rel=1e-12)


def test_distillation_law_sanity_values_and_capacity_gap():
    law = get_law("distillation", supervised=SUP)
    assert law.predict(DIST, N_S=1.82e9, D_S=36.4e9, L_T=2.2) == pytest.approx(2.2473, abs=5e-5)
    assert law.predict(DIST, N_S=1.82e9, D_S=36.4e9, L_T=2.0) == pytest.approx(2.1828, abs=5e-5)
    lt = np.array([1.6, 1.8, 2.0, 2.2, 2.6, 3.0, 3.5])
    ls = law.predict(DIST, N_S=1.98e8, D_S=20 * 1.98e8, L_T=lt)
    np.testing.assert_allclose(ls, [2.6099, 2.5386, 2.5434, 2.5838, 2.7065, 3.0017, 3.5000], atol=5e-5)
    # the U: falls then rises, and a weak teacher is simply matched (lim L_T -> large: L_S = L_T)
    assert ls[0] > ls[1] < ls[2] < ls[3]
    assert law.predict(DIST, N_S=1.98e8, D_S=4e9, L_T=6.0) == pytest.approx(6.0, abs=1e-9)
    # an infinitely capable student matches its teacher
    assert law.predict(DIST, N_S=1e30, D_S=1e30, L_T=2.1) == pytest.approx(2.1, abs=1e-6)


def test_c1_and_d1_act_through_the_effective_break_when_the_switch_is_sharp():
    """Busbridge's fit, and the same law with c1 x 20 and d1 moved to keep b = d1 (c1 f1)^-f1: predictions
    within 0.002 nats across the capacity gap (measured 0.0014), while c1 x 20 with d1 held moves them by 0.39."""
    from suite.laws.forms import effective_break

    law = get_law("distillation", supervised=SUP)
    b = effective_break(DIST["c1"], DIST["f1"], DIST["d1"])
    assert b == pytest.approx(0.9298, abs=1e-4)
    moved = dict(DIST, c1=20 * DIST["c1"])
    moved["d1"] = b * (moved["c1"] * moved["f1"]) ** moved["f1"]
    assert effective_break(moved["c1"], moved["f1"], moved["d1"]) == pytest.approx(b, rel=1e-12)
    lt = np.linspace(1.6, 3.5, 60)
    base = law.predict(DIST, N_S=1.98e8, D_S=20 * 1.98e8, L_T=lt)
    np.testing.assert_allclose(law.predict(moved, N_S=1.98e8, D_S=20 * 1.98e8, L_T=lt), base, atol=2e-3)
    held = law.predict(dict(DIST, c1=20 * DIST["c1"]), N_S=1.98e8, D_S=20 * 1.98e8, L_T=lt)
    assert np.abs(held - base).max() > 0.3


def test_chinchilla_law_is_the_plain_sum():
    p = published("chinchilla").params
    N, D = 70e9, 1.4e12
    want = p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]
    assert get_law("chinchilla").predict(p, N=N, D=D) == pytest.approx(want, rel=1e-13)


@pytest.mark.parametrize("name", ["chinchilla", "supervised", "distillation"])
def test_analytic_jacobian_matches_central_differences(name):
    law = get_law(name, supervised=SUP) if name == "distillation" else get_law(name)
    pub = {"chinchilla": "chinchilla", "supervised": "busbridge2025-supervised",
           "distillation": "busbridge2025-distillation"}[name]
    rng = np.random.default_rng(0)
    data = {k: np.exp(rng.uniform(np.log(1e7), np.log(1e11), 30)) for k in law.inputs}
    if "L_T" in data:
        data["L_T"] = rng.uniform(1.6, 3.5, 30)
    z = law.prepare(data)
    theta = law.from_params(published(pub).params)[None, :] + rng.normal(0, 0.02, (3, len(law.fit_names)))
    lp, J = law.jacobian(theta, z)
    lp_fd, J_fd = Law.jacobian(law, theta, z)
    assert J.shape == (len(law.fit_names), 3, 30)
    np.testing.assert_allclose(lp, law.log_predict(theta, z), rtol=1e-12)
    np.testing.assert_allclose(J, J_fd, atol=1e-6 * max(1.0, np.abs(J).max()))


def test_params_roundtrip_and_names_as_in_the_papers():
    law = get_law("distillation", supervised=SUP)
    assert list(law.to_params(law.from_params(DIST))) == ["A", "B", "alpha", "beta", "gamma", "c0", "c1", "f1", "d1"]
    for k, v in law.to_params(law.from_params(DIST)).items():
        assert v == pytest.approx(DIST[k], rel=1e-12)
    with pytest.raises(ValueError, match="missing.*gamma"):
        get_law("supervised").from_params({k: v for k, v in SUP.items() if k != "gamma"})


def test_distillation_law_needs_a_supervised_law_and_unknown_names_are_listed():
    with pytest.raises(ValueError, match="supervised"):
        get_law("distillation")
    with pytest.raises(UnknownNameError, match="did you mean 'supervised'"):
        get_law("supervsed")


def test_lse_is_stable_far_apart_and_with_infinite_inputs():
    a = np.array([0.0, -1e4, 5.0])
    np.testing.assert_allclose(_lse(a, np.array([-3e4, 0.0, -np.inf])), [0.0, 0.0, 5.0], atol=1e-12)


def test_a_user_law_registers_and_fits_with_numerical_jacobian():
    @LAWS.register("test-kaplan-n")
    class KaplanN(Law):
        """L(N) = (N_c / N)^alpha_N (Kaplan et al. 2020), a one-input law for the registry test."""
        name = "test-kaplan-n"
        inputs = ("N", "D")            # D is ignored; the fitters expect the law's columns
        fit_names = ("log_Nc", "alpha")
        param_names = ("Nc", "alpha")
        log_params = frozenset({"Nc"})
        bounds = ((0.0, 60.0), (0.0, 2.0))
        grid = {"log_Nc": (10, 20, 30), "alpha": (0.05, 0.5)}

        def log_predict(self, theta, z):
            theta = np.atleast_2d(theta)
            return theta[:, 1, None] * (theta[:, 0, None] - z["log_N"])

    try:
        N = np.logspace(6, 10, 12)
        true = {"Nc": 8.8e13, "alpha": 0.076}
        loss = get_law("test-kaplan-n").predict(true, N=N, D=N)
        res = fit(get_law("test-kaplan-n"), {"N": N, "D": N, "loss": loss})
        assert res.params["alpha"] == pytest.approx(0.076, rel=1e-5)
        assert res.params["Nc"] == pytest.approx(8.8e13, rel=1e-3)
    finally:
        LAWS._items.pop("test-kaplan-n")


def test_the_distillation_fit_takes_only_runs_in_eq8s_setting():
    import warnings

    import pandas as pd

    from suite.laws import points_for

    base = {"N_S": 1e5, "D_S": 1e6, "L_T": 2.0, "loss": 2.5, "cell_id": "x", "sweep": "s"}
    rows = [dict(base, method="kd", **{"method_params.divergence": "forward_kl", "method_params.temperature": 1.0,
                                       "method_params.kd_weight": 1.0}),
            dict(base, method="kd", **{"method_params.divergence": "reverse_kl", "method_params.temperature": 1.0,
                                       "method_params.kd_weight": 1.0}),
            dict(base, method="kd", **{"method_params.divergence": "forward_kl", "method_params.temperature": 2.0,
                                       "method_params.kd_weight": 1.0}),
            dict(base, method="kd", **{"method_params.divergence": "forward_kl", "method_params.temperature": 1.0,
                                       "method_params.kd_weight": 0.5}),
            dict(base, method="supervised", L_T=None)]
    df = pd.DataFrame(rows)
    law = get_law("distillation", supervised=SUP)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        kept = points_for(law, df)
    assert len(kept) == 1 and kept["method_params.divergence"].tolist() == ["forward_kl"]
    assert any("left out 3" in str(x.message) and "--all-kd" in str(x.message) for x in w)
    assert len(points_for(law, df, all_kd=True)) == 4
